-- opsh.twin.identity: the twin's identity provider, shared by every Azure API twin. Tokens are RS256
-- JWTs signed by one twin key (DIR/ca/identity/signing.key, 0600; made on first use, kept across
-- down/up with the CA, replaced with it by `reset`), with the claims Entra ID puts in an access token: aud, iss, tid,
-- oid, appid, sub, iat, nbf, exp. The ARM twin issues them at its token endpoint; every twin verifies
-- them on each request.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local json = require("opsh.json")
local platform = require("opsh.twin.platform")

local M = {}

local PRIVATE = tonumber("600", 8)

-- audiences written more than one way by the clients: az asks for ARM as the cloud's
-- `active_directory_resource_id` (https://management.core.windows.net/), the SDKs for management.azure.com
local ALIASES = {
  ["https://management.core.windows.net"] = "https://management.azure.com",
}

--- canonical(resource) -> the audience as the twin compares it: no `/.default`, no trailing slash,
-- lower-cased, aliases folded (both ARM spellings are one audience).
function M.canonical(resource)
  local r = tostring(resource or ""):lower():gsub("/%.default$", ""):gsub("/+$", "")
  return ALIASES[r] or r
end

local cache = {}   -- dir -> {key = keys.load object, jwk = ..., kid = ...}

function M.identity_dir(dir) return dir .. "/ca/identity" end
function M.key_path(dir) return M.identity_dir(dir) .. "/signing.key" end

-- the signing key of the twin in `dir`, made on first use
local function signer(dir)
  local c = cache[dir]
  if c then return c end
  local path = M.key_path(dir)
  local pem = fs.read(path, {missing_ok = true})
  if not pem then
    fs.mkdir(M.identity_dir(dir), {parents = true, mode = tonumber("700", 8)})
    local fresh = crypto.keys.generate({type = "rsa", bits = 2048})
    -- two processes making the key at once: the rename is atomic and both read back the one that won
    fs.write_atomic(path, fresh, {mode = PRIVATE})
    pem = fs.read(path)
  end
  local key = crypto.keys.load(core.secret(pem))
  local kid = crypto.hex_encode(crypto.sha256(crypto.keys.public_pem(key))):sub(1, 32)
  c = {key = key, kid = kid, jwk = crypto.keys.jwk(key, {kid = kid, alg = "RS256", use = "sig"})}
  cache[dir] = c
  return c
end

--- jwks(twin) -> the JWKS document ({keys = {jwk}}) clients verify tokens with.
function M.jwks(twin)
  return {keys = json.array({signer(twin.dir).jwk})}
end

--- issuer(twin) -> the `iss` of the twin's tokens, as Entra ID's v1 access tokens (what az and ARM use)
-- have it. It does not name the twin's port, so tokens stay valid across `twin down`/`up`.
function M.issuer(_twin)
  return "https://sts.windows.net/" .. platform.tenant .. "/"
end

--- issue(twin, {audience =, subject =, ttl = 3600, claims = {...}}) -> token string.
-- audience: the resource (`https://vault.azure.net`, ...; a `/.default` scope is accepted); subject:
-- the principal's object/app id (default the platform's service principal).
function M.issue(twin, opts)
  opts = opts or {}
  if type(opts.audience) ~= "string" or opts.audience == "" then
    error(core.error("usage", "identity.issue: audience (the resource the token is for) is required"), 0)
  end
  local subject = opts.subject or platform.client_id
  local now = os.time()
  local aud = opts.audience:gsub("/%.default$", "")
  local claims = {aud = aud, iss = M.issuer(twin), tid = platform.tenant, oid = subject, sub = subject,
    appid = opts.appid or subject, azp = opts.appid or subject, iat = now, nbf = now - 300,
    exp = now + (opts.ttl or 3600), ver = "1.0", idtyp = "app",
    uti = crypto.hex_encode(crypto.random_bytes(8))}
  for k, v in pairs(opts.claims or {}) do claims[k] = v end
  local s = signer(twin.dir)
  return crypto.jwt.sign(claims, s.key, {alg = "RS256", kid = s.kid})
end

-- the 401 answer: Entra/ARM's challenge and error body
local function challenge(twin, audience, code, message)
  local auth = (twin.endpoint and twin.endpoint("arm") or "https://login.twin.local"):gsub("/+$", "")
    .. "/" .. platform.tenant
  local aud = type(audience) == "table" and audience[1] or audience
  local header = string.format('Bearer authorization_uri="%s", error="invalid_token", resource="%s"%s',
    auth, tostring(aud or ""), aud and string.format(', scope="%s/.default"', tostring(aud):gsub("/+$", "")) or "")
  return {status = 401, headers = {["WWW-Authenticate"] = header, ["x-ms-failure-cause"] = "gateway"},
    json = {error = {code = code, message = message}}}
end

--- verify(twin, authorization_header_value, audience) -> claims, or nil and a 401 answer
-- ({status = 401, headers = {["WWW-Authenticate"] = ...}, json = {error = {code, message}}}) a handler
-- returns as it is. audience: a resource or a list of them (compared with canonical()).
function M.verify(twin, authorization, audience)
  if type(authorization) ~= "string" or authorization == "" then
    return nil, challenge(twin, audience, "AuthenticationFailed",
      "Authentication failed. The 'Authorization' header is missing.")
  end
  local token = authorization:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then
    return nil, challenge(twin, audience, "AuthenticationFailed",
      "Authentication failed. The 'Authorization' header is not a Bearer token.")
  end
  local ok, claims = pcall(crypto.jwt.verify, token, signer(twin.dir).key,
    {algs = {"RS256"}, leeway = 60, issuer = M.issuer(twin)})
  if not ok then
    local code = core.is_error(claims) and claims.code
    if code == "expired" then
      return nil, challenge(twin, audience, "ExpiredAuthenticationToken",
        "The access token expiry UTC time is earlier than current UTC time.")
    end
    return nil, challenge(twin, audience, "InvalidAuthenticationToken",
      "The access token is invalid" .. (code and (" (" .. tostring(code) .. ")") or "") .. ".")
  end
  if audience ~= nil then
    local wanted = type(audience) == "table" and audience or {audience}
    local got = M.canonical(claims.aud)
    local match = false
    for _, a in ipairs(wanted) do match = match or M.canonical(a) == got end
    if not match then
      return nil, challenge(twin, audience, "InvalidAuthenticationTokenAudience",
        string.format("The access token has been obtained for wrong audience or resource '%s'. It should "
          .. "exactly match with one of the allowed audiences '%s'.", tostring(claims.aud),
          table.concat(wanted, "', '")))
    end
  end
  return claims
end

--- clients_dir(dir, client_id) -> where the certificates registered for an application live
function M.clients_dir(dir, client_id)
  return M.identity_dir(dir) .. "/clients/" .. tostring(client_id):gsub("[^%w%-]", "_")
end

--- register_certificate(twin, client_id, cert_pem): the application may authenticate with client
-- assertions signed by this certificate's key (as `az ad sp credential reset --cert` does).
function M.register_certificate(twin, client_id, cert_pem)
  local info = crypto.x509.parse(cert_pem)
  local dir = M.clients_dir(twin.dir, client_id)
  fs.mkdir(dir, {parents = true, mode = tonumber("700", 8)})
  fs.write_atomic(dir .. "/" .. info.sha256_thumbprint .. ".pem", info.pem)
  return info.sha256_thumbprint
end

return M
