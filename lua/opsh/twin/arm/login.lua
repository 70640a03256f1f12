-- opsh.twin.arm.login: the identity side of the ARM twin. OIDC discovery (Entra-style
-- /{tenant}/v2.0/.well-known/openid-configuration and the ADFS-style /adfs/... that az 2.45's MSAL
-- accepts without instance discovery), the token endpoint (client credentials with the service
-- principal's secret, a certificate client assertion, or a federated token), JWKS, IMDS,
-- /metadata/endpoints, and the tenants and subscriptions the principal sees.
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local json = require("opsh.json")
local server = require("opsh.server")
local identity = require("opsh.twin.identity")
local platform = require("opsh.twin.platform")
local router = require("opsh.twin.arm.router")

local M = {}

local FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
local ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

local function oauth_error(status, code, description)
  return {status = status, json = {error = code, error_description = description,
    error_codes = json.array({status == 401 and 7000215 or 900144}), timestamp = os.date("!%Y-%m-%d %H:%M:%SZ"),
    trace_id = router.uuid(), correlation_id = router.uuid()}}
end

local function discovery(base, authority, tenant)
  return {
    issuer = identity.issuer(), token_endpoint = authority .. "/oauth2/" .. (tenant == "adfs" and "" or "v2.0/") .. "token",
    authorization_endpoint = authority .. "/oauth2/" .. (tenant == "adfs" and "" or "v2.0/") .. "authorize",
    device_authorization_endpoint = authority .. "/oauth2/v2.0/devicecode",
    jwks_uri = authority .. "/discovery/" .. (tenant == "adfs" and "" or "v2.0/") .. "keys",
    token_endpoint_auth_methods_supported = json.array({"client_secret_post", "private_key_jwt", "client_secret_basic"}),
    response_types_supported = json.array({"code", "id_token", "code id_token", "id_token token"}),
    scopes_supported = json.array({"openid", "profile", "email", "offline_access"}),
    subject_types_supported = json.array({"pairwise"}),
    id_token_signing_alg_values_supported = json.array({"RS256"}),
    tenant_region_scope = "EU", cloud_instance_name = "twin", msgraph_host = "graph.microsoft.com",
    rbac_url = base,
  }
end

-- the resource a token request asks for: `resource=` (v1) or the first `<resource>/.default` scope (v2)
local function requested_resource(form)
  if form.resource and form.resource ~= "" then return form.resource end
  for s in (form.scope or ""):gmatch("%S+") do
    if s:find("/%.default$") then return (s:gsub("/%.default$", "")) end
  end
  for s in (form.scope or ""):gmatch("%S+") do
    if s:find("://", 1, true) then return s end
  end
end

-- a certificate client assertion: the header's x5t#S256 / x5t names a certificate registered for the client
local function check_certificate_assertion(twin, client_id, assertion, header)
  local dir = identity.clients_dir(twin.dir, client_id)
  for _, path in ipairs(fs.glob(dir .. "/*.pem")) do
    local pem = fs.read(path)
    local info = crypto.x509.parse(pem)
    local s256 = crypto.base64url_encode(crypto.hex_decode(info.sha256_thumbprint))
    local s1 = crypto.base64url_encode(crypto.hex_decode(info.sha1_thumbprint))
    if header["x5t#S256"] == s256 or header.x5t == s1 then
      local ok, claims = pcall(crypto.jwt.verify, assertion, pem, {algs = {"RS256", "PS256", "ES256"}, leeway = 60})
      if not ok then return false, "the client assertion's signature or lifetime is invalid (" .. tostring(claims.code) .. ")" end
      if claims.iss ~= client_id or claims.sub ~= client_id then
        return false, "the client assertion's iss and sub must be the client id"
      end
      local auds = type(claims.aud) == "table" and claims.aud or {claims.aud}
      local aud_ok = false
      for _, a in ipairs(auds) do aud_ok = aud_ok or tostring(a):find("/oauth2/", 1, true) ~= nil end
      if not aud_ok then return false, "the client assertion's aud must be the token endpoint" end
      return true
    end
  end
  return false, "no certificate with the assertion's thumbprint is registered for the application"
end

-- authenticate a client credentials request -> subject, or nil + error answer
local function authenticate(twin, form)
  local client_id = form.client_id
  if client_id ~= platform.client_id then
    return nil, oauth_error(400, "unauthorized_client", string.format("AADSTS700016: Application with identifier "
      .. "'%s' was not found in the directory '%s'.", tostring(client_id), platform.tenant))
  end
  if form.client_secret then
    local expected = require("opsh.twin.arm.azcli").client_secret(twin.dir) or ""
    if #form.client_secret ~= #expected or not crypto.constant_time_equal(form.client_secret, expected) then
      return nil, oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    end
    return client_id
  end
  if form.client_assertion then
    if form.client_assertion_type ~= ASSERTION_TYPE then
      return nil, oauth_error(400, "invalid_request", "AADSTS50027: client_assertion_type must be " .. ASSERTION_TYPE)
    end
    local ok, _, header = pcall(crypto.jwt.decode_unverified, form.client_assertion)
    if not ok then return nil, oauth_error(400, "invalid_client", "AADSTS50027: the client assertion is not a JWT") end
    if header.x5t or header["x5t#S256"] then
      local good, why = check_certificate_assertion(twin, client_id, form.client_assertion, header)
      if not good then return nil, oauth_error(401, "invalid_client", "AADSTS700027: " .. why) end
      return client_id
    end
    -- a federated token (workload identity): issued by the twin's issuer for api://AzureADTokenExchange
    local claims = identity.verify(twin, "Bearer " .. form.client_assertion, FEDERATED_AUDIENCE)
    if not claims then
      return nil, oauth_error(401, "invalid_client", "AADSTS700211: the federated token is not valid for "
        .. FEDERATED_AUDIENCE .. " from the twin's issuer")
    end
    return client_id
  end
  return nil, oauth_error(401, "invalid_client", "AADSTS7000218: The request body must contain client_assertion "
    .. "or client_secret.")
end

local function token_answer(twin, resource, subject, v1)
  local ttl = 3599
  local token = identity.issue(twin, {audience = resource, subject = subject, ttl = ttl})
  local body = {token_type = "Bearer", expires_in = ttl, ext_expires_in = ttl, access_token = token}
  if v1 then
    body.expires_on = tostring(os.time() + ttl)
    body.not_before = tostring(os.time())
    body.resource = resource
  end
  return {status = 200, headers = {["Cache-Control"] = "no-store, no-cache", Pragma = "no-cache"}, json = body}
end

local function token(twin, req, v1)
  local form = server.parse_query(req.body or "")
  if form.grant_type ~= "client_credentials" then
    return oauth_error(400, "unsupported_grant_type", "AADSTS70003: the twin serves the client_credentials grant only "
      .. "(a service principal, a certificate, or a federated token)")
  end
  local resource = requested_resource(form)
  if not resource then return oauth_error(400, "invalid_scope", "AADSTS1002012: a <resource>/.default scope is required") end
  local subject, denied = authenticate(twin, form)
  if not subject then return denied end
  return token_answer(twin, resource, subject, v1)
end

function M.subscription_body()
  return {id = "/subscriptions/" .. platform.subscription, subscriptionId = platform.subscription,
    tenantId = platform.tenant, displayName = platform.subscription_name, state = "Enabled",
    subscriptionPolicies = {locationPlacementId = "Public_2014-09-01", quotaId = "PayAsYouGo_2014-09-01",
      spendingLimit = "Off"}, authorizationSource = "RoleBased", managedByTenants = json.array({})}
end

function M.routes(api)
  local twin, add = api.twin, api.add
  local anon = {anonymous = true}
  add("GET", "^/adfs/%.well%-known/openid%-configuration$", function(_, ctx)
    return discovery(ctx.base, ctx.base .. "/adfs", "adfs")
  end, anon)
  for _, form in ipairs({"^/([^/]+)/v2%.0/%.well%-known/openid%-configuration$", "^/([^/]+)/%.well%-known/openid%-configuration$"}) do
    add("GET", form, function(_, ctx, tenant)
      if tenant ~= platform.tenant and tenant ~= "organizations" and tenant ~= "common" then
        return oauth_error(400, "invalid_tenant", "AADSTS90002: Tenant '" .. tenant .. "' not found.")
      end
      return discovery(ctx.base, ctx.base .. "/" .. platform.tenant, tenant)
    end, anon)
  end
  add("GET", "^/common/discovery/instance$", function(_, ctx)
    local host = ctx.base:gsub("^https://", "")
    return {tenant_discovery_endpoint = ctx.base .. "/" .. platform.tenant .. "/v2.0/.well-known/openid-configuration",
      ["api-version"] = "1.1", metadata = json.array({{preferred_network = host, preferred_cache = host,
        aliases = json.array({host})}})}
  end, anon)
  add("POST", "^/adfs/oauth2/token$", function(req) return token(twin, req, false) end, anon)
  add("POST", "^/([^/]+)/oauth2/v2%.0/token$", function(req, _, tenant)
    if tenant ~= platform.tenant then
      return oauth_error(400, "invalid_request", "AADSTS90002: Tenant '" .. tenant .. "' not found.")
    end
    return token(twin, req, false)
  end, anon)
  add("POST", "^/([^/]+)/oauth2/token$", function(req, _, tenant)
    if tenant ~= platform.tenant then
      return oauth_error(400, "invalid_request", "AADSTS90002: Tenant '" .. tenant .. "' not found.")
    end
    return token(twin, req, true)
  end, anon)
  for _, keys in ipairs({"^/adfs/discovery/keys$", "^/[^/]+/discovery/v2%.0/keys$", "^/[^/]+/discovery/keys$"}) do
    add("GET", keys, function() return identity.jwks(twin) end, anon)
  end
  -- IMDS (managed identity): the twin's VM identity is the platform's service principal
  add("GET", "^/metadata/identity/oauth2/token$", function(req)
    if (req.headers.metadata or ""):lower() ~= "true" then
      return {status = 400, json = {error = "invalid_request", error_description = "Required metadata header not specified"}}
    end
    local resource = req.query.resource
    if not resource or resource == "" then
      return {status = 400, json = {error = "invalid_request", error_description = "Required query variable 'resource' is missing"}}
    end
    local ans = token_answer(twin, resource, platform.client_id, true)
    ans.json.client_id = platform.client_id
    ans.json.ext_expires_in = nil
    ans.json.expires_in = tostring(ans.json.expires_in)
    return ans
  end, anon)
  add("GET", "^/metadata/instance$", function(req)
    if (req.headers.metadata or ""):lower() ~= "true" then
      return {status = 400, json = {error = "Bad request. Required metadata header not specified"}}
    end
    local prod = platform.region("production")
    return {compute = {location = prod.location, name = "aks-twin-vm", subscriptionId = platform.subscription,
      resourceGroupName = prod.resource_group, azEnvironment = "AzurePublicCloud"}}
  end, anon)
  add("GET", "^/metadata/endpoints$", function(_, ctx)
    return {galleryEndpoint = ctx.base .. "/", graphEndpoint = "https://graph.windows.net/",
      portalEndpoint = ctx.base .. "/", authentication = {loginEndpoint = ctx.base .. "/adfs",
        audiences = json.array({"https://management.core.windows.net/", "https://management.azure.com/"})},
      name = "twin", suffixes = {keyVaultDns = "vault.azure.net", storage = "core.windows.net",
        acrLoginServer = "azurecr.io"}, resourceManager = ctx.base .. "/"}
  end, anon)
  add("GET", "^/tenants$", function()
    return {value = json.array({{id = "/tenants/" .. platform.tenant, tenantId = platform.tenant,
      tenantCategory = "Home", displayName = "Legal Platform (twin)", defaultDomain = "legalplatform.onmicrosoft.com",
      domains = json.array({"legalplatform.onmicrosoft.com"}), tenantType = "AAD"}})}
  end)
  add("GET", "^/subscriptions$", function()
    return {value = json.array({M.subscription_body()}), count = {type = "Total", value = 1}}
  end)
  add("GET", "^/subscriptions/([^/]+)$", function(_, _, sub)
    if sub ~= platform.subscription then
      return router.err(404, "SubscriptionNotFound", "The subscription '" .. sub .. "' could not be found.")
    end
    return M.subscription_body()
  end)
  add("GET", "^/subscriptions/[^/]+/resourcegroups$", function(req, ctx)
    return router.page(req, ctx.base, api.children("^/subscriptions/[^/]+/resourcegroups/[^/]+$"))
  end)
end

return M
