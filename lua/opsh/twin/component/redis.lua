-- twin component "redis": Redis 7 standing for Azure Cache for Redis: TLS only (like port 6380),
-- with a password that stands for the cache's primary key.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local launcher = require("opsh.twin.redis")

local M = {name = "redis", program = "redis-server", phase = 3}

function M.pidfile(dir) return dir .. "/redis/redis.pid" end

function M.start(tw)
  local h = launcher.start({dir = tw.dir .. "/redis", tls = {cert = tw.ca.cert, key = tw.ca.key, ca = tw.ca.ca},
    tls_only = true, password = crypto.random_password(32, {url = true})})
  return {pid = h.pid, program = M.program, host = h.host, port = h.tls_port, tls = true, dir = h.dir,
    password = core.reveal(h.password)}
end

function M.check(tw, rec)
  local ok, res = pcall(function()
    local redis = require("opsh.redis")
    local r <close> = redis.connect({host = rec.host, port = rec.port, tls = true, ca = tw.ca.ca,
      password = core.secret(rec.password), timeout = 5})
    return r:call("PING")
  end)
  if not ok then return false, tostring(res) end
  return true, string.format("rediss://127.0.0.1:%d", rec.port)
end

function M.shell(tw, rec, out)
  out.REDISCLI_AUTH = rec.password
  out.OPSH_REDIS_URL = string.format("rediss://%s:%d", rec.host, rec.port)
  out.OPSH_TWIN_CA = tw.ca.ca
end

function M.environment(tw, rec, env)
  env.redis = {name = require("opsh.twin.platform").region("production").redis.name, host = rec.host, port = rec.port, tls = true, ca = tw.ca.ca,
    key_secret = "redis-primary-key"}
  env.twin.redis_password = core.secret(rec.password)
  env.twin.secrets[env.redis.key_secret] = env.twin.redis_password
end

return M
