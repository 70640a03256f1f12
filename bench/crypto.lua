-- bench/crypto.lua: opsh.crypto throughput against its peers measured in the same run:
-- SHA-256 and base64 of 64 MB and HMAC-SHA256 of 300-byte strings (Azure Shared Key signing)
-- against Python's hashlib/base64/hmac; RS256 JWT signing and verification against
-- `openssl speed rsa2048` (raw RSA operations, no JSON or base64: an upper bound), with the key
-- given as PEM (parsed on every call) and as a keys.load object.
-- Run: ./build/opsh bench/crypto.lua
local crypto = require("opsh.crypto")
local core = require("opsh._core")

local function best(runs, fn)
  local t = math.huge
  for _ = 1, runs do
    local t0 = core.hrtime()
    fn()
    t = math.min(t, core.hrtime() - t0)
  end
  return t
end

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local MB = 64
local data = crypto.random_bytes(1024 * 1024):rep(MB)
local msg = ("GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2021-08-06\n"
  .. "/account/container/blob\ncomp:list\nrestype:container\n"):rep(2):sub(1, 300)
local key = crypto.random_bytes(64)
local NHMAC = 200000

local t_sha = best(3, function() crypto.sha256(data) end)
local b64
local t_b64 = best(3, function() b64 = crypto.base64_encode(data) end)
local t_unb64 = best(3, function() crypto.base64_decode(b64) end)
local t_hmac = best(3, function() for _ = 1, NHMAC do crypto.hmac_sha256(key, msg) end end)

local py = capture(string.format([[python3 - <<'EOF'
import hashlib, hmac, base64, os, time
data = os.urandom(%d * 1024 * 1024)
msg = os.urandom(300); key = os.urandom(64)
def best(fn, runs=3):
    t = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter(); fn(); t = min(t, time.perf_counter() - t0)
    return t
enc = base64.b64encode(data)
print(best(lambda: hashlib.sha256(data).digest()))
print(best(lambda: base64.b64encode(data)))
print(best(lambda: base64.b64decode(enc)))
print(best(lambda: [hmac.new(key, msg, hashlib.sha256).digest() for _ in range(%d)]))
EOF]], MB, NHMAC))
local p_sha, p_b64, p_unb64, p_hmac = py:match("(%S+)\n(%S+)\n(%S+)\n(%S+)")
p_sha, p_b64, p_unb64, p_hmac = tonumber(p_sha), tonumber(p_b64), tonumber(p_unb64), tonumber(p_hmac)

print(string.format("%-34s %12s %12s %8s", "", "opsh", "peer", "ratio"))
local function row(name, unit, ours, theirs)
  print(string.format("%-34s %12.1f %12.1f %8.2f", name .. " (" .. unit .. ")", ours, theirs, ours / theirs))
end
row("sha256 64 MB vs hashlib", "MB/s", MB / t_sha, MB / p_sha)
row("base64 encode 64 MB vs base64", "MB/s", MB / t_b64, MB / p_b64)
row("base64 decode vs base64", "MB/s", MB * 4 / 3 / t_unb64, MB * 4 / 3 / p_unb64)
row("hmac_sha256 300 B vs hmac", "k ops/s", NHMAC / t_hmac / 1000, NHMAC / p_hmac / 1000)

-- RS256: full JWT sign/verify (JSON, base64url, key parsing per call) vs raw RSA in openssl speed
local rsa = crypto.keys.generate{type = "rsa", bits = 2048}
local pub = crypto.keys.public_pem(rsa)
local claims = {iss = "app", sub = "app", aud = "https://login.example/token", exp = 1900000000, jti = "x"}
local N = 300
local token
local t_sign = best(2, function() for _ = 1, N do token = crypto.jwt.sign(claims, rsa) end end)
local t_verify = best(2, function()
  for _ = 1, N * 10 do crypto.jwt.verify(token, pub, {now = 1800000000}) end
end)
local signer, verifier = crypto.keys.load(rsa), crypto.keys.load(pub, {private = false})
local t_sign_obj = best(2, function() for _ = 1, N do token = crypto.jwt.sign(claims, signer) end end)
local t_verify_obj = best(2, function()
  for _ = 1, N * 10 do crypto.jwt.verify(token, verifier, {now = 1800000000}) end
end)
local speed = capture("openssl speed -seconds 2 rsa2048 2>/dev/null")
local s_sign, s_verify = speed:match("rsa%s+2048 bits%s+%S+%s+%S+%s+(%S+)%s+(%S+)")
row("jwt RS256 sign vs openssl speed", "ops/s", N / t_sign, tonumber(s_sign))
row("jwt RS256 verify vs openssl speed", "ops/s", N * 10 / t_verify, tonumber(s_verify))
row("jwt RS256 sign, keys.load object", "ops/s", N / t_sign_obj, tonumber(s_sign))
row("jwt RS256 verify, keys.load object", "ops/s", N * 10 / t_verify_obj, tonumber(s_verify))
