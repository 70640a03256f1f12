-- bench/redis.lua: 100k pipelined SET from opsh.redis vs redis-benchmark -P 16 against the same
-- redis-server in the same run, plain and over TLS. Run: ./build/opsh bench/redis.lua [N]
local redis = require("opsh.redis")
local twin_redis = require("opsh.twin.redis")
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local proc = require("opsh.proc")

local N = tonumber(arg and arg[1]) or 100000
local RUNS = 5

-- a CA and a server certificate for 127.0.0.1, made with opsh.crypto as the twin's CA is
local function certs(dir)
  fs.mkdir(dir, {parents = true, mode = "0700"})
  local ca = crypto.x509.create_ca({cn = "bench CA", days = 1})
  local server = crypto.x509.create_cert({ca_cert = ca.cert_pem, ca_key = ca.key_pem, cn = "127.0.0.1",
    sans = {"127.0.0.1"}, days = 1, server = true})
  fs.write(dir .. "/ca.pem", ca.cert_pem)
  fs.write(dir .. "/server.pem", server.cert_pem)
  fs.write(dir .. "/server.key", server.key_pem, {mode = "0600"})
  return {cert = dir .. "/server.pem", key = dir .. "/server.key", ca = dir .. "/ca.pem"}
end

local function opsh_set(r)
  r:flushall()
  local t0 = core.hrtime()
  local res = r:pipeline(function(p)
    for i = 1, N do p:set("key:" .. i, "xxx") end
  end)
  local dt = core.hrtime() - t0
  assert(res.n == N and res[N] == "OK")
  return N / dt
end

local function peer_set(port, tls)
  local argv = {"redis-benchmark", "-h", "127.0.0.1", "-p", port, "-P", 16, "-n", N, "-t", "set", "-q"}
  if tls then table.move({"--tls", "--cacert", tls.ca}, 1, 3, #argv + 1, argv) end
  local out = proc.run({argv = argv, stderr = "stdout", check = false}).stdout
  local rps = tonumber(out:match("SET: ([%d%.]+) requests per second"))
  if not rps then error("redis-benchmark: " .. out) end
  return rps
end

local tmp = fs.tmpdir("opsh-bench-redis-")
local tls = certs(tmp .. "/ca")
local server = twin_redis.start{dir = tmp .. "/redis", tls = tls}
local ok, err = pcall(function()
  print(("%d pipelined SET, best of %d runs, one redis-server %s"):format(N, RUNS,
    proc.run({argv = {"redis-server", "--version"}}).stdout:match("v=(%S+)")))
  local rows = {}
  for _, mode in ipairs({"plain", "tls"}) do
    local r = redis.connect(server:options{tls = mode == "tls"})
    local port = mode == "tls" and server.tls_port or server.port
    -- interleaved, best of RUNS each: the machine is shared, the best run is the least disturbed
    local mine, theirs = 0, 0
    for _ = 1, RUNS do
      mine = math.max(mine, opsh_set(r))
      theirs = math.max(theirs, peer_set(port, mode == "tls" and tls))
    end
    r:close()
    rows[#rows + 1] = ("%-6s opsh.redis %10.0f ops/s   redis-benchmark -P 16 %10.0f ops/s   ratio %.2f")
      :format(mode, mine, theirs, mine / theirs)
  end
  print(table.concat(rows, "\n"))
end)
server:stop()
fs.rmtree(tmp)
if not ok then error(err, 0) end
