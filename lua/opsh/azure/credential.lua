-- opsh.azure.credential: how opsh gets Microsoft Entra tokens — the chain azure-identity's
-- DefaultAzureCredential made standard (client secret, client certificate, workload identity,
-- managed identity, the az CLI), in the order the environment gives (`azure.credentials`). The
-- first source that gives a token is remembered for the run. Tokens are opsh.secret values, cached
-- per audience until `margin` seconds before they expire; however many tasks want one at once,
-- one request per audience is in flight.
local core = require("opsh._core")
local cloud_of = require("opsh.azure.cloud")
local http = require("opsh.http")
local log = require("opsh.log")

local M = {}

M.ORDER = {"client_secret", "client_certificate", "workload_identity", "managed_identity", "azure_cli"}
M.MARGIN = 300   -- seconds before expiry a cached token is fetched again

local concat = require("opsh._http").concat_secret

local function getenv(name, self)
  local v = (self and self.getenv or os.getenv)(name)
  if v == nil or v == "" then return nil end
  return v
end

-- a source that cannot be used here (nothing configured, no IMDS, no az): the chain goes on
local function unavailable(message)
  error(core.error("azure", message, {code = "CredentialUnavailable", unavailable = true}), 0)
end

local function form_escape(s)
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- {k = v} (plain values) -> "k=v&..." (sorted, percent-encoded)
local function form(fields)
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = form_escape(k) .. "=" .. form_escape(fields[k]) end
  return table.concat(parts, "&")
end

local function number_of(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return tonumber(v) end
end

-- a token endpoint or IMDS answer -> token (secret), expires_at
local function token_of(doc, where)
  local token = type(doc) == "table" and doc.access_token
  if not core.is_secret(token) then
    error(core.error("azure", where .. ": the answer has no access_token", {code = "InvalidTokenResponse"}), 0)
  end
  local expires = number_of(doc.expires_on)
  if not expires and number_of(doc.expires_in) then expires = os.time() + number_of(doc.expires_in) end
  return token, expires or (os.time() + 3600)
end

-- an error answer of the token endpoint -> kind "azure" with Entra's code (AADSTS...)
local function token_error(res, what)
  local ok, doc = pcall(res.json, res)
  doc = ok and type(doc) == "table" and doc or {}
  local code = type(doc.error) == "string" and doc.error or ("HTTP" .. res.status)
  local desc = type(doc.error_description) == "string" and doc.error_description:match("^[^\r\n]*") or ""
  error(core.error("azure", string.format("%s: token request refused: HTTP %d: %s%s", what, res.status, code,
    desc ~= "" and (": " .. desc) or ""), {code = code, status = res.status,
    request_id = res.headers["x-ms-request-id"], correlation_id = doc.correlation_id}), 0)
end

-- ---- the sources ----

local sources = {}

-- POST the client-credentials form; secret_part: the credential's own field, appended as a
-- secret (client_secret=..., client_assertion=...)
local function client_credentials(self, audience, fields, secret_name, secret_value, what)
  local url = self:token_url()
  fields.grant_type = "client_credentials"
  fields.client_id = self.client_id
  fields.scope = audience:gsub("/+$", "") .. "/.default"
  local body = concat(form(fields) .. "&" .. secret_name .. "=", secret_value)
  local res = http.post(url, {body = body, ca = self.cloud.ca, read = true, retry_unsafe = true,
    raise_for_status = false, secret_fields = {"access_token"}, timeout = 60,
    headers = {["Content-Type"] = "application/x-www-form-urlencoded", Accept = "application/json"}})
  if res.status ~= 200 then token_error(res, what) end
  return token_of(res:json(), what)
end

function sources.client_secret(self, audience)
  if not (self.tenant and self.client_id) then unavailable("client_secret: no tenant or client id configured") end
  local secret = getenv("AZURE_CLIENT_SECRET", self)
  if secret then
    -- a plain string already (the process environment): encoded, then held only as a secret
    secret = core.secret(form_escape(secret))
  else
    secret = self:named_secret("azure-client-secret")
  end
  if not secret then unavailable("client_secret: AZURE_CLIENT_SECRET is not set") end
  return client_credentials(self, audience, {}, "client_secret", secret, "client_secret")
end

function sources.client_certificate(self, audience)
  local path = getenv("AZURE_CLIENT_CERTIFICATE_PATH", self)
  if not path then unavailable("client_certificate: AZURE_CLIENT_CERTIFICATE_PATH is not set") end
  if not (self.tenant and self.client_id) then unavailable("client_certificate: no tenant or client id configured") end
  local crypto = require("opsh.crypto")
  local pem = require("opsh.fs").read(path, {missing_ok = true})
  if not pem then
    error(core.error("config", "client_certificate: AZURE_CLIENT_CERTIFICATE_PATH names no file: " .. path), 0)
  end
  local passphrase = getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", self)
  local key = crypto.keys.load(core.secret(pem), {passphrase = passphrase and core.secret(passphrase) or nil})
  local info = key:info()
  local alg = info.type == "ec" and ({["P-256"] = "ES256", ["P-384"] = "ES384", ["P-521"] = "ES512"})[info.curve]
    or "PS256"
  local url = self:token_url()
  local assertion = crypto.jwt.sign({aud = url, iss = self.client_id, sub = self.client_id,
    jti = crypto.hex_encode(crypto.random_bytes(16)), nbf = os.time()}, key,
    {alg = alg, x5t_s256 = pem:match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-"),
     expires_in = 600})
  key:close()
  return client_credentials(self, audience,
    {client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
    "client_assertion", core.secret(assertion), "client_certificate")
end

function sources.workload_identity(self, audience)
  local path = getenv("AZURE_FEDERATED_TOKEN_FILE", self)
  if not path then unavailable("workload_identity: AZURE_FEDERATED_TOKEN_FILE is not set") end
  if not (self.tenant and self.client_id) then unavailable("workload_identity: no tenant or client id configured") end
  -- read at every token request: the kubelet rotates the file (about hourly), a token request is rarer
  local text = require("opsh.fs").read(path, {missing_ok = true})
  if not text then unavailable("workload_identity: no token file at " .. path) end
  local assertion = core.secret((text:gsub("%s+$", "")))
  return client_credentials(self, audience,
    {client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
    "client_assertion", assertion, "workload_identity")
end

function sources.managed_identity(self, audience)
  local query = {["api-version"] = "2018-02-01", resource = audience}
  local id = getenv("AZURE_CLIENT_ID", self) or (self.envt.azure and self.envt.azure.client_id)
  if id and self.user_assigned then query.client_id = id end
  local ok, res = pcall(http.get, self.cloud.imds .. "/metadata/identity/oauth2/token", {query = query,
    headers = {Metadata = "true"}, ca = self.cloud.ca, raise_for_status = false, secret_fields = {"access_token"},
    connect_timeout = 2, timeout = 30, retries = 2})
  if not ok then
    if core.is_error(res) and (res.kind == "connect" or res.kind == "timeout") then
      unavailable("managed_identity: no IMDS at " .. self.cloud.imds)
    end
    error(res, 0)
  end
  if res.status == 400 then unavailable("managed_identity: no identity is assigned to this host") end
  if res.status ~= 200 then token_error(res, "managed_identity") end
  return token_of(res:json(), "managed_identity")
end

-- az prints expiresOn as local time ("2026-12-05 15:04:05.123456"), newer versions expires_on too
local function az_expiry(doc)
  local e = number_of(doc.expires_on)
  if e then return e end
  local y, mo, d, h, mi, s = tostring(doc.expiresOn or ""):match("^(%d+)-(%d+)-(%d+)[ T](%d+):(%d+):(%d+)")
  if y then
    return os.time{year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
      min = tonumber(mi), sec = tonumber(s)}
  end
  return os.time() + 300
end

function sources.azure_cli(self, audience)
  local proc = require("opsh.proc")
  local ok, r = pcall(proc.run, {argv = {self.az, "account", "get-access-token", "--resource", audience,
    "--output", "json"}, read = true, check = false, timeout = 120})
  if not ok then unavailable("azure_cli: az could not be run (" .. core.describe(r) .. ")") end
  if r.code ~= 0 then
    local why = (r.stderr or ""):match("ERROR: ([^\r\n]*)") or (r.stderr or ""):match("[^\r\n]+") or "failed"
    unavailable("azure_cli: az account get-access-token: " .. why:sub(1, 200))
  end
  local dok, doc = pcall(require("opsh.json").decode, r.stdout)
  if not dok or type(doc) ~= "table" or type(doc.accessToken) ~= "string" then
    error(core.error("azure", "azure_cli: az account get-access-token printed no token",
      {code = "InvalidTokenResponse"}), 0)
  end
  local token = core.secret(doc.accessToken)
  doc.accessToken = nil
  return token, az_expiry(doc)
end

M.sources = sources

-- ---- the chain ----

local Chain = {}
Chain.__index = Chain

--- new(envt [, {order =, margin =, getenv =, az =}]) -> a credential chain for the environment.
-- getenv: where AZURE_* variables are read (os.getenv); az: the az program (specs give a stand-in)
function M.new(envt, opts)
  envt = envt or {}
  opts = opts or {}
  local order = opts.order or (envt.azure and envt.azure.credentials) or M.ORDER
  for _, name in ipairs(order) do
    if not sources[name] then
      error(core.error("config", string.format("environment '%s': unknown credential '%s' in azure.credentials "
        .. "(use %s)", tostring(envt.name), tostring(name), table.concat(M.ORDER, ", "))), 0)
    end
  end
  local self = {getenv = opts.getenv or os.getenv, az = opts.az or "az"}
  setmetatable(self, Chain)
  self.envt, self.order, self.cloud = envt, order, cloud_of.of(envt)
  self.tenant = getenv("AZURE_TENANT_ID", self) or envt.tenant
  self.client_id = getenv("AZURE_CLIENT_ID", self) or (envt.azure and envt.azure.client_id)
  for k, v in pairs({
    margin = opts.margin or M.MARGIN, cache = {}, fetches = 0, user_assigned = opts.user_assigned}) do
    self[k] = v
  end
  return self
end

--- chain:token_url() -> the Entra token endpoint of the environment's tenant
function Chain:token_url()
  if self.cloud.token then return (self.cloud.token:gsub("{tenant}", self.tenant or "organizations")) end
  return string.format("%s/%s/oauth2/v2.0/token", self.cloud.login, self.tenant)
end

-- a named secret (azure-client-secret), form-encoded, from the override variable or the
-- environment's provider; never from Key Vault, whose client needs this very credential. A value
-- that is already an opsh.secret cannot be encoded here and is sent as it is (Entra's generated
-- secrets use only URL-safe characters).
function Chain:named_secret(name)
  local connections = require("opsh.connections")
  local v = getenv("OPSH_SECRET_" .. name:upper():gsub("[^%w]", "_"), self)
  if not v then
    local provider = connections.provider_of(self.envt)
    if provider ~= "keyvault" and provider ~= "env" and connections.providers[provider] then
      v = connections.providers[provider](self.envt, name)
    end
  end
  if type(v) == "string" then return core.secret(form_escape(v)) end
  return v
end

--- chain:principal() -> what identifies the caller to ARM's throttling (the client id, or the source)
function Chain:principal()
  return self.client_id or self.chosen or "default"
end

-- one token from the chain: the remembered source, or each in order until one gives a token
function Chain:fetch(audience)
  self.fetches = self.fetches + 1
  if self.chosen then return sources[self.chosen](self, audience) end
  local tried = {}
  for _, name in ipairs(self.order) do
    local ok, token, expires = pcall(sources[name], self, audience)
    if ok then
      self.chosen = name
      log.debug("azure: credential " .. name .. " gave a token for " .. audience)
      return token, expires
    end
    if not (core.is_error(token) and token.unavailable) then error(token, 0) end
    tried[#tried + 1] = token.message
  end
  error(core.error("azure", "no Azure credential is available: " .. table.concat(tried, "; "),
    {code = "CredentialUnavailable", tried = tried}), 0)
end

-- wait for flight f to land
local function join(f)
  f.waiters[#f.waiters + 1] = core.current()
  repeat core.suspend() until f.done
end

--- chain:token(audience [, {refresh = false, stale = token}]) -> token (opsh.secret), expires_at
-- audience: "arm", "keyvault", "storage", "loganalytics", "appinsights", "acr" or a resource URI.
-- refresh: a fresh token unless the cached one is not `stale` (another task refreshed already).
function Chain:token(which, opts)
  local audience = cloud_of.audience(self.cloud, which)
  local entry = self.cache[audience]
  if not entry then
    entry = {}
    self.cache[audience] = entry
  end
  while true do
    local f = entry.flight
    if f then
      join(f)
      if f.err ~= nil then error(f.err, 0) end
      if f.ok then return entry.token, entry.expires end
    elseif entry.token and not (opts and opts.refresh and (opts.stale == nil or opts.stale == entry.token))
        and os.time() < entry.expires - self.margin then
      return entry.token, entry.expires
    else
      f = {waiters = {}}
      entry.flight = f
      local function land(ok, err)
        if f.done then return end
        f.done, f.ok, f.err = true, ok, err
        if entry.flight == f then entry.flight = nil end
        for _, w in ipairs(f.waiters) do core.wake(w) end
      end
      -- cancelled while fetching: a waiter fetches instead
      local _ <close> = setmetatable({}, {__close = function() land(false) end})
      local ok, token, expires = pcall(self.fetch, self, audience)
      if not ok then
        land(false, token)
        error(token, 0)
      end
      entry.token, entry.expires = token, expires
      entry.header = concat("Bearer ", token)
      land(true)
      return token, expires
    end
  end
end

--- chain:header(audience, ctx) -> "Bearer <token>" (secret): an opsh.http client's auth provider
-- body; after a 401 (ctx.refresh) the token is fetched again once
function Chain:header(which, ctx)
  local audience = cloud_of.audience(self.cloud, which)
  local entry = self.cache[audience]
  local stale = entry and entry.token
  self:token(audience, ctx and ctx.refresh and {refresh = true, stale = stale} or nil)
  return self.cache[audience].header
end

--- chain:auth(audience) -> function(ctx) for http.client{auth = ...}
function Chain:auth(which)
  local audience = cloud_of.audience(self.cloud, which)
  return function(ctx) return self:header(audience, ctx) end
end

return M
