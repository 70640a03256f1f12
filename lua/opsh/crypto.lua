-- opsh.crypto: random values, digests, HMAC, base64, JWT (RS/PS/ES), X.509 certificates and keys
-- on OpenSSL 3. Private keys and passwords come back as opsh.secret values; every function that
-- takes a key takes a secret or a string. Errors are structured: kind "crypto" (with a code),
-- kind "jwt" for token verification, and never contain key material.
local C = require("opsh._crypto")
local core = require("opsh._core")
local check = require("opsh.check")

local M = {}

local function bad_arg(fname, n, msg)
  check.fail("crypto." .. fname, n, msg)
end

local function check_type(v, want, fname, n, optional)
  if v == nil and optional then return end
  if type(v) ~= want then check.arg("crypto." .. fname, n, v, want) end
end

-- a string or an opsh.secret
local function check_bytes(v, fname, n, optional)
  if v == nil and optional then return end
  if type(v) ~= "string" and not core.is_secret(v) then check.bytes("crypto." .. fname, n, v) end
end

-- a string, an opsh.secret or a key object (keys.load)
local function check_key(v, fname, n, optional)
  if v == nil and optional then return end
  if type(v) ~= "string" and not core.is_secret(v) and not C.is_key(v) then
    bad_arg(fname, n, string.format("key expected (string, secret or keys.load object), got %s", check.typename(v)))
  end
end

local function check_opts(opts, fname, n)
  if opts == nil then return {} end
  return check.table("crypto." .. fname, n, opts)
end

-- ---- random ----

--- random_bytes(n) -> string of n bytes from OpenSSL's CSPRNG.
function M.random_bytes(n)
  if math.type(n) ~= "integer" then bad_arg("random_bytes", 1, "integer expected") end
  return C.random_bytes(n)
end

--- random_password([nbytes = 32], {url = false}) -> secret: base64 of nbytes random bytes
-- (the default is what `openssl rand -base64 32` prints: 44 characters, 256 bits).
function M.random_password(nbytes, opts)
  if nbytes ~= nil and math.type(nbytes) ~= "integer" then bad_arg("random_password", 1, "integer expected") end
  opts = check_opts(opts, "random_password", 2)
  return C.random_password(nbytes or 32, opts.url)
end

-- ---- encodings ----

--- base64_encode(data) -> string (a secret for a secret). Standard alphabet, padded.
function M.base64_encode(data)
  check_bytes(data, "base64_encode", 1)
  return C.base64_encode(data, false)
end

--- base64_decode(text) -> string (a secret for a secret). Whitespace is skipped, padding optional;
-- raises {kind="crypto", code="bad_base64", position=}.
function M.base64_decode(text)
  check_bytes(text, "base64_decode", 1)
  return C.base64_decode(text, false)
end

--- base64url_encode(data) -> string: URL-safe alphabet, no padding (RFC 4648 section 5, JWS).
function M.base64url_encode(data)
  check_bytes(data, "base64url_encode", 1)
  return C.base64_encode(data, true)
end

--- base64url_decode(text) -> string; padding is accepted, whitespace is not.
function M.base64url_decode(text)
  check_bytes(text, "base64url_decode", 1)
  return C.base64_decode(text, true)
end

--- hex_encode(data, {upper = false}) -> string
function M.hex_encode(data, opts)
  check_type(data, "string", "hex_encode", 1)
  return C.hex_encode(data, check_opts(opts, "hex_encode", 2).upper)
end

--- hex_decode(text) -> string; "AB:CD" (colon-separated, as openssl prints) is accepted.
function M.hex_decode(text)
  check_type(text, "string", "hex_decode", 1)
  return C.hex_decode(text)
end

-- ---- digests and MACs ----

--- crc64(data [, crc]) -> integer: Azure Storage's CRC-64 (CRC-64/NVME) of data. Give the previous
-- result as crc to go on over the next chunk: crc64(b, crc64(a)) == crc64(a .. b).
function M.crc64(data, crc)
  check_type(data, "string", "crc64", 1)
  if crc ~= nil and math.type(crc) ~= "integer" then bad_arg("crc64", 2, "integer expected (a crc64 result)") end
  return C.crc64(data, crc)
end

--- crc64_base64(crc) -> the x-ms-content-crc64 form of a crc64 result: its 8 bytes, least significant
-- first, in base64
function M.crc64_base64(crc)
  if math.type(crc) ~= "integer" then bad_arg("crc64_base64", 1, "integer expected (a crc64 result)") end
  return C.base64_encode(string.pack("<i8", crc), false)
end

for _, alg in ipairs({"sha1", "sha256", "sha384", "sha512"}) do
  M[alg] = function(data)
    check_bytes(data, alg, 1)
    return C.digest(alg, data)
  end
  M[alg .. "_hex"] = function(data)
    check_bytes(data, alg .. "_hex", 1)
    return C.hex_encode(C.digest(alg, data))
  end
  local hmac = "hmac_" .. alg
  M[hmac] = function(key, data)
    check_bytes(key, hmac, 1)
    check_bytes(data, hmac, 2)
    return C.hmac(alg, key, data)
  end
  M[hmac .. "_hex"] = function(key, data)
    check_bytes(key, hmac .. "_hex", 1)
    check_bytes(data, hmac .. "_hex", 2)
    return C.hex_encode(C.hmac(alg, key, data))
  end
end

--- constant_time_equal(a, b) -> boolean; strings or secrets. Only the lengths can leak.
function M.constant_time_equal(a, b)
  check_bytes(a, "constant_time_equal", 1)
  check_bytes(b, "constant_time_equal", 2)
  return C.constant_time_equal(a, b)
end

-- ---- authenticated encryption ----

--- seal(key, plaintext [, aad]) -> sealed string: AES-256-GCM with a fresh random 12-byte nonce,
-- nonce .. ciphertext .. 16-byte tag. key: 32 bytes (a secret or a string); plaintext: a string or a
-- secret; aad: data the sealed text is bound to without being in it (a name, a version).
function M.seal(key, plaintext, aad)
  check_bytes(key, "seal", 1)
  check_bytes(plaintext, "seal", 2)
  check_type(aad, "string", "seal", 3, true)
  return C.seal(key, plaintext, aad)
end

--- open(key, sealed [, aad]) -> the plaintext as an opsh.secret; raises {kind="crypto", code="bad_tag"}
-- when the key or aad is not the one it was sealed with, or the sealed text was changed.
function M.open(key, sealed, aad)
  check_bytes(key, "open", 1)
  check_type(sealed, "string", "open", 2)
  check_type(aad, "string", "open", 3, true)
  return C.open(key, sealed, aad)
end

-- ---- keys ----

local keys = {}
M.keys = keys

--- keys.read(pem_or_der, {passphrase=}) -> {type="rsa"|"ec"|..., bits=, curve=}
function keys.read(key, opts)
  check_key(key, "keys.read", 1)
  opts = check_opts(opts, "keys.read", 2)
  check_bytes(opts.passphrase, "keys.read", 2, true)
  return C.key_read(key, opts.passphrase)
end

--- keys.load(key, {passphrase=, private = true}) -> a key object to sign or verify with many times
-- (parsing a key takes OpenSSL 3 about half a millisecond). private = false loads what verifies:
-- a certificate, public key or private key. Objects close with key:close(), <close> or collection.
function keys.load(key, opts)
  check_key(key, "keys.load", 1)
  opts = check_opts(opts, "keys.load", 2)
  check_bytes(opts.passphrase, "keys.load", 2, true)
  return C.key_load(key, opts.passphrase, opts.private ~= false)
end

--- keys.generate{type = "ec"|"rsa", bits=} -> secret PKCS#8 PEM (ec: P-256 by default; rsa: 2048).
-- Inside a task the key is generated on libuv's thread pool: only this task waits.
function keys.generate(opts)
  opts = check_opts(opts, "keys.generate", 1)
  check_type(opts.type, "string", "keys.generate", 1, true)
  if opts.bits ~= nil and math.type(opts.bits) ~= "integer" then bad_arg("keys.generate", 1, "bits must be an integer") end
  return C.key_generate(opts.type or "ec", opts.bits or 0)
end

--- keys.info(cert_or_key) -> {type=, bits=, curve=} of the public key
function keys.info(key)
  check_key(key, "keys.info", 1)
  return C.key_info(key)
end

--- keys.public_pem(cert_or_key) -> "-----BEGIN PUBLIC KEY-----..." (SubjectPublicKeyInfo)
function keys.public_pem(key)
  check_key(key, "keys.public_pem", 1)
  return C.key_public_pem(key)
end

--- keys.matches(a, b) -> true if both (certificate, public or private key) hold the same key
function keys.matches(a, b)
  check_key(a, "keys.matches", 1)
  check_key(b, "keys.matches", 2)
  return C.key_matches(a, b)
end

--- keys.jwk(cert_or_key, {kid=, alg=, use=}) -> the public JWK (for a JWKS document)
function keys.jwk(key, opts)
  check_key(key, "keys.jwk", 1)
  opts = check_opts(opts, "keys.jwk", 2)
  local jwk = C.key_jwk(key)
  jwk.kid, jwk.alg, jwk.use = opts.kid, opts.alg, opts.use
  return jwk
end

-- ---- X.509 ----

local x509 = {}
M.x509 = x509

--- x509.parse(pem_or_der) -> {subject=, issuer=, serial=, not_before=, not_after=, sans=, ...}
function x509.parse(cert)
  check_type(cert, "string", "x509.parse", 1)
  return C.x509_parse(cert)
end

--- x509.parse_all(pem) -> every certificate of a bundle, in order
function x509.parse_all(pem)
  check_type(pem, "string", "x509.parse_all", 1)
  return C.x509_parse_all(pem)
end

local function check_days(opts, fname)
  local d = opts.days
  if d ~= nil and (math.type(d) ~= "integer" or d < 1 or d > 36500) then
    bad_arg(fname, 1, "days must be an integer from 1 to 36500")
  end
end

local function check_key_opts(opts, fname)
  check_type(opts.key_type, "string", fname, 1, true)
  if opts.key_type ~= nil and opts.key_type ~= "ec" and opts.key_type ~= "rsa" then
    bad_arg(fname, 1, 'key_type must be "ec" or "rsa"')
  end
  if opts.bits ~= nil and math.type(opts.bits) ~= "integer" then bad_arg(fname, 1, "bits must be an integer") end
end

--- x509.create_ca{cn=, org=, days = 3650, key_type = "ec"|"rsa", bits=, key=} -> {cert_pem=, key_pem=secret}
-- A new key is generated on the thread pool (only this task waits) unless `key` is given.
function x509.create_ca(opts)
  check_type(opts, "table", "x509.create_ca", 1)
  if type(opts.cn) ~= "string" or opts.cn == "" then bad_arg("x509.create_ca", 1, "cn (a string) is required") end
  check_type(opts.org, "string", "x509.create_ca", 1, true)
  check_days(opts, "x509.create_ca")
  check_key_opts(opts, "x509.create_ca")
  check_key(opts.key, "x509.create_ca", 1, true)
  return C.x509_create_ca({cn = opts.cn, org = opts.org, days = opts.days or 3650,
    key = opts.key or C.key_generate(opts.key_type or "ec", opts.bits or 0)})
end

-- a cn that can stand as the SAN of a server certificate: an IP address or a DNS name
local function san_like(s)
  if s:match("^%d+%.%d+%.%d+%.%d+$") or (s:match("^[%x:.]+$") and s:find(":", 1, true)) then return true end
  return s:match("^[%w%-_%.]+$") ~= nil and not s:find("..", 1, true) and not s:match("^%.") and not s:match("%.$")
end

--- x509.create_cert{ca_cert=, ca_key=, ca_passphrase=, cn=, sans={...}, days = 365,
--   server = true, client = false, key=, key_type = "ec"|"rsa", bits=} -> {cert_pem=, key_pem=secret}
-- sans: DNS names and IP addresses (typed IP). Without sans a server certificate gets its cn.
-- Without cn, the first SAN is the cn. The certificate never outlives its CA.
function x509.create_cert(opts)
  local f = "x509.create_cert"
  check_type(opts, "table", f, 1)
  check_type(opts.ca_cert, "string", f, 1)
  check_key(opts.ca_key, f, 1)
  check_bytes(opts.ca_passphrase, f, 1, true)
  check_key(opts.key, f, 1, true)
  check_type(opts.cn, "string", f, 1, true)
  check_type(opts.sans, "table", f, 1, true)
  check_type(opts.org, "string", f, 1, true)
  check_days(opts, f)
  check_key_opts(opts, f)
  local sans = {}
  for i, s in ipairs(opts.sans or {}) do
    if type(s) ~= "string" then bad_arg(f, 1, string.format("sans[%d] must be a string", i)) end
    sans[i] = s
  end
  local server, client = opts.server, opts.client
  if server == nil then server = not client end
  local cn = opts.cn
  if (cn == nil or cn == "") then
    cn = sans[1]
    if cn == nil then bad_arg(f, 1, "cn or sans is required") end
  end
  if #sans == 0 and server and san_like(cn) then sans[1] = cn end
  return C.x509_create_cert({ca_cert = opts.ca_cert, ca_key = opts.ca_key, ca_passphrase = opts.ca_passphrase,
    key = opts.key or C.key_generate(opts.key_type or "ec", opts.bits or 0), cn = cn, org = opts.org,
    sans = sans, days = opts.days or 365, server = server, client = client and true or false})
end

-- ---- JWT ----

local jwt = {}
M.jwt = jwt

local function json() return require("opsh.json") end

local function jwt_error(code, message, fields)
  fields = fields or {}
  fields.code = code
  error(core.error("jwt", message, fields), 0)
end

--- jwt.sign(claims, key, {alg=, kid=, x5t=cert_pem, x5t_s256=cert_pem, header={}, expires_in=,
--   now=, passphrase=}) -> token (a string: treat it as a credential)
-- alg defaults to RS256 for an RSA key and ES256/384/512 for an EC key.
function jwt.sign(claims, key, opts)
  check_type(claims, "table", "jwt.sign", 1)
  check_key(key, "jwt.sign", 2)
  opts = check_opts(opts, "jwt.sign", 3)
  check_type(opts.alg, "string", "jwt.sign", 3, true)
  check_type(opts.kid, "string", "jwt.sign", 3, true)
  check_type(opts.x5t, "string", "jwt.sign", 3, true)
  check_type(opts.x5t_s256, "string", "jwt.sign", 3, true)
  check_type(opts.header, "table", "jwt.sign", 3, true)
  check_bytes(opts.passphrase, "jwt.sign", 3, true)
  local header = {}
  for k, v in pairs(opts.header or {}) do header[k] = v end
  header.alg, header.typ = nil, header.typ or "JWT"
  header.kid = opts.kid or header.kid
  if opts.x5t then header.x5t = C.base64_encode(C.x509_thumbprint(opts.x5t, "sha1"), true) end
  if opts.x5t_s256 then header["x5t#S256"] = C.base64_encode(C.x509_thumbprint(opts.x5t_s256, "sha256"), true) end
  if opts.expires_in ~= nil then
    if math.type(opts.expires_in) ~= "integer" or opts.expires_in <= 0 then
      bad_arg("jwt.sign", 3, "expires_in must be a positive integer (seconds)")
    end
    local now = opts.now or os.time()
    local copy = {}
    for k, v in pairs(claims) do copy[k] = v end
    copy.iat = copy.iat or now
    copy.exp = copy.exp or now + opts.expires_in
    claims = copy
  end
  local J = json()
  -- the C part puts alg (given, or the key's default) first in the header
  return (C.jwt_sign(opts.alg, key, opts.passphrase, J.encode(header), J.encode(claims)))
end

local function decode_part(text, what)
  local ok, v = pcall(json().decode, text)
  if not ok or type(v) ~= "table" or json().is_array(v) then
    jwt_error("malformed", "malformed JWT: the " .. what .. " is not a JSON object")
  end
  return v
end

--- jwt.decode_unverified(token) -> claims, header. Reads a token WITHOUT checking anything:
-- for display and for picking the key (kid) to verify with.
function jwt.decode_unverified(token)
  check_bytes(token, "jwt.decode_unverified", 1)
  local h, p = C.jwt_split(token)
  return decode_part(p, "payload"), decode_part(h, "header")
end

local function audience_ok(aud, want)
  local have = type(aud) == "table" and aud or {aud}
  local wanted = type(want) == "table" and want or {want}
  for _, a in ipairs(have) do
    for _, w in ipairs(wanted) do
      if a == w then return true end
    end
  end
  return false
end

local function numeric_claim(claims, name)
  local v = claims[name]
  if v ~= nil and type(v) ~= "number" then
    jwt_error("malformed", "malformed JWT: claim " .. name .. " is not a number")
  end
  return v
end

--- jwt.verify(token, key, {algs = {"RS256","PS256","ES256"}, now=, leeway = 0, audience=,
--   issuer=, require_exp = true}) -> claims, header
-- key: a certificate, public key or private key (PEM or DER; string or secret).
-- Raises {kind="jwt", code=malformed|unsupported_alg|alg_not_allowed|wrong_key_type|bad_signature|
-- expired|not_yet_valid|missing_exp|wrong_audience|wrong_issuer}.
function jwt.verify(token, key, opts)
  check_bytes(token, "jwt.verify", 1)
  check_key(key, "jwt.verify", 2)
  opts = check_opts(opts, "jwt.verify", 3)
  check_type(opts.algs, "table", "jwt.verify", 3, true)
  check_type(opts.now, "number", "jwt.verify", 3, true)
  check_type(opts.leeway, "number", "jwt.verify", 3, true)
  check_type(opts.issuer, "string", "jwt.verify", 3, true)
  if opts.audience ~= nil and type(opts.audience) ~= "string" and type(opts.audience) ~= "table" then
    bad_arg("jwt.verify", 3, "audience must be a string or a list of strings")
  end
  local h, p = C.jwt_split(token)
  local header = decode_part(h, "header")
  local alg = header.alg
  if type(alg) ~= "string" then jwt_error("malformed", "malformed JWT: the header has no alg") end
  local allowed = false
  for _, a in ipairs(opts.algs or {"RS256", "PS256", "ES256"}) do
    if a == alg then allowed = true break end
  end
  if not allowed then jwt_error("alg_not_allowed", "JWT algorithm " .. alg .. " is not allowed here", {alg = alg}) end
  if header.crit ~= nil then jwt_error("malformed", "JWT has critical header parameters (crit), none are supported") end
  if not C.jwt_check(token, key, alg) then
    jwt_error("bad_signature", "JWT signature does not verify with the given key", {alg = alg})
  end
  local claims = decode_part(p, "payload")
  local now = opts.now or os.time()
  local leeway = opts.leeway or 0
  local exp, nbf = numeric_claim(claims, "exp"), numeric_claim(claims, "nbf")
  if exp == nil and opts.require_exp ~= false then
    jwt_error("missing_exp", "JWT has no exp claim (pass require_exp = false to accept that)")
  end
  if exp ~= nil and now >= exp + leeway then
    jwt_error("expired", string.format("JWT expired %d s ago", math.floor(now - exp)), {exp = exp, now = now})
  end
  if nbf ~= nil and now + leeway < nbf then
    jwt_error("not_yet_valid", string.format("JWT is not valid for another %d s", math.ceil(nbf - now)),
      {nbf = nbf, now = now})
  end
  if opts.audience ~= nil and (claims.aud == nil or not audience_ok(claims.aud, opts.audience)) then
    jwt_error("wrong_audience", "JWT audience does not match", {
      expected = type(opts.audience) == "table" and table.concat(opts.audience, ", ") or opts.audience})
  end
  if opts.issuer ~= nil and claims.iss ~= opts.issuer then
    jwt_error("wrong_issuer", "JWT issuer does not match", {expected = opts.issuer})
  end
  return claims, header
end

return M
