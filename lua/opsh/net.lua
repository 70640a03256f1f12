-- opsh.net: free loopback ports and waiting for a server to accept connections.
local C = require("opsh._net")
local core = require("opsh._core")

local M = {}

M.free_port = C.free_port
M.port_open = C.port_open

--- wait_port(host, port, {timeout = 10, interval = 0.05}) -> true, or raises {kind="timeout"}
function M.wait_port(host, port, opts)
  opts = opts or {}
  local deadline = core.hrtime() + (opts.timeout or 10)
  local reason
  repeat
    local ok
    ok, reason = C.port_open(host, port)
    if ok then return true end
    core.sleep(opts.interval or 0.05)
  until core.hrtime() > deadline
  error(core.error("timeout", string.format("nothing accepted connections on %s:%d within %g s (%s)",
    host, port, opts.timeout or 10, reason), {host = host, port = port}), 0)
end

--- wait_closed(host, port, {timeout}) -> true once nothing accepts connections there, or raises
function M.wait_closed(host, port, opts)
  opts = opts or {}
  local deadline = core.hrtime() + (opts.timeout or 10)
  repeat
    if not C.port_open(host, port) then return true end
    core.sleep(opts.interval or 0.05)
  until core.hrtime() > deadline
  error(core.error("timeout", string.format("%s:%d still accepts connections after %g s",
    host, port, opts.timeout or 10), {host = host, port = port}), 0)
end

return M
