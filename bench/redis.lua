-- bench/redis.lua: 100k pipelined SET from opsh.redis vs redis-benchmark -P 16 against the same
-- redis-server in the same run, plain and over TLS. Run: ./build/opsh bench/redis.lua [N]
local redis = require("opsh.redis")
local twin_redis = require("opsh.twin.redis")
local core = require("opsh._core")

local N = tonumber(arg and arg[1]) or 100000
local RUNS = 5

local function sh(cmd)
  assert(os.execute(cmd .. " >/dev/null 2>&1"), "failed: " .. cmd)
end

local function certs(dir)
  sh("mkdir -p " .. dir)
  local f = assert(io.open(dir .. "/ca.cnf", "w"))
  f:write("[req]\ndistinguished_name = dn\nx509_extensions = v3\nprompt = no\n[dn]\nCN = bench CA\n",
    "[v3]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n")
  f:close()
  f = assert(io.open(dir .. "/server.ext", "w"))
  f:write("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n")
  f:close()
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  sh(("cd %s && openssl req -x509 -config ca.cnf %s -keyout ca.key -out ca.pem -days 1"):format(dir, ec))
  sh(("cd %s && openssl req -new %s -keyout server.key -out server.csr -subj /CN=127.0.0.1"):format(dir, ec))
  sh(("cd %s && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -out server.pem " ..
    "-days 1 -extfile server.ext"):format(dir))
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
  local cmd = ("redis-benchmark -h 127.0.0.1 -p %d -P 16 -n %d -t set -q"):format(port, N)
  if tls then cmd = cmd .. (" --tls --cacert %s"):format(tls.ca) end
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  local rps = tonumber(out:match("SET: ([%d%.]+) requests per second"))
  if not rps then error("redis-benchmark: " .. out) end
  return rps
end

local tmp = os.tmpname()
os.remove(tmp)
local tls = certs(tmp .. "/ca")
local server = twin_redis.start{dir = tmp .. "/redis", tls = tls}
local ok, err = pcall(function()
  print(("%d pipelined SET, best of %d runs, one redis-server %s"):format(N, RUNS,
    io.popen("redis-server --version"):read("l"):match("v=(%S+)")))
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
os.execute("rm -rf " .. tmp)
if not ok then error(err, 0) end
