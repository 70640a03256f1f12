-- opsh.env: environments — which resource group, cluster, server... a procedure acts on.
-- An environment is a Lua file returning a table, looked up in each root's environments/
-- ($OPSH_PATH, ~/.config/opsh), then among the bundled ones; --env or OPSH_ENV selects it.
local runtime = require("opsh.runtime")
local core = require("opsh._core")

local M = {}

local function fail(kind, message) error(core.error(kind, message), 0) end

-- field -> type, or a nested schema; `required` lists the dotted paths that must be set.
local schema = {
  name = "string", description = "string", subscription = "string", tenant = "string",
  resource_group = "string", location = "string", namespace = "string",
  deployments = "list",
  aks = {cluster = "string", resource_group = "string", node_pool = "string", kubeconfig = "string",
    context = "string"},
  postgres = {server = "string", resource_group = "string", database = "string", admin_user = "string",
    replica = "string", host = "string", port = "number", sslmode = "string", sslrootcert = "string",
    password_secret = "string", replica_host = "string", replica_port = "number"},
  redis = {name = "string", resource_group = "string", host = "string", port = "number", tls = "boolean",
    ca = "string", key_secret = "string"},
  keyvault = {name = "string", url = "string"},
  appinsights = {app = "string", resource_group = "string"},
  acr = {name = "string", login_server = "string"},
  storage = {account = "string", resource_group = "string", endpoint = "string", backup_container = "string"},
  secondary = "string",
  secrets = {provider = "string"},
  azure = {cloud = "string", credentials = "list", client_id = "string"},
  monitor = {action_group = "string", workspace = "string"},
  dns = {zone = "string", record = "string", resource_group = "string"},
  endpoints = {arm = "string", login = "string", imds = "string", keyvault = "string", query = "string",
    loganalytics = "string", appinsights = "string", acr = "string", blob = "string", kubernetes = "string",
    token = "string", ca = "string"},
  health = "table",   -- daily-health-check thresholds (opsh.ops.health.defaults)
  maintenance = {window = "string"},   -- UTC, "Sun 02:00-06:00" or "02:00-06:00" (scale-redis)
  audit = {file = "string", table = "string", database = "string", container = "string"},   -- opsh.audit.ship
  twin = "table",
}
local required = {"name", "resource_group", "namespace", "aks.cluster", "postgres.server"}
--- The schema (field -> type or nested schema), as docs/environments.md documents it.
M.schema = schema

local function check(tbl, sch, prefix, where)
  for k, v in pairs(tbl) do
    local want = sch[k]
    local path = prefix .. tostring(k)
    if want == nil then
      local names = {}
      for name in pairs(sch) do names[#names + 1] = name end
      local near = type(k) == "string" and require("opsh.script").nearest(k, names)
      fail("config", string.format("%s: unknown field '%s'%s", where, path,
        near and ("; did you mean '" .. prefix .. near .. "'?") or ""))
    elseif type(want) == "table" then
      if type(v) ~= "table" then fail("config", string.format("%s: '%s' must be a table, not a %s", where, path, type(v))) end
      check(v, want, path .. ".", where)
    elseif want == "list" then
      if type(v) ~= "table" then
        fail("config", string.format("%s: '%s' must be a list of strings, not a %s", where, path, type(v)))
      end
      for i, item in ipairs(v) do
        if type(item) ~= "string" then
          fail("config", string.format("%s: '%s[%d]' must be a string", where, path, i))
        end
      end
    elseif type(v) ~= want then
      fail("config", string.format("%s: '%s' must be a %s, not a %s", where, path, want, type(v)))
    end
  end
end

--- Validate an environment table; raises {kind="config"} naming the file and field.
function M.validate(envt, where)
  if type(envt) ~= "table" then fail("config", string.format("%s: must return a table, not a %s", where, type(envt))) end
  check(envt, schema, "", where)
  for _, path in ipairs(required) do
    local v = envt
    for part in path:gmatch("[^.]+") do v = type(v) == "table" and v[part] or nil end
    if v == nil then fail("config", string.format("%s: '%s' is required", where, path)) end
  end
  -- defaults that follow from the top level
  for _, section in ipairs({"aks", "postgres", "redis", "appinsights", "storage"}) do
    if envt[section] and envt[section].resource_group == nil then
      envt[section].resource_group = envt.resource_group
    end
  end
  return envt
end

--- Names of every environment: {name = origin}
function M.list()
  local names = {}
  for _, n in ipairs(runtime.embedded("env:")) do names[n] = "bundled" end
  for n, path in pairs(require("opsh.script").in_roots("environments")) do names[n] = path end
  return names
end

--- Load environment `name` -> table (validated), origin.
function M.load(name)
  if type(name) ~= "string" or not name:match("^[%w_.-]+$") then
    fail("usage", string.format("invalid environment name '%s'", tostring(name)))
  end
  local chunk, err
  local origin = require("opsh.script").in_roots("environments")[name]
  if origin then
    chunk, err = loadfile(origin, "t")
  else
    chunk, err = runtime.load_embedded("env:" .. name)
    origin = "bundled environment '" .. name .. "'"
  end
  if not chunk and not err then
    local names = {}
    for n in pairs(M.list()) do names[#names + 1] = n end
    table.sort(names)
    local nearest = require("opsh.script").nearest(name, names)
    fail("usage", string.format("unknown environment '%s'%s (known: %s)", name,
      nearest and ("; did you mean '" .. nearest .. "'?") or "", table.concat(names, ", ")))
  end
  if not chunk then fail("config", err) end
  local ok, envt = pcall(chunk)
  if not ok then
    if core.is_error(envt) then error(envt, 0) end
    fail("config", origin .. ": " .. tostring(envt))
  end
  if type(envt) == "table" and envt.name == nil then envt.name = name end
  envt = M.validate(envt, origin)
  return setmetatable(envt, M.methods), origin
end

--- What an environment can do (opsh.connections): env:pg{replica=}, env:redis(), env:secret(name).
M.methods = {__index = {
  pg = function(self, opts) return require("opsh.connections").pg(self, opts) end,
  redis = function(self, opts) return require("opsh.connections").redis(self, opts) end,
  secret = function(self, name) return require("opsh.connections").secret(self, name) end,
}}

local selected, cache

--- Select the environment by name (nil: OPSH_ENV).
function M.select(name)
  selected, cache = name, nil
end

--- The selected environment; raises a usage error when none is selected.
function M.current()
  if cache then return cache end
  local name = selected or os.getenv("OPSH_ENV")
  if not name or name == "" then
    fail("usage", "no environment selected: pass --env NAME or set OPSH_ENV (see 'opsh env list')")
  end
  cache = M.load(name)
  return cache
end

--- The selected environment's name, or nil.
function M.selected_name()
  local name = selected or os.getenv("OPSH_ENV")
  if name == "" then return nil end
  return name
end

return M
