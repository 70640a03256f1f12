-- Script arguments: the words after `opsh run NAME` typed against the script's declaration.
local cli = require("opsh.cli")
local script = require("opsh.script")
local json = require("opsh.json")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local raises = S.catch

local function decl(args)
  return script.validate({description = "d", categories = {"c"}, run = function() end, args = args}, "t.lua")
end

local typed = decl({
  d = {help = "a duration", type = "duration"},
  n = {help = "a number", type = "number"},
  i = {help = "an integer", type = "integer"},
  l = {help = "a list", type = "list"},
  max_lag = {help = "declared with an underscore", type = "integer"},
  ["dry-lag"] = {help = "declared with a dash", type = "integer"},
  force = {help = "a switch", type = "boolean"},
  name = {help = "a string"},
  tier = {help = "a choice", choices = {"Basic", "Premium"}},
})

-- the words as `opsh run t WORDS...` gives them -> typed args
local function parse(...)
  return script.parse_args(typed, cli.script_args({...}, typed, "t"), "t")
end

-- the usage error those words raise
local function usage_error(...)
  local err = raises(parse, ...)
  assert.are.equal("usage", err.kind, tostring(err))
  assert.is_nil(tostring(err):find("\n"), "one line")
  return err.message
end

describe("script arguments", function()
  describe("durations", function()
    it("reads well-formed durations: seconds, decimals, units largest first", function()
      local cases = {["90"] = 90, ["1.5"] = 1.5, ["1.5s"] = 1.5, ["30s"] = 30, ["5m"] = 300, ["1h30m"] = 5400,
        ["2d"] = 172800, ["1w2d"] = 777600, ["100ms"] = 0.1, ["1m30s"] = 90, ["2h0m5s"] = 7205,
        ["1s500ms"] = 1.5, ["0s"] = 0}
      for text, secs in pairs(cases) do
        assert.are.equal(secs, parse("--d=" .. text).d, text)
      end
    end)

    it("refuses a trailing bare number, units out of order or repeated, and junk", function()
      for _, text in ipairs({"1h30", "30s5m", "1m1m", "5m1h", "1h 30m", "", "m", "1.s", ".5s", "1x", "-5s",
        "1e3s", "5 minutes", "1hh", "1.5.5s", "inf", "nan"}) do
        local msg = usage_error("--d=" .. text)
        assert.are.equal(string.format(
          "t: --d expects a duration like 90, 1.5s, 1h30m or 2d (units w d h m s ms, largest first, each once), got '%s' (see 'opsh help t')",
          text), msg)
      end
    end)

    it("refuses a duration too large to be finite", function()
      assert.matches("^t: %-%-d expects a duration", usage_error("--d=" .. string.rep("9", 400) .. "s"))
    end)
  end)

  describe("numbers", function()
    it("are finite decimal numbers", function()
      assert.are.equal(1.5, parse("--n=1.5").n)
      assert.are.equal(-2e3, parse("--n=-2e3").n)
      assert.are.equal(0.25, parse("--n=.25").n)
      for _, text in ipairs({"1e400", "-1e400", "inf", "nan", "0x10", " 5", "5 ", "", "1e", "--5"}) do
        assert.are.equal(string.format("t: --n expects a finite number, got '%s' (see 'opsh help t')", text),
          usage_error("--n=" .. text))
      end
    end)

    it("integers are whole decimal numbers that fit in 64 bits", function()
      assert.are.equal(math.maxinteger, parse("--i=9223372036854775807").i)
      assert.are.equal(-7, parse("--i=-7").i)
      for _, text in ipairs({"9223372036854775808", "1e3", "3.0", "0x10", "seven", ""}) do
        assert.are.equal(string.format("t: --i expects an integer, got '%s' (see 'opsh help t')", text),
          usage_error("--i=" .. text))
      end
    end)
  end)

  describe("lists", function()
    it("an empty value is an empty list, which JSON writes as []", function()
      local args = parse("--l=")
      assert.are.same({}, args.l)
      assert.is_true(json.is_array(args.l))
      assert.are.equal('{"l":[]}', json.encode({l = args.l}))
    end)

    it("split on commas, trimmed, and accumulate over repeats", function()
      assert.are.same({"web", "gateway"}, parse("--l=web, gateway").l)
      assert.are.same({"a", "b", "c"}, parse("--l=a", "--l", "b,c").l)
      assert.is_true(json.is_array(parse("--l=a").l))
    end)
  end)

  describe("names", function()
    it("treat dashes and underscores alike, as kubectl and az spell flags", function()
      assert.are.equal(5, parse("--max-lag=5").max_lag)
      assert.are.equal(6, parse("--max_lag", "6").max_lag)
      assert.are.equal(7, parse("--dry_lag=7")["dry-lag"])
      assert.is_nil(parse("--max-lag=5")["max-lag"])
    end)

    it("an unknown argument is named as unknown, even without a value, with the nearest name", function()
      assert.are.equal("t: unknown argument --bogus (see 'opsh help t')", usage_error("--bogus"))
      assert.are.equal("t: unknown argument --max-lga; did you mean --max_lag?", usage_error("--max-lga=1"))
      assert.are.equal("t: unknown argument --forc; did you mean --force?", usage_error("--forc"))
    end)

    it("a repeated argument is a usage error unless it is a list", function()
      assert.are.equal("t: --name given more than once (only list arguments may repeat)", usage_error("--name=a", "--name=b"))
      assert.are.equal("t: --max_lag given more than once (only list arguments may repeat)",
        usage_error("--max-lag=1", "--max_lag=2"))
      assert.are.equal("t: --force given more than once (only list arguments may repeat)", usage_error("--force", "--no-force"))
    end)

    it("a value that is missing is named", function()
      assert.are.equal("t: --name needs a value", usage_error("--name"))
      assert.are.equal("t: --name needs a value", usage_error("--name", "--force"))
      assert.are.equal(-3, parse("--i", "-3").i)
    end)

    it("booleans: --flag, --no-flag, --flag=false; other words are refused", function()
      assert.is_true(parse("--force").force)
      assert.is_false(parse("--no-force").force)
      assert.is_false(parse("--force=off").force)
      assert.are.equal("t: --force expects a boolean (true/false, yes/no, on/off, 1/0), got 'maybe' (see 'opsh help t')",
        usage_error("--force=maybe"))
    end)
  end)

  describe("declarations", function()
    it("refuse a default that is not of the argument's type", function()
      local err = raises(decl, {wait = {help = "w", type = "duration", default = "5 minutes"}})
      assert.are.equal("script", err.kind)
      assert.are.equal("t.lua: argument 'wait': default '5 minutes' is not a valid duration", err.message)
      err = raises(decl, {n = {help = "n", type = "integer", default = 1.5}})
      assert.are.equal("t.lua: argument 'n': default '1.5' is not a valid integer", err.message)
    end)

    it("refuse two names that differ only by dashes and underscores", function()
      local err = raises(decl, {max_lag = {help = "a"}, ["max-lag"] = {help = "b"}})
      assert.are.equal("script", err.kind)
      assert.matches("arguments 'max.lag' and 'max.lag' are the same name", err.message)
    end)

    it("give list defaults as JSON arrays, given as a table or a string", function()
      local d = decl({a = {help = "a", type = "list", default = "x,y"}, b = {help = "b", type = "list", default = {}}})
      local args = script.parse_args(d, {}, "t")
      assert.are.same({"x", "y"}, args.a)
      assert.are.equal('{"a":["x","y"],"b":[]}', json.encode(args, {sort_keys = true}))
    end)
  end)
end)
