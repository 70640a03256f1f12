-- opsh.twin.proctab: the processes the twin started, by pid: is one still running, is it still the
-- program we started (and not a later process that reuses the number), stop it with its own signal.
local core = require("opsh._core")
local log = require("opsh.log")
local proc = require("opsh.proc")

local M = {}

--- self_pid() -> this process's pid
function M.self_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = tonumber(f:read("l"):match("^(%d+)"))
  f:close()
  return pid
end

-- a process's state letter from /proc (R, S, Z...), nil when it is gone
local function proc_state(pid)
  local f = io.open("/proc/" .. math.tointeger(pid) .. "/stat", "r")
  if not f then return nil end
  local line = f:read("l") or ""
  f:close()
  return line:match("^%d+ %b() (%a)")
end

--- running(pid) -> true while the process exists and is not a zombie
function M.running(pid)
  local s = pid and math.tointeger(pid) and proc_state(pid)
  return s ~= nil and s ~= "Z"
end

--- is_ours(rec) -> true when rec.pid still runs rec.program
function M.is_ours(rec)
  local argv = proc.cmdline(rec.pid)
  if not argv or not argv[1] then return false end
  local first = argv[1]:match("^(%S+)") or ""
  local base = first:match("([^/]+)$") or first
  return base:sub(1, #rec.program) == rec.program
end

--- stop(name, rec) -> "stopped" | "killed" | "not running" | "pid reused": rec.stop_signal (TERM by
-- default), then KILL after 15 s.
function M.stop(name, rec)
  if not rec.pid or not M.running(rec.pid) then return "not running" end
  if not M.is_ours(rec) then
    log.warn(string.format("twin %s: pid %d is no longer %s; leaving it alone", name, rec.pid, rec.program))
    return "pid reused"
  end
  proc.signal_pid(rec.pid, rec.stop_signal or "TERM")
  local deadline = core.hrtime() + 15
  while M.running(rec.pid) and core.hrtime() < deadline do core.sleep(0.05) end
  if M.running(rec.pid) then
    proc.signal_pid(rec.pid, "KILL")
    while M.running(rec.pid) do core.sleep(0.05) end
    return "killed"
  end
  return "stopped"
end

return M
