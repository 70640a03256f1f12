-- opsh.crypto.crc64: Azure Storage's CRC-64 (CRC-64/NVME) against published vectors: the CRC catalogue's
-- check value, the NVM Command Set Specification 1.0c's four 4 KiB buffers, and the Azure SDK for C++'s
-- x-ms-content-crc64 values; chunked computation equal to the whole.
local crypto = require("opsh.crypto")

local function buffer(fn)
  local t = {}
  for i = 0, 4095 do t[#t + 1] = string.char(fn(i)) end
  return table.concat(t)
end

local function hex(crc) return string.format("%016x", crc) end

describe("crypto.crc64", function()
  it("gives the CRC-64/NVME catalogue check value for \"123456789\"", function()
    assert.equal("ae8b14860a799888", hex(crypto.crc64("123456789")))
  end)

  it("gives the NVM Command Set 1.0c values for its four 4 KiB buffers", function()
    assert.equal("6482d367eb22b64e", hex(crypto.crc64(string.rep("\0", 4096))))
    assert.equal("c0ddba7302eca3ac", hex(crypto.crc64(string.rep("\255", 4096))))
    assert.equal("3e729f5f6750449c", hex(crypto.crc64(buffer(function(i) return i % 256 end))))
    assert.equal("9a2df64b8e9e517e", hex(crypto.crc64(buffer(function(i) return 255 - i % 256 end))))
  end)

  it("gives the Azure SDK's x-ms-content-crc64 values (8 bytes, least significant first, base64)", function()
    assert.equal("AAAAAAAAAAA=", crypto.crc64_base64(crypto.crc64("")))
    assert.equal("DtjZpL9/o8c=", crypto.crc64_base64(crypto.crc64("Hello Azure!")))
    assert.equal("iJh5CoYUi64=", crypto.crc64_base64(crypto.crc64("123456789")))
  end)

  it("goes on from a previous result: any split of the data gives the whole's CRC", function()
    local data = buffer(function(i) return (i * 7 + 3) % 256 end)
    local whole = crypto.crc64(data)
    for cut = 0, 40 do
      assert.equal(whole, crypto.crc64(data:sub(cut + 1), crypto.crc64(data:sub(1, cut))), "cut at " .. cut)
    end
    local crc = 0
    for i = 1, #data, 13 do crc = crypto.crc64(data:sub(i, i + 12), crc) end
    assert.equal(whole, crc)
    assert.equal(whole, crypto.crc64("", whole))
  end)

  it("refuses what is not a string or a previous result, naming the argument", function()
    local ok, err = pcall(crypto.crc64, 42)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("#1", 1, true))
    ok, err = pcall(crypto.crc64, "x", "0")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("#2", 1, true))
    ok, err = pcall(crypto.crc64_base64, "DtjZpL9/o8c=")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("#1", 1, true))
  end)
end)
