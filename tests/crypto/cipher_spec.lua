-- opsh.crypto.seal / open: AES-256-GCM. Known answers from McGrew & Viega, "The Galois/Counter Mode of
-- Operation (GCM)", test cases 13 and 14 (a zero key and nonce); round trips; every tampering refused.
local crypto = require("opsh.crypto")
local core = require("opsh._core")
local opsh = require("opsh")

local function hex(s) return crypto.hex_decode(s) end

describe("opsh.crypto seal and open", function()
  local zero_key, zero_nonce = string.rep("\0", 32), string.rep("\0", 12)

  it("opens the published test vectors", function()
    local empty = crypto.open(zero_key, zero_nonce .. hex("530f8afbc74536b9a963b4f1c4cb738b"))
    assert.is_true(core.is_secret(empty))
    assert.are.equal("", core.reveal(empty))
    local block = crypto.open(zero_key, zero_nonce .. hex("cea7403d4d606b6e074ec5d3baf39d18")
      .. hex("d0d1c8a799996bf0265b98b5d48ab919"))
    assert.are.equal(string.rep("\0", 16), core.reveal(block))
  end)

  it("round-trips strings and secrets, with a fresh nonce each time", function()
    local key = crypto.random_bytes(32)
    local a = crypto.seal(key, "kind: Secret\n", "prod/secret.yaml")
    local b = crypto.seal(key, "kind: Secret\n", "prod/secret.yaml")
    assert.are_not.equal(a, b)
    assert.are.equal(12 + 13 + 16, #a)
    assert.are.equal("kind: Secret\n", core.reveal(crypto.open(key, a, "prod/secret.yaml")))
    local s = crypto.seal(opsh.secret(key), opsh.secret("hunter2"))
    assert.are.equal("hunter2", core.reveal(crypto.open(opsh.secret(key), s)))
    local big = string.rep("0123456789abcdef", 65536)
    assert.are.equal(big, core.reveal(crypto.open(key, crypto.seal(key, big))))
  end)

  it("refuses a wrong key, other bound data, a changed byte or a truncated text", function()
    local key = crypto.random_bytes(32)
    local sealed = crypto.seal(key, "payload", "name-a")
    local cases = {
      {crypto.random_bytes(32), sealed, "name-a"},
      {key, sealed, "name-b"},
      {key, sealed, nil},
      {key, sealed:sub(1, 20) .. string.char(sealed:byte(21) ~ 1) .. sealed:sub(22), "name-a"},
      {key, sealed:sub(1, 27), "name-a"},
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(crypto.open, c[1], c[2], c[3])
      assert.is_false(ok, "case " .. i)
      assert.are.equal("crypto", err.kind)
      assert.are.equal("bad_tag", err.code)
      assert.is_nil(err.message:find("payload", 1, true))
    end
  end)

  it("says what is wrong with a key or an argument", function()
    local ok, err = pcall(crypto.seal, "short", "x")
    assert.is_false(ok)
    assert.are.equal("bad_key", err.code)
    assert.matches("32 bytes, not 5", err.message)
    ok, err = pcall(crypto.seal, crypto.random_bytes(32), {})
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
  end)
end)
