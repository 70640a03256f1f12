-- opsh.time: clocks, RFC 3339 timestamps and durations (ISO 8601 "PT5M" and short "1h30m").
-- Calendar arithmetic is proleptic Gregorian on day numbers (days_from_civil / civil_from_days),
-- so it needs neither timegm nor the local time zone; only now() and the local offset come from C.
local C = require("opsh._time")
local core = require("opsh._core")
local check = require("opsh.check")

local M = {}

local function fail(msg, input)
  error(core.error("time", msg, {input = input}), 3)
end

local function usage(fname, n, msg)
  check.fail("time." .. fname, n, msg)
end

--- now() -> seconds since the epoch (float, microsecond resolution)
M.now = C.now
--- monotonic() -> seconds from an arbitrary origin, for measuring intervals
M.monotonic = C.monotonic

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local month_days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

local function days_in_month(y, m)
  if m == 2 and is_leap(y) then return 29 end
  return month_days[m]
end

-- Days since 1970-01-01 of a civil date (Lua's // floors, which the algorithm needs).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

function M.days_from_civil(y, m, d)
  check.integer("time.days_from_civil", 1, y)
  check.arg("time.days_from_civil", 2, m, {"integer", min = 1, max = 12})
  check.arg("time.days_from_civil", 3, d, {"integer", min = 1, max = 31})
  return days_from_civil(y, m, d)
end

function M.civil_from_days(z)
  check.integer("time.civil_from_days", 1, z)
  return civil_from_days(z)
end

local PARSE_OPTIONS = {assume_utc = "boolean"}

--- parse(s [, {assume_utc=false}]) -> epoch seconds (integer, or float with a fraction)
-- RFC 3339: "2024-02-29T12:34:56Z", "...56.123456789+02:00", "t"/" " for "T", "z" for "Z".
-- assume_utc accepts a timestamp without an offset as UTC (some APIs omit it).
function M.parse(s, opts)
  if type(s) ~= "string" then usage("parse", 1, "string expected, got " .. check.typename(s)) end
  if opts ~= nil then check.options("time.parse", 2, opts, PARSE_OPTIONS) end
  local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then fail(string.format("not an RFC 3339 timestamp: '%s' (expected YYYY-MM-DDTHH:MM:SSZ)", s), s) end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  local frac = 0
  local digits, zone = rest:match("^%.(%d+)(.*)$")
  if digits then
    frac = tonumber("0." .. digits)
    rest = zone
  elseif rest:sub(1, 1) == "." then
    fail(string.format("bad RFC 3339 timestamp '%s': no digits after the decimal point", s), s)
  end
  local offset
  if rest == "Z" or rest == "z" then
    offset = 0
  elseif rest == "" and opts and opts.assume_utc then
    offset = 0
  else
    local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
    if not sign then
      fail(string.format("bad RFC 3339 timestamp '%s': the offset must be Z or +HH:MM", s), s)
    end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 23 or om > 59 then fail(string.format("bad RFC 3339 timestamp '%s': offset out of range", s), s) end
    offset = (oh * 3600 + om * 60) * (sign == "-" and -1 or 1)
  end
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) or h > 23 or mi > 59 or sec > 60 then
    fail(string.format("bad RFC 3339 timestamp '%s': no such date or time", s), s)
  end
  local t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
  if frac ~= 0 then return t + frac end
  return t
end

local FORMAT_OPTIONS = {utc = "boolean", fraction = "any"}

local function check_fraction(fname, opts)
  if opts ~= nil then check.options("time." .. fname, 2, opts, FORMAT_OPTIONS) end
  local n = opts and opts.fraction or 0
  if math.type(n) ~= "integer" or n < 0 or n > 9 then usage(fname, 2, "fraction must be an integer from 0 to 9") end
  return n
end

--- format(t [, {utc=true, fraction=0}]) -> RFC 3339 string
-- utc=false gives local time with its offset ("+02:00"). The fraction has `fraction` digits,
-- rounded to the nearest (a float epoch is rarely exact in decimal).
function M.format(t, opts)
  if type(t) ~= "number" or t ~= t or t == math.huge or t == -math.huge then
    usage("format", 1, "finite number of seconds since the epoch expected, got " .. tostring(t))
  end
  local digits = check_fraction("format", opts)
  local offset = 0
  local local_time = opts and opts.utc == false
  if local_time then offset = C.utc_offset(t) end
  local scale = math.tointeger(10 ^ digits)
  local total = math.floor((t + offset) * scale + 0.5)
  local secs, frac = total // scale, total % scale
  local days, rem = secs // 86400, secs % 86400
  local y, m, d = civil_from_days(days)
  if y < 0 or y > 9999 then usage("format", 1, "the year " .. y .. " has no RFC 3339 form") end
  local out = string.format("%04d-%02d-%02dT%02d:%02d:%02d", y, m, d, rem // 3600, rem % 3600 // 60, rem % 60)
  if digits > 0 then out = out .. string.format(".%0" .. digits .. "d", frac) end
  if not local_time then return out .. "Z" end
  local a = math.abs(offset)
  return out .. string.format("%s%02d:%02d", offset < 0 and "-" or "+", a // 3600, a % 3600 // 60)
end

local function number_of(str)
  return tonumber((str:gsub(",", ".")))
end

--- duration(s) -> seconds of an ISO 8601 duration: "PT5M", "P30D", "PT1H30M", "P1DT2H", "PT0.5S", "P2W".
-- Years and months are refused: they have no fixed length. A day is 24 hours.
function M.duration(s)
  if type(s) ~= "string" then usage("duration", 1, "string expected, got " .. type(s)) end
  local sign, body = s:match("^([+-]?)P(.*)$")
  if not body or body == "" then
    fail(string.format("not an ISO 8601 duration: '%s' (expected e.g. PT5M, P30D, P1DT2H)", s), s)
  end
  local date, time = body:match("^([^T]*)T(.*)$")
  if not date then date = body end
  if time == "" then fail(string.format("bad ISO 8601 duration '%s': nothing after T", s), s) end
  local total, seen_fraction = 0, false
  local function part(str, units)
    local pos, last = 1, 0
    while pos <= #str do
      local num, unit, nxt = str:match("^(%d+[.,]?%d*)(%a)()", pos)
      if not num then fail(string.format("bad ISO 8601 duration '%s' at '%s'", s, str:sub(pos)), s) end
      local rank
      for i, u in ipairs(units) do if u[1] == unit then rank = i end end
      if not rank or rank <= last then
        fail(string.format("bad ISO 8601 duration '%s': unexpected '%s'", s, unit), s)
      end
      if units[rank][2] == nil then
        fail(string.format("duration '%s': years and months have no fixed length in seconds; use days (D)", s), s)
      end
      if seen_fraction then
        fail(string.format("bad ISO 8601 duration '%s': only the last part may have a fraction", s), s)
      end
      if num:find("[.,]") then seen_fraction = true end
      total = total + number_of(num) * units[rank][2]
      last, pos = rank, nxt
    end
  end
  part(date, {{"Y"}, {"M"}, {"W", 604800}, {"D", 86400}})
  if time then part(time, {{"H", 3600}, {"M", 60}, {"S", 1}}) end
  if sign == "-" then total = -total end
  return math.tointeger(total) or total
end

local function seconds_text(s)
  if math.tointeger(s) then return string.format("%d", s) end
  local text = string.format("%.9f", s):gsub("0+$", ""):gsub("%.$", "")
  return text
end

--- format_duration(seconds) -> ISO 8601: 5400 -> "PT1H30M", 93600 -> "P1DT2H", 0 -> "PT0S"
function M.format_duration(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or math.abs(seconds) == math.huge then
    usage("format_duration", 1, "finite number of seconds expected, got " .. tostring(seconds))
  end
  local a = math.abs(seconds)
  local days = math.floor(a / 86400)
  local rem = a - days * 86400
  local h = math.floor(rem / 3600)
  rem = rem - h * 3600
  local m = math.floor(rem / 60)
  local s = rem - m * 60
  if math.tointeger(s) then s = math.tointeger(s) end
  local out = {seconds < 0 and "-P" or "P"}
  if days > 0 then out[#out + 1] = string.format("%dD", days) end
  if h > 0 or m > 0 or s > 0 or days == 0 then
    out[#out + 1] = "T"
    if h > 0 then out[#out + 1] = string.format("%dH", h) end
    if m > 0 then out[#out + 1] = string.format("%dM", m) end
    if s > 0 or (days == 0 and h == 0 and m == 0) then out[#out + 1] = seconds_text(s) .. "S" end
  end
  return table.concat(out)
end

local short_units = {ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600, d = 86400,
  w = 604800}
-- the one rule for short durations: units largest first, each once ("1h30m", never "30m1h" or "5m5m")
local unit_rank = {w = 1, d = 2, h = 3, m = 4, s = 5, ms = 6, us = 7, ["µs"] = 7, ns = 8}

--- parse_duration(s) -> seconds: "30s", "5m", "1h30m", "1.5h", "7d", "2w", "100ms" (units largest
-- first, each once: the rule of script arguments too); also ISO 8601 ("PT5M") and a number
-- (already seconds). A bare "5" is refused: say which unit.
function M.parse_duration(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then usage("parse_duration", 1, "string or number expected, got " .. type(s)) end
  if s:match("^[+-]?P") then return M.duration(s) end
  local sign, body = s:match("^([+-]?)(.*)$")
  if body == "0" then return 0 end
  if body == "" then fail("empty duration", s) end
  local total, pos, last = 0, 1, 0
  while pos <= #body do
    local num, unit, nxt = body:match("^(%d+%.?%d*)([^%d%.]+)()", pos)
    if not num or num:sub(-1) == "." then
      num = body:match("^(%d*%.?%d+)$", pos)
      fail(string.format("bad duration '%s'%s (expected e.g. 30s, 5m, 1h30m, 7d, 100ms)", s,
        num and ": give a unit" or ""), s)
    end
    local f = short_units[unit]
    if not f then
      fail(string.format("bad duration '%s': unknown unit '%s' (ns, us, ms, s, m, h, d, w)", s, unit), s)
    end
    if unit_rank[unit] <= last then
      fail(string.format("bad duration '%s': units go largest first, each once (e.g. 1h30m)", s), s)
    end
    last = unit_rank[unit]
    total = total + tonumber(num) * f
    pos = nxt
  end
  if sign == "-" then total = -total end
  return math.tointeger(total) or total
end

--- ago(duration [, format_opts]) -> RFC 3339 timestamp of now minus the duration ("24h", "PT5M", 3600)
function M.ago(d, opts)
  if opts ~= nil then check.options("time.ago", 2, opts, FORMAT_OPTIONS) end
  if type(d) ~= "string" and type(d) ~= "number" then
    usage("ago", 1, "duration (seconds, or a string such as \"24h\") expected, got " .. check.typename(d))
  end
  return M.format(C.now() - M.parse_duration(d), opts)
end

return M
