-- opsh.azure: Azure for procedures — credentials (the DefaultAzureCredential chain), the ARM
-- client (errors, retries, throttling budget, long-running operations, paging, dry-run) and the
-- resources the runbook uses (aks, postgres, redis, monitor, dns, cost, storage; data planes: acr(),
-- blob()), all for the selected environment unless one is given.
--   local azure = require("opsh.azure")
--   local pools = azure.aks.pools()                        -- the environment's cluster
--   azure.aks.scale{pool = "usernodepool", count = 5}
--   local arm = azure.arm()                                -- any ARM call
--   local vm = arm:get(arm:id("rg", "Microsoft.Compute/virtualMachines", "vm1"), {api_version = "2024-07-01"})
local core = require("opsh._core")

local M = {}

local arms = {}

local function env_of(envt)
  if envt == nil then return require("opsh.env").current() end
  if type(envt) == "string" then return require("opsh.env").load(envt) end
  if type(envt) ~= "table" then
    error(core.error("usage", "an environment (table or name) is expected, got " .. type(envt)), 0)
  end
  return envt
end
M.env_of = env_of

local function key_of(envt)
  return envt.name or tostring(envt)
end

local per_env = {}   -- what -> {environment key -> the environment's one object of that kind}

-- the environment's one object of a kind, made by make(envt) the first time it is asked for
local function one_per_env(what, envt, make)
  envt = env_of(envt)
  local cache = per_env[what] or {}
  per_env[what] = cache
  local k = key_of(envt)
  if not cache[k] then cache[k] = make(envt) end
  return cache[k]
end

--- credential([env]) -> the environment's credential chain (one per environment for the run):
-- chain:token(audience) -> token (opsh.secret), expires_at; chain:auth(audience) -> an opsh.http
-- client auth provider
function M.credential(envt)
  return one_per_env("credential", envt, require("opsh.azure.credential").new)
end

--- token(audience [, env]) -> token (opsh.secret), expires_at (epoch seconds). audience: "arm",
-- "keyvault", "storage", "loganalytics", "appinsights", "acr" or a resource URI.
function M.token(audience, envt)
  return M.credential(envt):token(audience)
end

--- arm([env [, opts]]) -> the environment's ARM client (one per environment for the run). With
-- opts ({credential =, poll_interval =, min_poll =, max_poll =, retries =, budget = false}), a new
-- client made with them becomes the environment's.
function M.arm(envt, opts)
  envt = env_of(envt)
  local k = key_of(envt)
  if opts ~= nil or not arms[k] then
    if opts ~= nil and type(opts) ~= "table" then error(core.error("usage", "azure.arm: options table expected"), 0) end
    arms[k] = require("opsh.azure.arm").new(envt, opts)
  end
  return arms[k]
end

--- wait(handle [, {env =, poll_interval =}]) -> the result of an operation started with --no-wait
-- (or {wait = false}) in this or another process; the handle names its environment
function M.wait(handle, opts)
  opts = opts or {}
  local _, env_name = require("opsh.azure.lro").decode(type(handle) == "table" and handle.handle or handle)
  local envt = opts.env
  if envt == nil and not require("opsh.env").selected_name() then envt = env_name end
  return M.arm(envt):wait(handle, opts)
end

--- no_wait(on): mutations give an operation handle instead of waiting (`opsh --no-wait`)
function M.no_wait(on)
  require("opsh.azure.lro").no_wait = on and true or false
end


--- acr([env]) -> the environment's container registry (opsh.azure.acr; docs/acr.md), one per environment
function M.acr(envt)
  return one_per_env("acr", envt, require("opsh.azure.acr").of)
end

--- blob([env]) -> the environment's storage account (opsh.azure.blob Account, Entra tokens; docs/blob.md)
function M.blob(envt)
  return one_per_env("blob", envt, require("opsh.azure.blob").of)
end

--- reset(): forget the cached credentials, tokens, clients and budgets (specs, the REPL)
function M.reset()
  arms, per_env = {}, {}
  require("opsh.azure.throttle").reset()
end

-- name = true: the module opsh.azure.<name>; name = "mod": the function <name> of opsh.azure.<mod>
local resources = {aks = true, postgres = true, redis = true, monitor = true, dns = true, cost = true,
  storage = true, keyvault = true, insights = "query", logs = "query"}

return setmetatable(M, {__fields = resources, __index = function(t, k)
  if resources[k] then
    local mod = require("opsh.azure." .. (resources[k] == true and k or resources[k]))
    if resources[k] ~= true then mod = mod[k] end
    rawset(t, k, mod)
    return mod
  end
end})
