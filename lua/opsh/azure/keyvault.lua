-- opsh.azure.keyvault: Key Vault secrets (data plane, api-version 7.5) over an opsh.http client.
-- Bearer tokens for the vault audience from the environment's credential chain, obtained through the
-- vault's 401 challenge (authority and resource read from WWW-Authenticate; a challenge whose
-- resource is neither the cloud's vault audience nor a domain of the vault's host is refused, so a
-- token never goes to another audience). Values come back as opsh.secret; mutations go through
-- opsh.dryrun (the http client records them in a --dry-run). See docs/keyvault.md.
local core = require("opsh._core")
local http = require("opsh.http")
local errors = require("opsh.azure.errors")
local cloud_of = require("opsh.azure.cloud")

local M = {}

M.API = "7.5"
M.PAGE = 25

local Vault = {}
Vault.__index = Vault

local function usage(fn, msg)
  error(core.error("usage", "keyvault." .. fn .. ": " .. msg), 0)
end

local function check_name(fn, name)
  if type(name) ~= "string" or not name:match("^[%w%-]+$") or #name > 127 then
    usage(fn, "a secret name of letters, digits and '-' is required, got " .. tostring(name))
  end
end

local function env_of(envt)
  if envt == nil then return require("opsh.env").current() end
  if type(envt) == "string" then return require("opsh.env").load(envt) end
  if type(envt) ~= "table" then usage("vault", "an environment (table or name) is expected") end
  return envt
end

--- url_of(envt, vault) -> the vault's base URL: env.keyvault.url for its own vault, else
-- env.endpoints.keyvault with {vault} replaced, else https://<vault>.vault.azure.net (the cloud's suffix)
function M.url_of(envt, vault)
  local kv = envt.keyvault or {}
  if kv.url and (vault == nil or vault == kv.name) then return (kv.url:gsub("/+$", "")) end
  vault = vault or kv.name
  if not vault then error(core.error("config", string.format("environment '%s' names no Key Vault "
    .. "(keyvault.name) and none was given", tostring(envt.name))), 0) end
  local pattern = envt.endpoints and envt.endpoints.keyvault
  if pattern then return (pattern:gsub("{vault}", vault):gsub("/+$", "")) end
  local c = cloud_of.of(envt)
  local suffix = c.keyvault_dns or (cloud_of.audience(c, "keyvault"):match("^https://vault(%..-)/*$"))
  return "https://" .. vault .. suffix
end

--- parse_challenge(header) -> {authorization =, resource =, scope =, tenant =} or nil
function M.parse_challenge(header)
  if type(header) ~= "string" then return nil end
  local rest = header:match("^%s*[Bb]earer%s+(.*)$")
  if not rest then return nil end
  local p = {}
  for k, v in rest:gmatch('([%w_]+)%s*=%s*"([^"]*)"') do p[k:lower()] = v end
  local auth = p.authorization or p.authorization_uri
  if not auth then return nil end
  local resource = p.resource or (p.scope and p.scope:gsub("/%.default$", ""))
  return {authorization = auth, resource = resource, scope = p.scope, tenant = auth:match("/([^/]+)/*$")}
end

local function host_of(url) return (tostring(url):match("^%a+://([^/:]+)") or ""):lower() end
local function canon(r) return (tostring(r or ""):lower():gsub("/%.default$", ""):gsub("/+$", "")) end

-- the resource a challenge may name: the cloud's vault audience, or one whose domain the vault's host is in
function Vault:check_challenge(ch)
  if not ch or not ch.resource then
    error(core.error("azure", string.format("Key Vault %s: the 401 carried no usable Bearer challenge "
      .. "(authorization and resource)", self.url), {code = "ChallengeInvalid", status = 401}), 0)
  end
  local ok = canon(ch.resource) == canon(self.audience)
  if not ok then
    local domain = host_of(ch.resource):gsub("^vault%.", "")
    local h = host_of(self.url)
    ok = domain ~= "" and (h == domain or h:sub(-#domain - 1) == "." .. domain)
  end
  if not ok then
    error(core.error("azure", string.format("Key Vault %s: refused a challenge for resource %s (not the vault's "
      .. "host nor the cloud's vault audience %s); no token was sent", self.url, ch.resource, self.audience),
      {code = "ChallengeResourceMismatch", status = 401}), 0)
  end
  if self.chain.tenant and ch.tenant and ch.tenant:lower() ~= self.chain.tenant:lower() then
    error(core.error("azure", string.format("Key Vault %s: the challenge names tenant %s, the environment %s",
      self.url, ch.tenant, self.chain.tenant), {code = "ChallengeTenantMismatch", status = 401}), 0)
  end
  return ch
end

-- the first request to a vault: a bodiless GET without a token for its challenge
function Vault:discover()
  local res = http.request{method = "GET", url = self.url .. "/secrets?api-version=" .. M.API .. "&maxresults=1",
    ca = self.ca, raise_for_status = false, read = true}
  if res.status ~= 401 then
    error(core.error("azure", string.format("Key Vault %s: expected a 401 challenge, got HTTP %d", self.url,
      res.status), {code = "ChallengeMissing", status = res.status}), 0)
  end
  self.challenge = self:check_challenge(M.parse_challenge(res.headers["www-authenticate"]))
end

function Vault:auth(ctx)
  if ctx and ctx.challenge then
    self.challenge = self:check_challenge(M.parse_challenge(ctx.challenge))
  elseif not self.challenge then
    self:discover()
  end
  return self.chain:header(self.challenge.resource, ctx)
end

--- vault(envt, name [, {ca =, credential =, url =}]) -> a vault object
function M.new(envt, name, opts)
  opts = opts or {}
  envt = env_of(envt)
  local azure = require("opsh.azure")
  local self = setmetatable({envt = envt, name = name or (envt.keyvault and envt.keyvault.name)}, Vault)
  self.url = opts.url or M.url_of(envt, name)
  self.chain = opts.credential or azure.credential(envt)
  self.audience = cloud_of.audience(cloud_of.of(envt), "keyvault")
  self.ca = opts.ca or cloud_of.of(envt).ca
  self.client = http.client{base_url = self.url, ca = self.ca, query = {["api-version"] = M.API},
    auth = function(ctx) return self:auth(ctx) end, raise_for_status = false}
  return self
end

local function info_of(doc)
  local a = doc.attributes or {}
  local id = doc.id or doc.kid or ""
  local name, version = id:match("/secrets/([^/]+)/([^/?]+)")
  name = name or id:match("/secrets/([^/?]+)") or tostring(doc.recoveryId or ""):match("/deletedsecrets/([^/?]+)")
  return {name = name, version = version, id = doc.id, enabled = a.enabled ~= false, content_type = doc.contentType,
    tags = doc.tags, created = a.created, updated = a.updated, expires = a.exp, not_before = a.nbf,
    recovery_level = a.recoveryLevel, deleted = doc.deletedDate, scheduled_purge = doc.scheduledPurgeDate,
    recovery_id = doc.recoveryId}
end

function Vault:call(method, path, opts)
  opts = opts or {}
  local missing = opts.missing
  opts.missing = nil
  opts.method, opts.url = method, path
  local ok, res = pcall(self.client.request, self.client, opts)
  if not ok and not (type(res) == "table" and res.kind == "http" and res.status) then error(res, 0) end
  if res.dry_run then return res end
  if res.status >= 400 then
    if missing and res.status == 404 then return nil end
    res.method, res.url = method, self.url .. path
    local e = errors.of_response(res)
    if res.status == 401 then e.message = e.message .. " (token refused: expired, wrong audience or tenant?)" end
    e.body = nil
    error(e, 0)
  end
  return res
end

--- vault:set(name, value, {content_type =, tags =, expires =, not_before =, enabled =}) -> info
function Vault:set(name, value, opts)
  check_name("set", name)
  if type(value) ~= "string" and not core.is_secret(value) then usage("set", "the value must be a string or an opsh.secret") end
  opts = opts or {}
  local attributes = {enabled = opts.enabled ~= false, exp = opts.expires, nbf = opts.not_before}
  local body = {value = core.is_secret(value) and value or core.secret(value), contentType = opts.content_type,
    tags = opts.tags, attributes = attributes}
  local res = self:call("PUT", "/secrets/" .. name, {json = body})
  if res.dry_run then return {name = name, dry_run = true} end
  return info_of(res:json())
end

--- vault:get(name [, {version =, missing = "nil"}]) -> opsh.secret, info (nil when missing = "nil" and absent)
function Vault:get(name, opts)
  check_name("get", name)
  opts = opts or {}
  local path = "/secrets/" .. name .. (opts.version and ("/" .. opts.version) or "")
  local res = self:call("GET", path, {missing = opts.missing == "nil", secret_fields = {"value"}})
  if not res then return nil end
  local doc = res:json()
  local v = doc.value
  doc.value = nil
  return core.is_secret(v) and v or core.secret(v or ""), info_of(doc)
end

function Vault:pages(path, query)
  local out = {}
  local res = self:call("GET", path, {query = query})
  while true do
    local doc = res:json()
    for _, item in ipairs(doc.value or {}) do out[#out + 1] = info_of(item) end
    if type(doc.nextLink) ~= "string" or doc.nextLink == "" then break end
    if doc.nextLink:sub(1, #self.url) ~= self.url then
      error(core.error("azure", "Key Vault " .. self.url .. ": a nextLink to another host was not followed",
        {code = "BadNextLink"}), 0)
    end
    res = self:call("GET", doc.nextLink:sub(#self.url + 1))
  end
  return out
end

--- vault:list() -> list of info (with name), all pages
function Vault:list()
  return self:pages("/secrets", {maxresults = self.page or M.PAGE})
end

--- vault:versions(name) -> list of info, newest first
function Vault:versions(name)
  check_name("versions", name)
  local all = self:pages("/secrets/" .. name .. "/versions", {maxresults = self.page or M.PAGE})
  table.sort(all, function(a, b) return (a.created or 0) > (b.created or 0) end)
  return all
end

--- vault:disable(name, version) -> info
function Vault:disable(name, version)
  check_name("disable", name)
  if type(version) ~= "string" or version == "" then usage("disable", "a version is required") end
  local res = self:call("PATCH", "/secrets/" .. name .. "/" .. version, {json = {attributes = {enabled = false}}})
  if res.dry_run then return {name = name, version = version, dry_run = true} end
  return info_of(res:json())
end

--- vault:delete(name) -> info of the deleted secret (soft delete)
function Vault:delete(name)
  check_name("delete", name)
  local res = self:call("DELETE", "/secrets/" .. name)
  if res.dry_run then return {name = name, dry_run = true} end
  return info_of(res:json())
end

--- vault:recover(name) -> info of the recovered secret
function Vault:recover(name)
  check_name("recover", name)
  local res = self:call("POST", "/deletedsecrets/" .. name .. "/recover")
  if res.dry_run then return {name = name, dry_run = true} end
  return info_of(res:json())
end

--- vault:deleted() -> list of info of the deleted secrets (with deleted, scheduled_purge, recovery_id), all pages
function Vault:deleted()
  return self:pages("/deletedsecrets", {maxresults = self.page or M.PAGE})
end

--- vault:deleted_secret(name [, {missing = "nil"}]) -> info of a deleted secret (nil when missing = "nil" and
-- it is not deleted)
function Vault:deleted_secret(name, opts)
  check_name("deleted_secret", name)
  local res = self:call("GET", "/deletedsecrets/" .. name, {missing = (opts or {}).missing == "nil"})
  return res and info_of(res:json()) or nil
end

--- vault:purge(name) -> true (or {name, dry_run = true}): a deleted secret removed for good. Refused by a vault
-- with purge protection (a recovery level without "Purgeable"): kind "azure", status 403, purge_protected = true.
function Vault:purge(name)
  check_name("purge", name)
  local ok, res = pcall(self.call, self, "DELETE", "/deletedsecrets/" .. name)
  if not ok then
    if type(res) == "table" and res.status == 403 and tostring(res.message):find("purge protection", 1, true) then
      res.purge_protected = true
      res.message = res.message .. " (the vault has purge protection: the secret can only be recovered until its scheduled purge date)"
    end
    error(res, 0)
  end
  if res.dry_run then return {name = name, dry_run = true} end
  return true
end

local vaults = setmetatable({}, {__mode = "k"})

--- get_secret(envt, name) -> opsh.secret: the connections "keyvault" provider (the environment's vault)
function M.get_secret(envt, name)
  local v = M.vault(envt)
  return (v:get(name))
end

--- vault([env [, name]]) -> the vault object (one per environment and name for the run)
function M.vault(envt, name)
  envt = env_of(envt)
  vaults[envt] = vaults[envt] or {}
  local k = name or ""
  if not vaults[envt][k] then vaults[envt][k] = M.new(envt, name) end
  return vaults[envt][k]
end

return setmetatable(M, {__call = function(_, envt, name) return M.vault(envt, name) end})
