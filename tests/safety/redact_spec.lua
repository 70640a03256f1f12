-- opsh.redact / core.scrub: a secret leaves no trace in any of the forms it travels in.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local redact = require("opsh.redact")

local function url_escape_all(s)
  return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("opsh.redact", function()
  local pw = core.secret("c0rrect horse/battery+staple")
  local raw = "c0rrect horse/battery+staple"

  it("removes the raw value and its percent-encoded forms", function()
    local form = (raw:gsub("%+", "%%2B"):gsub(" ", "+"):gsub("/", "%%2F"))
    local text = "a " .. raw .. " b " .. url_escape_all(raw) .. " c " .. url_escape_all(raw):lower()
      .. " d " .. form
    local out = redact.text(text, {pw})
    assert.is_nil(out:find("horse", 1, true), out)
    assert.is_nil(out:find("battery", 1, true), out)
    assert.equal("a <redacted> b <redacted> c <redacted> d <redacted>", out)
  end)

  it("removes the base64 of the value at every alignment, e.g. inside a Basic credential", function()
    for _, user in ipairs({"", "a:", "ab:", "abc:", "someone@example:"}) do
      local b64 = crypto.base64_encode(user .. raw)
      local out = redact.text("Authorization: Basic " .. b64, {pw})
      assert.is_truthy(out:find("<redacted>", 1, true), user)
      -- what is left is at most the user's part and a couple of boundary characters
      assert.is_true(#out <= #("Authorization: Basic ") + #user * 4 / 3 + 4 + #"<redacted>" + 2, out)
    end
    local url = crypto.base64url_encode("x" .. raw)
    assert.is_truthy(redact.text(url, {pw}):find("<redacted>", 1, true))
  end)

  it("removes the JSON-escaped form", function()
    local json = require("opsh.json").encode({password = raw})
    local out = redact.text(json, {pw})
    assert.is_nil(out:find("battery", 1, true))
  end)

  it("treats plain strings in the list as secrets too and leaves other text alone", function()
    assert.equal("token=<redacted>; user=alice", redact.text("token=abcd1234; user=alice", {"abcd1234"}))
    assert.equal("nothing here", redact.text("nothing here", {pw}))
    assert.equal("nothing here", redact.text("nothing here", {}))
  end)

  it("scrubs every string field of an error, nested ones too", function()
    local err = core.error("pg", "duplicate key value " .. raw, {detail = "Key (pw)=(" .. raw .. ")",
      cause = core.error("x", "inner " .. raw)})
    redact.error(err, {pw})
    assert.is_nil(tostring(err):find("battery", 1, true))
    assert.is_nil(err.detail:find("battery", 1, true))
    assert.is_nil(err.cause.message:find("battery", 1, true))
  end)

  it("collects the secrets inside a value and guards a call's errors", function()
    local found = redact.collect({a = 1, b = {c = pw, d = {pw}}})
    assert.equal(2, #found)
    local err = assert.has_error(function()
      redact.guard(found, function() error(core.error("io", "failed with " .. raw), 0) end)
    end)
    assert.is_nil(tostring(err):find("horse", 1, true))
  end)

  it("does not redact ordinary words through short secrets' encodings", function()
    assert.equal("the cat sat", redact.text("the cat sat", {"ab"}))
    assert.equal("<redacted> sat", redact.text("ab sat", {"ab"}))
  end)
end)
