-- The ARM twin over HTTP (no az): identity (token endpoint with a secret, a certificate assertion and a
-- federated token; IMDS; OIDC discovery; 401 challenges), api-version, the per-subscription budget and
-- its headers, the knobs (injected failures, page size), long-running operations and refusals.
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local http = require("opsh.http")
local json = require("opsh.json")
local twin = require("opsh.twin")
local identity = require("opsh.twin.identity")
local platform = require("opsh.twin.platform")

describe("the ARM twin", function()
  local dir, base, ca, secret
  local RG = "/subscriptions/" .. platform.subscription .. "/resourceGroups/rg-legal-production"
  local POOL = RG .. "/providers/Microsoft.ContainerService/managedClusters/aks-legal-production/agentPools/usernodepool"

  local function call(method, path, opts)
    opts = opts or {}
    return http.request({method = method, url = (path:match("^https://") and path or base .. path), ca = ca,
      headers = opts.headers, body = opts.body, raise_for_status = false, retries = 0, timeout = 30})
  end
  local function form(t)
    local parts = {}
    for k, v in pairs(t) do
      parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
    end
    return table.concat(parts, "&")
  end
  local function token_with(fields, path)
    fields.grant_type = fields.grant_type or "client_credentials"
    fields.client_id = fields.client_id or platform.client_id
    fields.scope = fields.scope or "https://management.azure.com/.default"
    return call("POST", path or ("/" .. platform.tenant .. "/oauth2/v2.0/token"), {body = form(fields),
      headers = {["Content-Type"] = "application/x-www-form-urlencoded"}})
  end
  local token
  local function arm(method, path, body, headers)
    local h = {Authorization = "Bearer " .. token, ["Content-Type"] = "application/json"}
    for k, v in pairs(headers or {}) do h[k] = v end
    return call(method, path, {headers = h, body = body and json.encode(body)})
  end

  setup(function()
    dir = fs.tmpdir("opsh-armtwin-spec-")
    local st = twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    base = st.components.api.listeners.arm
    ca = st.components.ca.ca
    secret = require("opsh.twin.arm.azcli").client_secret(dir)
    token = token_with({client_secret = secret}):json().access_token
  end)
  teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("issues RS256 tokens for the service principal's secret, with the resource as audience", function()
    local res = token_with({client_secret = secret, scope = "https://vault.azure.net/.default"})
    assert.are.equal(200, res.status)
    local body = res:json()
    local claims, header = crypto.jwt.decode_unverified(body.access_token)
    assert.are.equal("RS256", header.alg)
    assert.are.same({"https://vault.azure.net", platform.tenant, platform.client_id},
      {claims.aud, claims.tid, claims.appid})
    assert.is_true(claims.exp > os.time() + 3000)
    -- verified by the twin's key (what the data-plane twins call), and refused for another audience
    local tw = {dir = dir}
    assert.is_table((identity.verify(tw, "Bearer " .. body.access_token, "https://vault.azure.net/")))
    local no, denied = identity.verify(tw, "Bearer " .. body.access_token, "https://storage.azure.com/")
    assert.is_nil(no)
    assert.are.equal(401, denied.status)
    assert.matches('resource="https://storage.azure.com/"', denied.headers["WWW-Authenticate"])
    assert.are.equal(401, token_with({client_secret = "wrong"}).status)
    assert.are.equal(400, token_with({client_secret = secret, client_id = "00000000-0000-0000-0000-000000000000"}).status)
  end)

  it("accepts a client assertion signed by a registered certificate (x5t#S256) and a federated token", function()
    local tw = {dir = dir}
    local cacert = crypto.x509.create_ca({cn = "app CA"})
    local cert = crypto.x509.create_cert({ca_cert = cacert.cert_pem, ca_key = cacert.key_pem, cn = "opsh-sp",
      client = true, key = crypto.keys.generate({type = "rsa"})})
    local url = base .. "/" .. platform.tenant .. "/oauth2/v2.0/token"
    local function assertion()
      return crypto.jwt.sign({iss = platform.client_id, sub = platform.client_id, aud = url,
        jti = crypto.hex_encode(crypto.random_bytes(16))}, cert.key_pem, {alg = "RS256", x5t_s256 = cert.cert_pem,
        expires_in = 600})
    end
    local atype = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert.are.equal(401, token_with({client_assertion = assertion(), client_assertion_type = atype}).status)
    identity.register_certificate(tw, platform.client_id, cert.cert_pem)
    assert.are.equal(200, token_with({client_assertion = assertion(), client_assertion_type = atype}).status)
    local federated = identity.issue(tw, {audience = "api://AzureADTokenExchange",
      subject = "system:serviceaccount:production:opsh"})
    assert.are.equal(200, token_with({client_assertion = federated, client_assertion_type = atype}).status)
    local wrong = identity.issue(tw, {audience = "https://management.azure.com/"})
    assert.are.equal(401, token_with({client_assertion = wrong, client_assertion_type = atype}).status)
  end)

  it("serves OIDC discovery (AAD and ADFS style), JWKS, /metadata/endpoints and IMDS", function()
    local aad = call("GET", "/" .. platform.tenant .. "/v2.0/.well-known/openid-configuration"):json()
    assert.are.equal(base .. "/" .. platform.tenant .. "/oauth2/v2.0/token", aad.token_endpoint)
    local adfs = call("GET", "/adfs/.well-known/openid-configuration"):json()
    assert.are.equal(base .. "/adfs/oauth2/token", adfs.token_endpoint)
    local keys = call("GET", adfs.jwks_uri:sub(#base + 1)):json().keys
    assert.are.equal("RSA", keys[1].kty)
    local meta = call("GET", "//metadata/endpoints?api-version=2015-01-01"):json()
    assert.are.equal(base .. "/adfs", meta.authentication.loginEndpoint)
    local path = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
    assert.are.equal(400, call("GET", path).status)
    local imds = call("GET", path, {headers = {Metadata = "true"}}):json()
    assert.are.equal("https://vault.azure.net", imds.resource)
    assert.is_string(imds.expires_in)
  end)

  it("fills the twin environment and the shell exports az and opsh need", function()
    local env = twin.environment(dir)
    assert.are.same({platform.tenant, platform.subscription, platform.client_id, base, base},
      {env.tenant, env.subscription, env.azure.client_id, env.endpoints.arm, env.endpoints.imds})
    assert.are.equal(secret, require("opsh._core").reveal(env.twin.secrets["azure-client-secret"]))
    local ex = {}
    for _, kv in ipairs(twin.shell_exports(dir)) do ex[kv[1]] = kv[2] end
    assert.are.same({dir .. "/api/az", ca, "false", platform.tenant, platform.client_id},
      {ex.AZURE_CONFIG_DIR, ex.REQUESTS_CA_BUNDLE, ex.AZURE_CORE_COLLECT_TELEMETRY, ex.AZURE_TENANT_ID, ex.AZURE_CLIENT_ID})
    assert.are.equal(secret, ex.AZURE_CLIENT_SECRET)
    -- the secret reaches az through a 0600 file, never an argv
    local st = require("opsh.fs").stat(dir .. "/api/az/service_principal_entries.json")
    assert.are.equal(tonumber("600", 8), st.mode & tonumber("777", 8))
  end)

  it("answers 401 with a challenge without a token, 400 without an api-version", function()
    local res = call("GET", POOL .. "?api-version=2025-05-01")
    assert.are.equal(401, res.status)
    assert.matches("^Bearer authorization_uri=", res.headers["www-authenticate"])
    assert.are.equal("AuthenticationFailed", res:json().error.code)
    local vault = token_with({client_secret = secret, scope = "https://vault.azure.net/.default"}):json().access_token
    res = call("GET", POOL .. "?api-version=2025-05-01", {headers = {Authorization = "Bearer " .. vault}})
    assert.are.equal("InvalidAuthenticationTokenAudience", res:json().error.code)
    assert.are.equal("MissingApiVersionParameter", arm("GET", POOL):json().error.code)
    local subs = arm("GET", "/subscriptions?api-version=2022-12-01"):json()
    assert.are.equal(platform.subscription, subs.value[1].subscriptionId)
  end)

  it("counts down a per-subscription budget in x-ms-ratelimit-remaining-* and throttles with Retry-After", function()
    twin.client(dir):put("arm.knobs", "knobs", {budget = {reads = 5, reads_per_second = 0.2}})
    local seen, throttled = {}, nil
    for _ = 1, 8 do
      local res = arm("GET", POOL .. "?api-version=2025-05-01")
      if res.status == 429 then throttled = res break end
      seen[#seen + 1] = tonumber(res.headers["x-ms-ratelimit-remaining-subscription-reads"])
    end
    assert.are.same({4, 3, 2, 1, 0}, seen)
    assert.is_table(throttled)
    assert.is_true(tonumber(throttled.headers["retry-after"]) >= 1)
    assert.are.equal("TooManyRequests", throttled:json().error.code)
    -- writes have their own bucket
    local w = arm("PUT", POOL .. "?api-version=2025-05-01", {properties = {count = 4}})
    assert.is_truthy(w.headers["x-ms-ratelimit-remaining-subscription-writes"])
    twin.client(dir):put("arm.knobs", "knobs", {})
  end)

  it("injects failures from its knobs, then answers normally", function()
    twin.client(dir):put("arm.knobs", "knobs", {fail = {{status = 503, count = 2, match = "agentpools", retry_after = 2}}})
    local a = arm("GET", POOL .. "?api-version=2025-05-01")
    local b = arm("GET", POOL .. "?api-version=2025-05-01")
    local c = arm("GET", POOL .. "?api-version=2025-05-01")
    assert.are.same({503, 503, 200}, {a.status, b.status, c.status})
    assert.are.equal("2", a.headers["retry-after"])
    twin.client(dir):put("arm.knobs", "knobs", {})
  end)

  it("runs a scale as a long-running operation: 200 + Azure-AsyncOperation, InProgress, then Succeeded", function()
    local res = arm("PUT", POOL .. "?api-version=2025-05-01", {properties = {count = 6, vmSize = "Standard_D8s_v5",
      mode = "User"}})
    assert.are.equal(200, res.status)
    assert.are.equal("Updating", res:json().properties.provisioningState)
    local op = res.headers["azure-asyncoperation"]
    assert.are.equal("InProgress", call("GET", op, {headers = {Authorization = "Bearer " .. token}}):json().status)
    local loc = call("GET", res.headers["location"], {headers = {Authorization = "Bearer " .. token}})
    assert.are.equal(202, loc.status)
    local status
    for _ = 1, 50 do
      status = call("GET", op, {headers = {Authorization = "Bearer " .. token}}):json().status
      if status ~= "InProgress" then break end
      require("opsh").sleep(0.2)
    end
    assert.are.equal("Succeeded", status)
    local pool = arm("GET", POOL .. "?api-version=2022-11-01"):json()
    assert.are.same({6, "Succeeded"}, {pool.properties.count, pool.properties.provisioningState})
    assert.are.equal(6, twin.client(dir):get("arm", POOL:lower()).properties.count)
  end)

  it("keeps its operations across an API process restart: done ones answer, a running one is Failed", function()
    twin.client(dir):put("arm.knobs", "knobs", {lro_seconds = 0})
    local done = arm("PUT", POOL .. "?api-version=2025-05-01", {properties = {count = 4, vmSize = "Standard_D8s_v5", mode = "User"}})
    local done_op = done.headers["azure-asyncoperation"]
    local status
    for _ = 1, 50 do
      status = call("GET", done_op, {headers = {Authorization = "Bearer " .. token}}):json().status
      if status ~= "InProgress" then break end
      require("opsh").sleep(0.1)
    end
    assert.are.equal("Succeeded", status)
    twin.client(dir):put("arm.knobs", "knobs", {lro_seconds = 600})
    local running = arm("PUT", POOL .. "?api-version=2025-05-01", {properties = {count = 5, vmSize = "Standard_D8s_v5", mode = "User"}})
    local running_op = running.headers["azure-asyncoperation"]
    twin.down({dir = dir})
    local st = twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    local old_base = base
    base = st.components.api.listeners.arm
    token = token_with({client_secret = secret}):json().access_token
    local function get(url) return call("GET", base .. url:sub(#old_base + 1), {headers = {Authorization = "Bearer " .. token}}) end
    assert.are.equal("Succeeded", get(done_op):json().status)
    assert.are.equal(200, get(done.headers["location"]).status)
    local failed = get(running_op):json()
    assert.are.same({"Failed", "OperationInterrupted"}, {failed.status, failed.error.code})
    twin.client(dir):put("arm.knobs", "knobs", {})
  end)

  it("pages lists with nextLink and refuses bad input with ARM's errors", function()
    twin.client(dir):put("arm.knobs", "knobs", {page_size = 1})
    local list = arm("GET", RG .. "/providers/Microsoft.ContainerService/managedClusters/aks-legal-production/agentPools"
      .. "?api-version=2025-05-01"):json()
    assert.are.equal(1, #list.value)
    local second = call("GET", list.nextLink, {headers = {Authorization = "Bearer " .. token}}):json()
    assert.are.equal(1, #second.value)
    assert.are_not.equal(list.value[1].name, second.value[1].name)
    assert.is_nil(second.nextLink)
    twin.client(dir):put("arm.knobs", "knobs", {})
    local pg = RG .. "/providers/Microsoft.DBforPostgreSQL/flexibleServers/psql-legal-production?api-version=2024-08-01"
    local res = arm("PATCH", pg, {properties = {storage = {storageSizeGB = 64}}})
    assert.are.same({400, "StorageSizeDecreaseNotSupported"}, {res.status, res:json().error.code})
    res = arm("PUT", POOL:gsub("usernodepool$", "Bad_Pool") .. "?api-version=2025-05-01", {properties = {count = 1}})
    assert.are.equal(400, res.status)
    res = arm("GET", RG .. "/providers/Microsoft.Cache/Redis/nope?api-version=2024-11-01")
    assert.are.equal(404, res.status)
    assert.is_string(res.headers["x-ms-request-id"])
  end)
end)
