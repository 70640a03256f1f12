---@meta opsh.net
-- Editor stubs for `opsh.net` (lua/opsh/net.lua + bindings/net/net.c). See docs/net.md.

---@class opsh.net
local net = {}
---A port nothing listens on now (the kernel's pick for bind(0)).
---@param host? string default "127.0.0.1"
---@return integer
function net.free_port(host) end
---Does something accept a TCP connection there? Suspends only the task.
---@param host string an IP literal or "localhost"
---@param port integer
---@param timeout? number seconds, default 2
---@return boolean open
---@return string reason "open", "connection refused", "timed out", ...
function net.port_open(host, port, timeout) end
---Wait until the port accepts connections; raises {kind="timeout"}.
---@param host string
---@param port integer
---@param opts? {timeout?: number, interval?: number}
---@return true
function net.wait_port(host, port, opts) end
---Wait until nothing accepts connections there; raises {kind="timeout"}.
---@param host string
---@param port integer
---@param opts? {timeout?: number, interval?: number}
---@return true
function net.wait_closed(host, port, opts) end
return net
