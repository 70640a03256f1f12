-- opsh.net: free loopback ports and waiting for a server to accept connections.
local C = require("opsh._net")
local core = require("opsh._core")
local check = require("opsh.check")

local M = {}

M.free_port = C.free_port

local WAIT_OPTIONS = {timeout = "duration", interval = "duration"}

local function address(fname, host, port, opts)
  check.string(fname, 1, host)
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    check.arg(fname, 2, port, {"integer", min = 0, max = 65535})
  end
  opts = check.options(fname, 3, opts, WAIT_OPTIONS)
  return check.duration(fname, 3, opts.timeout, 10, "timeout"), check.duration(fname, 3, opts.interval, 0.05, "interval")
end

--- port_open(host, port [, timeout]) -> true | false, reason
function M.port_open(host, port, timeout)
  address("net.port_open", host, port)
  if timeout ~= nil and type(timeout) ~= "number" then check.number("net.port_open", 3, timeout) end
  return C.port_open(host, port, timeout)
end

--- wait_port(host, port, {timeout = 10, interval = 0.05}) -> true, or raises {kind="timeout"}
function M.wait_port(host, port, opts)
  local timeout, interval = address("net.wait_port", host, port, opts)
  local deadline = core.hrtime() + timeout
  local reason
  repeat
    local ok
    ok, reason = C.port_open(host, port)
    if ok then return true end
    core.sleep(interval)
  until core.hrtime() > deadline
  error(core.error("timeout", string.format("nothing accepted connections on %s:%d within %g s (%s)",
    host, port, timeout, reason), {host = host, port = port}), 0)
end

--- wait_closed(host, port, {timeout}) -> true once nothing accepts connections there, or raises
function M.wait_closed(host, port, opts)
  local timeout, interval = address("net.wait_closed", host, port, opts)
  local deadline = core.hrtime() + timeout
  repeat
    if not C.port_open(host, port) then return true end
    core.sleep(interval)
  until core.hrtime() > deadline
  error(core.error("timeout", string.format("%s:%d still accepts connections after %g s",
    host, port, timeout), {host = host, port = port}), 0)
end

return M
