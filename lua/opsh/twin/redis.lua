-- opsh.twin.redis: a real redis-server on 127.0.0.1 for specs, benchmarks and `opsh twin`.
-- start{dir=, port=, tls={cert=, key=, ca=}, tls_only=, password=} -> handle with host, port,
-- tls_port, password, pid, dir, stop(), restart(), options(). The password goes into the
-- config file (mode 0600 in a 0700 directory), never on redis-server's command line. The
-- server daemonizes with a pidfile; stop() ends exactly that pid. Every wait suspends only the
-- calling task: no shell, no blocking call.
local core = require("opsh._core")
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")

local M = {}

local H = {}
H.__index = H

local PRIVATE_DIR, PRIVATE_FILE = tonumber("700", 8), tonumber("600", 8)
local POLL = 0.02

-- waits while pid exists, up to timeout seconds; true once it is gone
local function wait_gone(pid, timeout)
  local deadline = core.hrtime() + timeout
  while proc.alive(pid) do
    if core.hrtime() >= deadline then return false end
    core.sleep(POLL)
  end
  return true
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
  fs.write(path, table.concat(lines, "\n") .. "\n", {mode = PRIVATE_FILE})
  return path
end

-- launch and wait until it accepts connections; nil, why, port_in_use on failure
function H:_launch()
  local conf = write_config(self)
  local st = fs.stat(self.logfile)
  local offset = st and st.size or 0
  if fs.exists(self.pidfile) then fs.remove(self.pidfile) end
  -- with daemonize, redis-server forks and its first process exits once the daemon is on its way
  local r = proc.run({argv = {"redis-server", conf}, stdout = "capture", stderr = "stdout", check = false,
    timeout = 30, env = require("opsh.twin.childenv").clean()})
  if r.code ~= 0 then
    return nil, "redis-server did not start: " .. (r.stdout or ""):gsub("%s+$", "")
  end
  local listen = self.port or self.tls_port
  local deadline = core.hrtime() + 15
  while core.hrtime() < deadline do
    local text = (fs.read(self.logfile, {missing_ok = true}) or ""):sub(offset + 1)
    local pid = tonumber(fs.read(self.pidfile, {missing_ok = true}) or "")
    if pid then self.pid = pid end
    if text:find("Ready to accept connections", 1, true) and pid and net.port_open(self.host, listen) then
      return true
    end
    local failure = text:match("#%s*(Failed[^\n]*)") or text:match("#%s*([^\n]*aborting[^\n]*)")
    if not failure and pid and not proc.alive(pid) then
      failure = "it exited: " .. (text:match("([^\n]+)\n*$") or "no log")
    end
    if failure then
      if self.pid and proc.alive(self.pid) then proc.signal_pid(self.pid, "TERM") end
      self.pid = nil
      return nil, failure, text:find("in use", 1, true) ~= nil
    end
    core.sleep(POLL)
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
  if not fs.mkdir(opts.dir, {parents = true, mode = PRIVATE_DIR}) then fs.chmod(opts.dir, PRIVATE_DIR) end
  local h = setmetatable({host = "127.0.0.1", dir = opts.dir,
    password = opts.password and core.secret(opts.password), tls = opts.tls,
    pidfile = opts.dir .. "/redis.pid", logfile = opts.dir .. "/redis.log"}, H)
  local why
  for _ = 1, 5 do
    h.port = not opts.tls_only and (opts.port or net.free_port()) or nil
    h.tls_port = opts.tls and (opts.tls_port or net.free_port()) or nil
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
  proc.signal_pid(pid, "TERM")
  if not wait_gone(pid, 10) then
    proc.signal_pid(pid, "KILL")
    if not wait_gone(pid, 10) then
      error(core.error("twin", string.format("redis-server (pid %d) survived SIGKILL", pid), {pid = pid}), 0)
    end
  end
  if fs.exists(self.pidfile) then fs.remove(self.pidfile) end
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
