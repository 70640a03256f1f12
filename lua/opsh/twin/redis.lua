-- opsh.twin.redis: a real redis-server on 127.0.0.1 for specs, benchmarks and `opsh twin`.
-- start{dir=, port=, tls={cert=, key=, ca=}, tls_only=, password=} -> handle with host, port,
-- tls_port, password, pid, dir, stop(), restart(), options(). The password goes into the
-- config file (mode 0600 in a 0700 directory), never on redis-server's command line. The
-- server daemonizes with a pidfile; stop() ends exactly that pid.
local C = require("opsh._redis")
local core = require("opsh._core")

local M = {}

local H = {}
H.__index = H

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sleep(s)
  if not pcall(core.sleep, s) then os.execute("sleep " .. s) end
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function alive(pid)
  return pid and os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- a value for redis.conf: double-quoted, every byte but [%w./_-] as \xHH
local function conf_value(s)
  return '"' .. s:gsub("[^%w%./_%-]", function(ch) return string.format("\\x%02x", ch:byte()) end) .. '"'
end

local function write_config(h)
  local lines = {
    "bind 127.0.0.1",
    "port " .. (h.port or 0),
    "dir " .. conf_value(h.dir),
    "pidfile " .. conf_value(h.pidfile),
    "logfile " .. conf_value(h.logfile),
    "daemonize yes",
    'save ""',
    "appendonly no",
  }
  if h.tls_port then
    local tls = h.tls
    lines[#lines + 1] = "tls-port " .. h.tls_port
    lines[#lines + 1] = "tls-cert-file " .. conf_value(tls.cert)
    lines[#lines + 1] = "tls-key-file " .. conf_value(tls.key)
    if tls.ca then lines[#lines + 1] = "tls-ca-cert-file " .. conf_value(tls.ca) end
    lines[#lines + 1] = "tls-auth-clients no"
  end
  if h.password then lines[#lines + 1] = "requirepass " .. conf_value(core.reveal(h.password)) end
  local path = h.dir .. "/redis.conf"
  os.remove(path)
  local f = assert(io.open(path, "wb"))
  os.execute("chmod 600 " .. q(path))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return path
end

-- launch and wait until it accepts connections; nil, why on failure
function H:_launch()
  local conf = write_config(self)
  local log = io.open(self.logfile, "rb")
  local offset = log and log:seek("end") or 0
  if log then log:close() end
  os.remove(self.pidfile)
  local errfile = self.dir .. "/start.err"
  if os.execute("redis-server " .. q(conf) .. " >/dev/null 2>" .. q(errfile)) ~= true then
    return nil, "redis-server did not start: " .. (read(errfile) or ""):gsub("%s+$", "")
  end
  local deadline = core.hrtime() + 15
  while core.hrtime() < deadline do
    local text = (read(self.logfile) or ""):sub(offset + 1)
    local pid = tonumber(read(self.pidfile) or "")
    if pid then self.pid = pid end
    if text:find("Ready to accept connections", 1, true) and pid then return true end
    local failure = text:match("#%s*(Failed[^\n]*)") or text:match("#%s*([^\n]*aborting[^\n]*)")
    if not failure and pid and not alive(pid) then
      failure = "it exited: " .. (text:match("([^\n]+)\n*$") or "no log")
    end
    if failure then
      if alive(self.pid) then os.execute("kill " .. self.pid) end
      self.pid = nil
      return nil, failure, text:find("in use", 1, true) ~= nil
    end
    sleep(0.02)
  end
  return nil, "redis-server was not ready within 15 s (see " .. self.logfile .. ")"
end

--- start(opts) -> handle (raises {kind="twin"} when the server does not come up)
function M.start(opts)
  opts = opts or {}
  if type(opts.dir) ~= "string" then error("bad argument #1 to 'start' (dir expected)", 2) end
  if opts.tls and not (opts.tls.cert and opts.tls.key) then
    error("bad argument #1 to 'start' (tls needs cert and key files)", 2)
  end
  if opts.tls_only and not opts.tls then error("bad argument #1 to 'start' (tls_only needs tls)", 2) end
  os.execute("mkdir -p " .. q(opts.dir) .. " && chmod 700 " .. q(opts.dir))
  local h = setmetatable({host = "127.0.0.1", dir = opts.dir, password = opts.password,
    tls = opts.tls, pidfile = opts.dir .. "/redis.pid", logfile = opts.dir .. "/redis.log"}, H)
  local why
  for _ = 1, 5 do
    h.port = not opts.tls_only and (opts.port or C.free_port()) or nil
    h.tls_port = opts.tls and (opts.tls_port or C.free_port()) or nil
    local ok, in_use
    ok, why, in_use = h:_launch()
    if ok then return h end
    if not in_use or opts.port or opts.tls_port then break end
  end
  error(core.error("twin", "redis-server: " .. why, {dir = opts.dir}), 0)
end

--- handle:stop(): SIGTERM to the pid it started, then SIGKILL after 10 s; idempotent.
function H:stop()
  local pid = self.pid
  if not pid then return end
  self.pid = nil
  os.execute("kill " .. pid .. " 2>/dev/null")
  local deadline = core.hrtime() + 10
  while alive(pid) and core.hrtime() < deadline do sleep(0.02) end
  if alive(pid) then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  while alive(pid) do sleep(0.02) end
  os.remove(self.pidfile)
end

--- handle:restart(): stop, then start again on the same ports.
function H:restart()
  self:stop()
  local ok, why = self:_launch()
  if not ok then error(core.error("twin", "redis-server restart: " .. why, {dir = self.dir}), 0) end
end

--- handle:options{tls=} -> options for redis.connect
function H:options(o)
  o = o or {}
  local tls = o.tls or (self.port == nil)
  return {host = self.host, port = tls and self.tls_port or self.port, password = self.password,
    tls = tls or nil, ca = tls and self.tls.ca or nil}
end

return M
