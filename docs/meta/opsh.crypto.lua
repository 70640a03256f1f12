---@meta opsh.crypto
-- Editor stubs for `opsh.crypto` (lua/opsh/crypto.lua + bindings/crypto*.c). See docs/crypto.md.

---@alias opsh.bytes string|opsh.secret  a string, or an opsh.secret for key material
---@alias opsh.crypto.anykey string|opsh.secret|opsh.crypto.key

---A parsed key (keys.load): pass it wherever a key is taken.
---@class opsh.crypto.key
local key = {}
---@return {type: string, bits: integer, curve?: string, private: boolean}
function key:info() end
---Free the key now (idempotent; also on <close> and collection).
function key:close() end

---@class opsh.crypto.key_info
---@field type "rsa"|"ec"|"rsa-pss"|"ed25519"|"ed448"|"unknown"
---@field bits integer
---@field curve? string "P-256", "P-384", "P-521" for EC keys

---@class opsh.crypto.issued
---@field cert_pem string
---@field key_pem opsh.secret PKCS#8 PEM

---@class opsh.crypto.sans
---@field dns string[]
---@field ip string[]
---@field email string[]
---@field uri string[]

---@class opsh.crypto.cert
---@field subject string RFC 4514 order: "CN=localhost,O=Acme"
---@field subject_cn? string
---@field issuer string
---@field issuer_cn? string
---@field serial string hex upper
---@field not_before string RFC 3339 UTC
---@field not_after string RFC 3339 UTC
---@field not_before_epoch integer
---@field not_after_epoch integer
---@field sans opsh.crypto.sans
---@field is_ca boolean
---@field self_signed boolean
---@field sha1_thumbprint string hex upper, no colons
---@field sha256_thumbprint string hex upper, no colons
---@field key_usage string[]
---@field ext_key_usage string[]
---@field subject_key_id? string
---@field authority_key_id? string
---@field key opsh.crypto.key_info
---@field signature_algorithm string
---@field version integer
---@field pem string

---@class opsh.crypto.keys
local keys = {}
---Parse a key once for repeated signing or verification.
---@param k opsh.crypto.anykey
---@param opts? {passphrase?: opsh.bytes, private?: boolean}
---@return opsh.crypto.key
function keys.load(k, opts) end
---@param key opsh.bytes private key, PEM or DER
---@param opts? {passphrase?: opsh.bytes}
---@return opsh.crypto.key_info
function keys.read(key, opts) end
---New private key (on the thread pool inside a task).
---@param opts? {type?: "ec"|"rsa", bits?: integer}
---@return opsh.secret pem
function keys.generate(opts) end
---@param key opsh.bytes certificate, public or private key
---@return opsh.crypto.key_info
function keys.info(key) end
---@param key opsh.bytes certificate, public or private key
---@return string pem "-----BEGIN PUBLIC KEY-----..."
function keys.public_pem(key) end
---Do both hold the same key pair (certificate, public or private key)?
---@param a opsh.bytes
---@param b opsh.bytes
---@return boolean
function keys.matches(a, b) end
---Public JWK: {kty="RSA", n=, e=} or {kty="EC", crv=, x=, y=}.
---@param key opsh.bytes
---@param opts? {kid?: string, alg?: string, use?: string}
---@return table
function keys.jwk(key, opts) end

---@class opsh.crypto.x509
local x509 = {}
---@param cert string PEM or DER
---@return opsh.crypto.cert
function x509.parse(cert) end
---@param pem string a bundle
---@return opsh.crypto.cert[]
function x509.parse_all(pem) end
---Self-signed CA: critical basicConstraints CA:TRUE, keyUsage keyCertSign/cRLSign, SKI, AKI.
---@param opts {cn: string, org?: string, days?: integer, key_type?: "ec"|"rsa", bits?: integer, key?: opsh.bytes}
---@return opsh.crypto.issued
function x509.create_ca(opts) end
---Certificate signed by a CA: typed SANs, AKI, critical basicConstraints CA:FALSE, EKU server/client.
---@param opts {ca_cert: string, ca_key: opsh.bytes, ca_passphrase?: opsh.bytes, cn?: string, sans?: string[], days?: integer, server?: boolean, client?: boolean, key?: opsh.bytes, key_type?: "ec"|"rsa", bits?: integer, org?: string}
---@return opsh.crypto.issued
function x509.create_cert(opts) end

---@class opsh.crypto.jwt
local jwt = {}
---Sign claims as a compact JWS (RS*, PS*, ES*).
---@param claims table
---@param key opsh.bytes private key
---@param opts? {alg?: string, kid?: string, x5t?: string, x5t_s256?: string, header?: table, expires_in?: integer, now?: integer, passphrase?: opsh.bytes}
---@return string token
function jwt.sign(claims, key, opts) end
---Verify signature and claims; raises {kind="jwt", code=...}.
---@param token opsh.bytes
---@param key opsh.bytes certificate, public or private key
---@param opts? {algs?: string[], now?: number, leeway?: number, audience?: string|string[], issuer?: string, require_exp?: boolean}
---@return table claims, table header
function jwt.verify(token, key, opts) end
---Read a token without verifying anything.
---@param token opsh.bytes
---@return table claims, table header
function jwt.decode_unverified(token) end

---@class opsh.crypto
---@field keys opsh.crypto.keys
---@field x509 opsh.crypto.x509
---@field jwt opsh.crypto.jwt
local crypto = {}
---@param n integer
---@return string
function crypto.random_bytes(n) end
---base64 of nbytes random bytes (default 32, like `openssl rand -base64 32`).
---@param nbytes? integer
---@param opts? {url?: boolean}
---@return opsh.secret
function crypto.random_password(nbytes, opts) end
---@param data opsh.bytes
---@return string|opsh.secret
function crypto.base64_encode(data) end
---@param text opsh.bytes
---@return string|opsh.secret
function crypto.base64_decode(text) end
---@param data opsh.bytes
---@return string|opsh.secret
function crypto.base64url_encode(data) end
---@param text opsh.bytes
---@return string|opsh.secret
function crypto.base64url_decode(text) end
---@param data string
---@param opts? {upper?: boolean}
---@return string
function crypto.hex_encode(data, opts) end
---@param text string
---@return string
function crypto.hex_decode(text) end
---@param data opsh.bytes
---@return string raw
function crypto.sha1(data) end
---@return string hex
function crypto.sha1_hex(data) end
---@param data opsh.bytes
---@return string raw
function crypto.sha256(data) end
---@return string hex
function crypto.sha256_hex(data) end

---Azure Storage's CRC-64 (CRC-64/NVME) of data; give the previous result as crc to go on over the next chunk.
---@param data string
---@param crc? integer a previous crc64 result
---@return integer
function crypto.crc64(data, crc) end

---The x-ms-content-crc64 form of a crc64 result: 8 bytes, least significant first, base64.
---@param crc integer
---@return string
function crypto.crc64_base64(crc) end
---@param data opsh.bytes
---@return string raw
function crypto.sha384(data) end
---@return string hex
function crypto.sha384_hex(data) end
---@param data opsh.bytes
---@return string raw
function crypto.sha512(data) end
---@return string hex
function crypto.sha512_hex(data) end
---@param key opsh.bytes
---@param data opsh.bytes
---@return string raw
function crypto.hmac_sha256(key, data) end
---@return string hex
function crypto.hmac_sha256_hex(key, data) end
---@return string raw
function crypto.hmac_sha384(key, data) end
---@return string hex
function crypto.hmac_sha384_hex(key, data) end
---@return string raw
function crypto.hmac_sha512(key, data) end
---@return string hex
function crypto.hmac_sha512_hex(key, data) end
---@return string raw
function crypto.hmac_sha1(key, data) end
---@return string hex
function crypto.hmac_sha1_hex(key, data) end
---@param a opsh.bytes
---@param b opsh.bytes
---@return boolean
function crypto.constant_time_equal(a, b) end
---AES-256-GCM: nonce (12 bytes) .. ciphertext .. tag (16 bytes), a fresh random nonce each call.
---@param key string|opsh.secret 32 bytes
---@param plaintext string|opsh.secret
---@param aad? string data the sealed text is bound to
---@return string sealed
function crypto.seal(key, plaintext, aad) end
---Opens what seal sealed; raises crypto/bad_tag for a wrong key or aad, or a changed text.
---@param key string|opsh.secret
---@param sealed string
---@param aad? string
---@return opsh.secret plaintext
function crypto.open(key, sealed, aad) end

return crypto
