local time = require("opsh.time")
local proc = require("opsh.proc")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local catch = S.catch

describe("opsh.time", function()
  it("reads the wall clock and the monotonic clock", function()
    local now = time.now()
    assert.are.equal("float", math.type(now))
    assert.is_true(math.abs(now - os.time()) < 2)
    local a = time.monotonic()
    local b = time.monotonic()
    assert.is_true(b >= a)
  end)

  describe("parse", function()
    it("reads RFC 3339 timestamps", function()
      assert.are.equal(0, time.parse("1970-01-01T00:00:00Z"))
      assert.are.equal(1709210096, time.parse("2024-02-29T12:34:56Z"))
      assert.are.equal(1709210096, time.parse("2024-02-29T14:34:56+02:00"))
      assert.are.equal(1709210096, time.parse("2024-02-29T07:04:56-05:30"))
      assert.are.equal(1709210096, time.parse("2024-02-29t12:34:56z"))
      assert.are.equal(1709210096, time.parse("2024-02-29 12:34:56Z"))
      assert.are.equal(1709210096.25, time.parse("2024-02-29T12:34:56.250Z"))
      assert.are.equal(1709210096.5, time.parse("2024-02-29T12:34:56.5000000Z"))   -- Azure's 7 digits
      assert.are.equal(-1, time.parse("1969-12-31T23:59:59Z"))
      assert.are.equal(-2203891200, time.parse("1900-03-01T00:00:00Z"))
      assert.are.equal(13574649599, time.parse("2400-02-29T23:59:59Z"))
      assert.are.equal("integer", math.type(time.parse("2024-02-29T12:34:56Z")))
      assert.are.equal(1709210096, time.parse("2024-02-29T12:34:56", {assume_utc = true}))
    end)

    it("refuses what is not a timestamp, with a structured error", function()
      for _, bad in ipairs({"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-13-01T00:00:00Z",
          "2024-01-32T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:00",
          "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00+2:00", "2024-01-01T00:00:00+24:00", "2024-01-01",
          "yesterday", "", "2024-01-01T00:00:00Z "}) do
        local err = catch(time.parse, bad)
        assert.are.equal("time", err.kind, bad)
        assert.are.equal(bad, err.input)
      end
      assert.are.equal("not an RFC 3339 timestamp: 'yesterday' (expected YYYY-MM-DDTHH:MM:SSZ)",
        catch(time.parse, "yesterday").message)
      assert.are.equal("usage", catch(time.parse, 12).kind)
    end)
  end)

  describe("format", function()
    it("writes RFC 3339 in UTC", function()
      assert.are.equal("1970-01-01T00:00:00Z", time.format(0))
      assert.are.equal("2024-02-29T12:34:56Z", time.format(1709210096))
      assert.are.equal("2024-02-29T12:34:56.250Z", time.format(1709210096.25, {fraction = 3}))
      assert.are.equal("2024-02-29T12:34:56.000000Z", time.format(1709210096, {fraction = 6}))
      assert.are.equal("1969-12-31T23:59:59.500Z", time.format(-0.5, {fraction = 3}))
      assert.are.equal("2024-02-29T12:34:56.001Z", time.format(1709210096.001, {fraction = 3}))
      assert.are.equal("usage", catch(time.format, 0, {fraction = 12}).kind)
      assert.are.equal("usage", catch(time.format, "now").kind)
    end)

    it("agrees with Python's calendar over four centuries", function()
      local ts = {}
      local x = 12345
      for i = 1, 300 do
        x = (x * 1103515245 + 12345) % 2147483648
        ts[i] = (x * 7) - 2 * 2208988800   -- from 1830 to 2130
      end
      ts[#ts + 1] = 951782400   -- 2000-02-29
      ts[#ts + 1] = 4107542400  -- 2100-03-01
      local r = proc.run{argv = {"python3", "-c", [[
import sys, datetime
for line in sys.stdin:
    t = int(line)
    print((datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ"))
]]}, stdin = table.concat(ts, "\n") .. "\n"}
      local i = 0
      for expected in r.stdout:gmatch("[^\n]+") do
        i = i + 1
        assert.are.equal(expected, time.format(ts[i]))
        assert.are.equal(ts[i], time.parse(expected))
      end
      assert.are.equal(#ts, i)
    end)

    it("writes local time with its offset", function()
      local t = 1709210096
      local s = time.format(t, {utc = false})
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[+-]%d%d:%d%d$", s)
      assert.are.equal(t, time.parse(s))
      -- a child opsh in a fixed zone (UTC+5:30, POSIX TZ syntax needs no tzdata)
      local r = proc.run{argv = {"/proc/self/exe", "-e",
        "print(require('opsh.time').format(1709210096, {utc = false}))"}, env_add = {TZ = "IST-5:30"}}
      assert.are.equal("2024-02-29T18:04:56+05:30\n", r.stdout)
    end)
  end)

  describe("durations", function()
    it("reads ISO 8601 durations", function()
      assert.are.equal(300, time.duration("PT5M"))
      assert.are.equal(2592000, time.duration("P30D"))
      assert.are.equal(5400, time.duration("PT1H30M"))
      assert.are.equal(93600, time.duration("P1DT2H"))
      assert.are.equal(0.5, time.duration("PT0.5S"))
      assert.are.equal(0.5, time.duration("PT0,5S"))
      assert.are.equal(5400, time.duration("PT1.5H"))
      assert.are.equal(1209600, time.duration("P2W"))
      assert.are.equal(-300, time.duration("-PT5M"))
      assert.are.equal(90061, time.duration("P1DT1H1M1S"))
      assert.are.equal("integer", math.type(time.duration("PT5M")))
    end)

    it("refuses bad ISO 8601 durations", function()
      for _, bad in ipairs({"P", "PT", "5M", "PT5", "PT5M3H", "P1DT", "PT1.5H30M", "P1D2W", "PT5X", "pt5m"}) do
        local err = catch(time.duration, bad)
        assert.are.equal("time", err.kind, bad)
      end
      assert.matches("years and months have no fixed length", catch(time.duration, "P1M").message)
      assert.matches("years and months have no fixed length", catch(time.duration, "P1Y").message)
    end)

    it("writes ISO 8601 durations that read back", function()
      assert.are.equal("PT5M", time.format_duration(300))
      assert.are.equal("PT1H30M", time.format_duration(5400))
      assert.are.equal("P1DT2H", time.format_duration(93600))
      assert.are.equal("P30D", time.format_duration(2592000))
      assert.are.equal("PT0S", time.format_duration(0))
      assert.are.equal("PT0.5S", time.format_duration(0.5))
      assert.are.equal("PT1H30M0.25S", time.format_duration(5400.25))
      assert.are.equal("-PT5M", time.format_duration(-300))
      assert.are.equal("P1DT1H1M1S", time.format_duration(90061))
      for _, n in ipairs({1, 59, 60, 61, 3599, 3600, 86399, 86400, 86401, 1234567, 0.125}) do
        assert.are.equal(n, time.duration(time.format_duration(n)))
      end
    end)

    it("reads short durations", function()
      assert.are.equal(30, time.parse_duration("30s"))
      assert.are.equal(300, time.parse_duration("5m"))
      assert.are.equal(5400, time.parse_duration("1h30m"))
      assert.are.equal(604800, time.parse_duration("7d"))
      assert.are.equal(0.1, time.parse_duration("100ms"))
      assert.are.equal(5400, time.parse_duration("1.5h"))
      assert.are.equal(1209600, time.parse_duration("2w"))
      assert.are.equal(86400, time.parse_duration("24h"))
      assert.are.equal(300, time.parse_duration("PT5M"))
      assert.are.equal(42, time.parse_duration(42))
      assert.are.equal(0, time.parse_duration("0"))
      assert.are.equal(-60, time.parse_duration("-1m"))
      for _, bad in ipairs({"5", "", "h", "5x", "1h 30m", "1..5h", "m5"}) do
        assert.are.equal("time", catch(time.parse_duration, bad).kind, bad)
      end
      assert.matches("give a unit", catch(time.parse_duration, "5").message)
    end)

    it("gives the timestamp of a moment ago", function()
      local s = time.ago("24h")
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", s)
      local delta = time.now() - time.parse(s)
      assert.is_true(delta > 86400 - 2 and delta < 86400 + 2, "about 24 h ago")
      delta = time.now() - time.parse(time.ago("PT5M", {fraction = 3}))
      assert.is_true(delta > 298 and delta < 302)
      assert.are.equal("time", catch(time.ago, "yesterday").kind)
    end)
  end)
end)

describe("opsh.time durations: one rule", function()
  local time = require("opsh.time")
  local script = require("opsh.script")

  it("takes units largest first, each once, in time.parse_duration and script arguments alike", function()
    for _, bad in ipairs({"30s5m", "5m5m", "1m1h"}) do
      local ok, err = pcall(time.parse_duration, bad)
      assert.is_false(ok, bad)
      assert.equal("time", err.kind)
      assert.is_nil(script.parse_duration(bad), bad)
    end
    assert.equal(5400, time.parse_duration("1h30m"))
    assert.equal(5400, script.parse_duration("1h30m"))
    assert.equal(300, script.parse_duration("PT5M"))
    assert.equal(90, script.parse_duration("90"))
  end)

  it("parse's assume_utc defaults to false", function()
    assert.has_error(function() time.parse("2024-01-01T00:00:00") end)
    assert.equal(1704067200, time.parse("2024-01-01T00:00:00", {assume_utc = true}))
  end)
end)
