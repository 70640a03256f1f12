-- opsh.azure.redis: Azure Cache for Redis (Microsoft.Cache/redis) — show, list, SKU, and the access
-- keys, which come back as opsh.secret values and never as strings. The cache is the environment's
-- (`redis.name`, `redis.resource_group`) unless given.
local R = require("opsh.azure.resource")

local M = {}

M.API = "2024-11-01"
local TYPE = "Microsoft.Cache/redis"
local KEYS = {"primaryKey", "secondaryKey"}

local function cache_of(opts, fname)
  local envt, arm = R.ctx(opts)
  local r = envt.redis or {}
  local name = R.pick(opts, "name", r.name, fname, "the cache name")
  local rg = R.pick(opts, "resource_group", r.resource_group or envt.resource_group, fname, "the resource group")
  return arm, arm:id(rg, TYPE, name), name
end

local CACHE = R.set("name", "resource_group")

--- get{name =} -> the cache (properties.provisioningState, sku, hostName, sslPort, redisVersion, ...)
function M.get(opts)
  opts = R.args(opts, "redis.get", CACHE)
  local arm, id = cache_of(opts, "redis.get")
  return arm:get(id, {api_version = M.API})
end

--- list{resource_group =} -> the caches of the resource group, or of the subscription
function M.list(opts) return R.list(opts, "redis.list", TYPE, M.API) end

local SKUS = {Basic = "C", Standard = "C", Premium = "P"}

--- update_sku{sku = "Premium", capacity = 1 [, family = "P"]} -> the cache once scaled
function M.update_sku(opts)
  opts = R.args(opts, "redis.update_sku", R.set("name", "resource_group", "sku", "capacity", "family", "wait"))
  local sku = R.pick(opts, "sku", nil, "redis.update_sku", "sku (Basic, Standard or Premium)")
  if not SKUS[sku] then R.usage("redis.update_sku", "sku must be Basic, Standard or Premium") end
  local capacity = R.integer(opts, "capacity", "redis.update_sku", 0)
  if not capacity then R.usage("redis.update_sku", "capacity is required") end
  local arm, id, name = cache_of(opts, "redis.update_sku")
  return arm:patch(id, {api_version = M.API, wait = opts.wait, label = "redis sku " .. name,
    body = {properties = {sku = {name = sku, family = opts.family or SKUS[sku], capacity = capacity}}}})
end

--- keys{} -> {primaryKey = opsh.secret, secondaryKey = opsh.secret} (az redis list-keys)
function M.keys(opts)
  opts = R.args(opts, "redis.keys", CACHE)
  local arm, id = cache_of(opts, "redis.keys")
  return arm:post(id .. "/listKeys", {api_version = M.API, read = true, secret_fields = KEYS})
end

--- regenerate_key{key = "Primary" | "Secondary"} -> both keys after the change (opsh.secret values);
-- in a dry-run, {dry_run = true, record = ...}
function M.regenerate_key(opts)
  opts = R.args(opts, "redis.regenerate_key", R.set("name", "resource_group", "key"))
  local key = opts.key
  if key ~= "Primary" and key ~= "Secondary" then R.usage("redis.regenerate_key", "key must be Primary or Secondary") end
  local arm, id = cache_of(opts, "redis.regenerate_key")
  return arm:post(id .. "/regenerateKey", {api_version = M.API, body = {keyType = key}, secret_fields = KEYS})
end

return M
