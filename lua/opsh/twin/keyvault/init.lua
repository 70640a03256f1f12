-- opsh.twin.keyvault: the Key Vault twin (secrets data plane, api-version 7.x) on a listener of its
-- own. One vault a path prefix (https://127.0.0.1:PORT/<vault>/secrets/...): the platform's
-- production and secondary vaults and kv-legal-twin. Versioned secrets in the store (collection
-- "keyvault", key "<vault>/<name>"), soft delete and recover, paging with nextLink, the 401 Bearer
-- challenge, tokens verified with opsh.twin.identity (audience https://vault.azure.net). Seeded with the
-- twin's real credentials (database-password, database-url, redis-primary-key) once their servers
-- are up; nothing else writes them (the ARM twin's password changes do not). Knobs: collection
-- "keyvault.knobs", key "knobs": {page_size =, challenge_resource =, recovery_level = {[vault] = level}}
-- (a level without "Purgeable" is a vault with purge protection: purge answers 403). See docs/keyvault.md.
local json = require("opsh.json")
local platform = require("opsh.twin.platform")
local identity = require("opsh.twin.identity")
local router = require("opsh.twin.arm.router")

local M = {name = "keyvault", listener = true}

M.COLLECTION = "keyvault"
M.KNOBS = "keyvault.knobs"
M.AUDIENCE = "https://vault.azure.net"
M.RECOVERABLE_DAYS = 90
M.RECOVERY_LEVEL = "Recoverable+Purgeable"

--- vaults() -> the twin's vault names (production's first)
function M.vaults()
  local out = {}
  for _, r in ipairs(platform.regions) do
    out[#out + 1] = r.keyvault or ("kv-legal-" .. (r.name == "secondary" and "production-secondary" or r.name))
  end
  out[#out + 1] = "kv-legal-twin"
  return out
end

local function is_vault(name)
  for _, v in ipairs(M.vaults()) do if v == name then return true end end
  return false
end

local function err(status, code, message)
  return {status = status, headers = {["x-ms-error-code"] = code}, json = {error = {code = code, message = message}}}
end

local function new_version()
  return (router.uuid():gsub("%-", ""))
end

local level = M.RECOVERY_LEVEL   -- the vault being served's recovery level, set per request

-- the bundle a GET returns for one version (value included unless `bare`)
local function bundle(base, vault, name, v, bare)
  local b = {id = string.format("%s/%s/secrets/%s/%s", base, vault, name, v.version), contentType = v.contentType,
    tags = v.tags, attributes = {enabled = v.enabled, created = v.created, updated = v.updated, exp = v.exp,
      nbf = v.nbf, recoverableDays = M.RECOVERABLE_DAYS, recoveryLevel = level}}
  if not bare then b.value = v.value end
  return b
end

-- the DeletedSecretBundle (or, `item`, the DeletedSecretItem a listing shows: id without version)
local function deleted_bundle(base, vault, name, obj, item)
  local b = bundle(base, vault, name, obj.versions[#obj.versions], true)
  if item then b.id = string.format("%s/%s/secrets/%s", base, vault, name) end
  b.recoveryId = string.format("%s/%s/deletedsecrets/%s", base, vault, name)
  b.deletedDate, b.scheduledPurgeDate = obj.deleted.deletedDate, obj.deleted.scheduledPurgeDate
  return b
end

local function put_version(store, vault, name, fields)
  local key = vault .. "/" .. name
  local obj = store:get(M.COLLECTION, key) or {versions = {}}
  if obj.deleted then return nil end
  local now = os.time()
  local v = {version = new_version(), value = fields.value, contentType = fields.contentType, tags = fields.tags,
    enabled = fields.enabled ~= false, exp = fields.exp, nbf = fields.nbf, created = now, updated = now}
  obj.versions[#obj.versions + 1] = v
  store:put(M.COLLECTION, key, obj)
  return v
end

--- seed(twin): the twin's real credentials, each once its server's state is known
function M.seed(twin)
  local st = twin.read_state()
  local comps = st.components or {}
  local vault = M.vaults()[1]
  local pg, redis = comps.postgres, comps.redis
  local want = {}
  if pg and not pg.absent and pg.password then
    want["database-password"] = {value = pg.password, contentType = "text/plain"}
    want["database-url"] = {value = string.format("postgresql://%s@%s:%s/%s?sslmode=verify-full", pg.user or "",
      pg.host or "127.0.0.1", tostring(pg.port or ""), pg.dbname or ""), contentType = "text/plain"}
  end
  if redis and not redis.absent and redis.password then
    want["redis-primary-key"] = {value = redis.password, contentType = "text/plain"}
  end
  for name, f in pairs(want) do
    if not twin.store:get(M.COLLECTION, vault .. "/" .. name) then put_version(twin.store, vault, name, f) end
  end
end

local function knobs(twin) return (twin.store:get(M.KNOBS, "knobs")) or {} end

local function page(req, url, items, size)
  local skip = math.tointeger(tonumber(req.query["$skiptoken"] or "")) or 0
  local out = {}
  for i = skip + 1, math.min(#items, skip + size) do out[#out + 1] = items[i] end
  local body = {value = json.array(out), nextLink = json.null}
  if skip + size < #items then
    body.nextLink = string.format("%s?api-version=%s&maxresults=%d&$skiptoken=%d", url, req.query["api-version"],
      size, skip + size)
  end
  return {status = 200, json = body}
end

local function handle(twin, base, req)
  local vault, rest = req.path:match("^/([%w%-]+)(/.*)$")
  if not vault or not is_vault(vault) then
    return err(404, "VaultNotFound", "No vault is served at " .. req.path)
  end
  if not req.query["api-version"] then
    return err(400, "BadParameter", "The 'api-version' query parameter is required.")
  end
  local _, denied = identity.verify(twin, req.headers.authorization, M.AUDIENCE)
  if denied then
    local k = knobs(twin)
    if k.challenge_resource then
      denied.headers["WWW-Authenticate"] = denied.headers["WWW-Authenticate"]:gsub('resource="[^"]*"',
        'resource="' .. k.challenge_resource .. '"'):gsub('scope="[^"]*"', 'scope="' .. k.challenge_resource .. '/.default"')
    end
    denied.headers["x-ms-error-code"] = "Unauthorized"
    return denied
  end
  -- the servers' state is a snapshot of the whole store: look at most once a second
  if os.time() ~= M.seeded_at then
    M.seeded_at = os.time()
    M.seed(twin)
  end
  local store = twin.store
  local k = knobs(twin)
  level = type(k.recovery_level) == "table" and k.recovery_level[vault] or M.RECOVERY_LEVEL
  local size = math.min(tonumber(req.query.maxresults) or 25, tonumber(k.page_size) or 25)
  local m = req.method
  local name, tail = rest:match("^/secrets/([^/]+)(.*)$")
  if rest == "/secrets" and m == "GET" then
    local items = {}
    for _, it in ipairs(store:list(M.COLLECTION)) do
      local v, n = it.key:match("^([^/]+)/(.+)$")
      local obj = it.object
      if v == vault and not obj.deleted and #obj.versions > 0 then
        local b = bundle(base, vault, n, obj.versions[#obj.versions], true)
        b.id = string.format("%s/%s/secrets/%s", base, vault, n)
        items[#items + 1] = b
      end
    end
    return page(req, base .. "/" .. vault .. "/secrets", items, size)
  end
  if name and not name:match("^[%w%-]+$") then return err(400, "BadParameter", "Invalid secret name.") end
  if name and tail == "" and m == "PUT" then
    local ok, body = pcall(json.decode, req.body or "")
    if not ok or type(body) ~= "table" or type(body.value) ~= "string" then
      return err(400, "BadParameter", "The request body must be JSON with a string 'value'.")
    end
    local a = type(body.attributes) == "table" and body.attributes or {}
    local v = put_version(store, vault, name, {value = body.value, contentType = body.contentType, tags = body.tags,
      enabled = a.enabled, exp = a.exp, nbf = a.nbf})
    if not v then
      return err(409, "Conflict", string.format("Secret %s is currently in a deleted but recoverable state.", name))
    end
    return {status = 200, json = bundle(base, vault, name, v)}
  end
  local key = vault .. "/" .. (name or "")
  if name and m == "DELETE" and tail == "" then
    local obj = store:get(M.COLLECTION, key)
    if not obj or obj.deleted then return err(404, "SecretNotFound", "A secret with (name/id) " .. name .. " was not found in this key vault.") end
    local now = os.time()
    obj.deleted = {deletedDate = now, scheduledPurgeDate = now + M.RECOVERABLE_DAYS * 86400}
    store:put(M.COLLECTION, key, obj)
    return {status = 200, json = deleted_bundle(base, vault, name, obj)}
  end
  if rest == "/deletedsecrets" and m == "GET" then
    local items = {}
    for _, it in ipairs(store:list(M.COLLECTION)) do
      local v, n = it.key:match("^([^/]+)/(.+)$")
      if v == vault and it.object.deleted then items[#items + 1] = deleted_bundle(base, vault, n, it.object, true) end
    end
    return page(req, base .. "/" .. vault .. "/deletedsecrets", items, size)
  end
  local dname = rest:match("^/deletedsecrets/([^/]+)$")
  if dname and (m == "GET" or m == "DELETE") then
    if not dname:match("^[%w%-]+$") then return err(400, "BadParameter", "Invalid secret name.") end
    key = vault .. "/" .. dname
    local obj = store:get(M.COLLECTION, key)
    if not obj or not obj.deleted then return err(404, "SecretNotFound", "Deleted Secret not found: " .. dname) end
    if m == "GET" then return {status = 200, json = deleted_bundle(base, vault, dname, obj)} end
    if not level:find("Purgeable", 1, true) then
      return err(403, "Forbidden", 'Operation "purge" is not allowed because purge protection is enabled for this '
        .. "vault. Key Vault service will automatically purge it after the retention period has passed.")
    end
    store:delete(M.COLLECTION, key)
    return {status = 204}
  end
  local rname = rest:match("^/deletedsecrets/([%w%-]+)/recover$")
  if rname and m == "POST" then
    key = vault .. "/" .. rname
    local obj = store:get(M.COLLECTION, key)
    if not obj or not obj.deleted then return err(404, "SecretNotFound", "Deleted Secret not found: " .. rname) end
    obj.deleted = nil
    store:put(M.COLLECTION, key, obj)
    return {status = 200, json = bundle(base, vault, rname, obj.versions[#obj.versions], true)}
  end
  if not name then return err(404, "NotFound", "The twin does not serve " .. m .. " " .. req.path) end
  local obj = store:get(M.COLLECTION, key)
  if not obj or obj.deleted then
    return err(404, "SecretNotFound", "A secret with (name/id) " .. name .. " was not found in this key vault.")
  end
  if tail == "/versions" and m == "GET" then
    local items = {}
    for i = #obj.versions, 1, -1 do items[#items + 1] = bundle(base, vault, name, obj.versions[i], true) end
    return page(req, base .. "/" .. vault .. "/secrets/" .. name .. "/versions", items, size)
  end
  local version = tail:match("^/([%w]+)$")
  local v
  if tail == "" or tail == "/" then
    v = obj.versions[#obj.versions]
  elseif version then
    for _, x in ipairs(obj.versions) do if x.version == version then v = x end end
  end
  if not v then return err(404, "SecretNotFound", "A secret with (name/id) " .. name .. tail .. " was not found in this key vault.") end
  if m == "GET" then
    if not v.enabled then return err(403, "Forbidden", "Operation get is not allowed on a disabled secret.") end
    return {status = 200, json = bundle(base, vault, name, v)}
  end
  if m == "PATCH" and version then
    local ok, body = pcall(json.decode, req.body or "")
    if not ok or type(body) ~= "table" then return err(400, "BadParameter", "The request body must be JSON.") end
    local a = type(body.attributes) == "table" and body.attributes or {}
    if a.enabled ~= nil then v.enabled = a.enabled and true or false end
    if a.exp ~= nil then v.exp = a.exp end
    if body.contentType ~= nil then v.contentType = body.contentType end
    if body.tags ~= nil then v.tags = body.tags end
    v.updated = os.time()
    store:put(M.COLLECTION, key, obj)
    return {status = 200, json = bundle(base, vault, name, v, true)}
  end
  return err(405, "MethodNotAllowed", "The twin does not serve " .. m .. " " .. req.path)
end

function M.mount(srv, twin)
  local base = (twin.endpoint(M.name) or srv.url):gsub("/+$", "")
  pcall(M.seed, twin)
  srv:handle(function(req)
    local res = handle(twin, base, req)
    res.headers = res.headers or {}
    res.headers["x-ms-request-id"] = router.uuid()
    res.headers["x-ms-keyvault-service-version"] = "1.9.0.0 (twin)"
    return res
  end)
end

function M.environment(twin, env, endpoint)
  env.endpoints = env.endpoints or {}
  env.endpoints.keyvault = endpoint .. "/{vault}"
  env.endpoints.ca = env.endpoints.ca or twin.ca.ca
  env.keyvault = env.keyvault or {}
  env.keyvault.name = env.keyvault.name or M.vaults()[1]
  env.keyvault.url = endpoint .. "/" .. env.keyvault.name
end

function M.shell(_twin, exports, endpoint)
  exports.OPSH_TWIN_KEYVAULT_URL = endpoint .. "/" .. M.vaults()[1]
end

return M
