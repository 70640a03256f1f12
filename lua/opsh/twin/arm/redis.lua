-- opsh.twin.arm.redis: Microsoft.Cache/redis. As on Azure, both access keys of the production cache open the
-- twin Redis at once: its default user has two passwords (ACL SETUSER default on resetpass >primary >secondary).
-- Regenerating a key replaces only that key's password. The component record's password (what the twin's
-- secrets give) follows the primary key; the secondary is kept in the twin's secrets store.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local lro = require("opsh.twin.arm.lro")
local platform = require("opsh.twin.platform")
local router = require("opsh.twin.arm.router")

local M = {}

local C = router.COLLECTION
-- field names with "key" in them: the twin's unauthenticated state view redacts them
local SECRETS = "arm.secrets"
local CACHE = "^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.cache/redis/([^/]+))"

local function new_key() return core.reveal(crypto.random_password(32)) end

local function twin_redis(twin, name)
  local prod = platform.region("production")
  if not (prod.redis and prod.redis.name:lower() == name) then return nil end
  local rec = twin.store:get("components", "redis")
  if rec and not rec.absent and rec.port then return rec end
end

-- gives the twin Redis's default user exactly the two keys as passwords, authenticating with `auth`
local function set_passwords(twin, rec, auth, primary, secondary)
  local redis = require("opsh.redis")
  local r <close> = redis.connect({host = rec.host, port = rec.port, tls = true, ca = twin.ca.ca,
    password = core.secret(auth), timeout = 10})
  r:call("ACL", "SETUSER", "default", "on", "resetpass", core.secret(">" .. primary), core.secret(">" .. secondary))
end

--- keys(twin, key, name) -> {primaryKey, secondaryKey}; the twin Redis accepts both
local function keys(twin, key, name)
  local stored = twin.store:get(SECRETS, key) or {}
  local rec = twin_redis(twin, name)
  local primary = rec and rec.password or stored.primary_key
  local changed = false
  if not primary then primary, changed = new_key(), true end
  if not stored.secondary_key then stored.secondary_key, changed = new_key(), true end
  -- a (re)started twin Redis knows only its primary key: `synced` names the server the secondary was given to
  local server = rec and (tostring(rec.pid) .. ":" .. rec.port) or nil
  if rec and (changed or stored.synced ~= server or stored.primary_key ~= primary) then
    set_passwords(twin, rec, primary, primary, stored.secondary_key)
    stored.synced, changed = server, true
  end
  if changed or stored.primary_key ~= primary then
    stored.primary_key = primary
    twin.store:put(SECRETS, key, stored)
  end
  return {primaryKey = primary, secondaryKey = stored.secondary_key}
end

local function get_cache(twin, key)
  local c = twin.store:get(C, key)
  if not c then router.fail(404, "ResourceNotFound", "The Resource 'Microsoft.Cache/Redis/" .. key:match("[^/]+$")
    .. "' under resource group was not found.") end
  return c
end

local VALID = {Basic = "C", Standard = "C", Premium = "P"}

local function update(twin, ctx, key, body)
  local cache = get_cache(twin, key)
  local props = body.properties or body
  local sku = props.sku ~= json.null and props.sku or nil
  if sku then
    local family = VALID[sku.name]
    local cap = math.tointeger(tonumber(sku.capacity))
    if not family or tostring(sku.family):upper() ~= family or not cap or cap < 0 or cap > 6 then
      router.fail(400, "InvalidRequestBody", string.format("The SKU %s %s%s is not valid: Basic/Standard use family C "
        .. "(0-6), Premium family P (1-5).", tostring(sku.name), tostring(sku.family), tostring(sku.capacity)))
    end
    local order = {Basic = 1, Standard = 2, Premium = 3}
    if order[sku.name] < order[cache.properties.sku.name] then
      router.fail(400, "BadRequest", "Scaling down to a lower tier is not supported.")
    end
    sku = {name = sku.name, family = family, capacity = cap}
  end
  -- as Azure answers: the requested SKU at once, provisioningState Scaling until the work ends
  cache.properties.provisioningState = sku and "Scaling" or "Updating"
  if sku then cache.properties.sku = sku end
  twin.store:put(C, key, cache)
  local headers = lro.start(ctx, {provider = "Microsoft.Cache", location = cache.location, work = function()
    local c = twin.store:get(C, key)
    if sku then c.properties.sku = sku end
    if props.redisConfiguration and props.redisConfiguration ~= json.null then
      for k, v in pairs(props.redisConfiguration) do
        if v ~= json.null and type(v) ~= "table" then c.properties.redisConfiguration[k] = tostring(v) end
      end
    end
    for _, f in ipairs({"enableNonSslPort", "minimumTlsVersion", "replicasPerPrimary", "publicNetworkAccess"}) do
      if props[f] ~= nil and props[f] ~= json.null then c.properties[f] = props[f] end
    end
    if body.tags and body.tags ~= json.null then c.tags = body.tags end
    c.properties.provisioningState = "Succeeded"
    twin.store:put(C, key, c)
    return c
  end})
  return {status = 202, headers = {Location = headers.Location, ["Retry-After"] = "1"}, json = cache}
end

function M.routes(api)
  local twin, add = api.twin, api.add
  add("PATCH", CACHE .. "$", function(req, ctx, key) return update(twin, ctx, key, req:json() or {}) end)
  add("POST", CACHE .. "/listkeys$", function(_, _, key, name)
    get_cache(twin, key)
    return keys(twin, key, name)
  end)
  add("POST", CACHE .. "/regeneratekey$", function(req, _, key, name)
    get_cache(twin, key)
    local b = req:json() or {}
    local which = tostring(b.keyType or "")
    if which ~= "Primary" and which ~= "Secondary" then
      router.fail(400, "InvalidRequestBody", "keyType must be Primary or Secondary.")
    end
    local current = keys(twin, key, name)
    local fresh = new_key()
    local stored = twin.store:get(SECRETS, key)
    local primary = which == "Primary" and fresh or current.primaryKey
    local secondary = which == "Secondary" and fresh or current.secondaryKey
    local rec = twin_redis(twin, name)
    if rec then
      set_passwords(twin, rec, current.primaryKey, primary, secondary)
      if which == "Primary" then twin.store:patch("components", "redis", {password = fresh}) end
    end
    stored.primary_key, stored.secondary_key = primary, secondary
    twin.store:put(SECRETS, key, stored)
    return {primaryKey = stored.primary_key, secondaryKey = stored.secondary_key}
  end)
end

return M
