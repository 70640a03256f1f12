---@meta opsh.time
-- Editor stubs for `opsh.time` (lua/opsh/time.lua + bindings/time/time.c). See docs/time.md.

---@class opsh.time
local time = {}
---Wall-clock seconds since the epoch (float).
---@return number
function time.now() end
---Monotonic seconds, for intervals.
---@return number
function time.monotonic() end
---RFC 3339 -> epoch seconds.
---@param s string
---@param opts? {assume_utc?: boolean}
---@return number
function time.parse(s, opts) end
---Epoch seconds -> RFC 3339.
---@param t number
---@param opts? {utc?: boolean, fraction?: integer}
---@return string
function time.format(t, opts) end
---ISO 8601 duration ("PT5M", "P1DT2H") -> seconds.
---@param s string
---@return number
function time.duration(s) end
---Seconds -> ISO 8601 duration.
---@param seconds number
---@return string
function time.format_duration(seconds) end
---"30s", "5m", "1h30m", "7d", "100ms", "PT5M" or a number -> seconds.
---@param s string|number
---@return number
function time.parse_duration(s) end
---RFC 3339 timestamp of now minus the duration.
---@param d string|number
---@param opts? {utc?: boolean, fraction?: integer}
---@return string
function time.ago(d, opts) end
---@return integer days since 1970-01-01
function time.days_from_civil(y, m, d) end
---@return integer y, integer m, integer d
function time.civil_from_days(days) end

return time
