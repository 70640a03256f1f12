-- opsh.connections: the environment's PostgreSQL and Redis, ready to use. A procedure asks for
-- `ctx.pg()`, `ctx.pg{replica = true}` or `ctx.redis()` (ad-hoc code: `opsh.env():pg()`), and gets
-- a pooled, TLS-verified connection whose credentials come from the provider the environment
-- names — never from a field a script has to know about.
--
-- Named secrets (`postgres.password_secret`, `redis.key_secret`) are resolved in this order:
--   1. OPSH_SECRET_<NAME> in the process environment (NAME upper-cased, '-' -> '_'): a local override;
--   2. the environment's provider: `secrets = {provider = "keyvault" | "twin" | "env"}` (default:
--      "keyvault" when the environment names a vault, else "env").
local core = require("opsh._core")

local M = {}

local function fail(kind, message, fields) error(core.error(kind, message, fields), 0) end

local function env_var_name(secret_name)
  return "OPSH_SECRET_" .. secret_name:upper():gsub("[^%w]", "_")
end

-- provider name -> function(envt, secret_name) -> opsh.secret | nil
M.providers = {}

function M.providers.env(envt, name)
  local v = os.getenv(env_var_name(name))
  if v and v ~= "" then return core.secret(v) end
  return nil
end

function M.providers.twin(envt, name)
  local secrets = envt.twin and envt.twin.secrets
  return secrets and secrets[name] or nil
end

function M.providers.keyvault(envt, name)
  local ok, kv = pcall(require, "opsh.azure.keyvault")
  if not ok then
    fail("config", string.format("secret '%s': environment '%s' reads secrets from Key Vault, and this opsh has "
      .. "no Key Vault client yet; set %s to provide it locally", name, envt.name, env_var_name(name)))
  end
  local ok2, value = pcall(kv.get_secret, envt, name)
  if ok2 then return value end
  if core.is_error(value) then
    value.message = value.message .. string.format(" (secret '%s' from Key Vault; set %s to provide it locally)",
      name, env_var_name(name))
  end
  error(value, 0)
end

--- provider_of(envt) -> the name of the provider the environment uses
function M.provider_of(envt)
  local p = envt.secrets and envt.secrets.provider
  if p then return p end
  if envt.keyvault then return "keyvault" end
  return "env"
end

--- secret(envt, name) -> opsh.secret: the named secret, from the override or the provider
function M.secret(envt, name)
  if type(name) ~= "string" or name == "" then fail("usage", "connections.secret: a secret name is required") end
  local override = M.providers.env(envt, name)
  if override then return override end
  local provider_name = M.provider_of(envt)
  local provider = M.providers[provider_name]
  if not provider then
    fail("config", string.format("environment '%s': unknown secrets provider '%s' (use keyvault, twin or env)",
      envt.name, provider_name))
  end
  local value = provider(envt, name)
  if value == nil then
    fail("config", string.format("secret '%s' not found (environment '%s', provider %s; override with %s)",
      name, envt.name, provider_name, env_var_name(name)), {secret = name})
  end
  return core.is_secret(value) and value or core.secret(value)
end

-- pools and clients live for the run, one per environment and role
local pools, clients = {}, {}

local function pg_target(envt, opts)
  local p = envt.postgres
  if not p then fail("config", string.format("environment '%s' has no postgres section", envt.name)) end
  local host, port
  if opts.replica then
    if not p.replica then fail("config", string.format("environment '%s' names no postgres.replica", envt.name)) end
    host = p.replica_host or (p.replica .. ".postgres.database.azure.com")
    port = p.replica_port or p.port or 5432
  else
    host = p.host or (p.server .. ".postgres.database.azure.com")
    port = p.port or 5432
  end
  return host, math.tointeger(port) or port
end

--- pg(envt, {replica = false, database = env's, size = 5}) -> an opsh.pg pool (conn:query works on it via
-- pool:with, or use the pool's query/exec shortcuts). One pool per environment, role and database.
function M.pg(envt, opts)
  opts = opts or {}
  local host, port = pg_target(envt, opts)
  local p = envt.postgres
  local database = opts.database or p.database or "postgres"
  local key = table.concat({envt.name, opts.replica and "replica" or "primary", database}, "\0")
  if pools[key] and not pools[key].closed then return pools[key] end
  local user = p.admin_user
  if not user then fail("config", string.format("environment '%s' names no postgres.admin_user", envt.name)) end
  local password = p.password_secret and M.secret(envt, p.password_secret) or nil
  local pool = require("opsh.pg").pool{
    host = host, port = port, dbname = database, user = user, password = password,
    sslmode = p.sslmode or "verify-full", sslrootcert = p.sslrootcert,
    size = opts.size or 5, application_name = "opsh",
  }
  pools[key] = pool
  return pool
end

--- redis(envt, {db = 0}) -> an opsh.redis client over TLS, authenticated with redis.key_secret.
function M.redis(envt, opts)
  opts = opts or {}
  local r = envt.redis
  if not r then fail("config", string.format("environment '%s' has no redis section", envt.name)) end
  local key = envt.name .. "\0" .. tostring(opts.db or 0)
  if clients[key] and not clients[key]._closed then return clients[key] end
  local host = r.host or (r.name .. ".redis.cache.windows.net")
  local tls = r.tls ~= false
  local client = require("opsh.redis").connect{
    host = host, port = r.port or (tls and 6380 or 6379), tls = tls, ca = r.ca,
    password = r.key_secret and M.secret(envt, r.key_secret) or nil, db = opts.db,
  }
  clients[key] = client
  return client
end

--- close(): close every pool and client opened through this module (end of a run, specs)
function M.close()
  for k, pool in pairs(pools) do pool:close(); pools[k] = nil end
  for k, client in pairs(clients) do pcall(client.close, client); clients[k] = nil end
end

return M
