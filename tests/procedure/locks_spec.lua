-- Locks keyed by resources: while another run (this spec) holds the resource a procedure touches, the
-- procedure stops before its first change, naming the holder, exit 1 (with --lock-wait 0, at once). The
-- resources are what the procedures share: rotate-db-password and scale-postgres both stop on the
-- primary server's lease, dr-failover on the replica's, weekly-maintenance's node image upgrade and
-- scale-nodepool on the pool's.
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local redis = require("opsh.redis")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")
local lock = require("opsh.lock")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/procedure"
local function script(name) return here .. "/../../scripts/" .. name .. ".lua" end

local CASES = {
  {"scale-deployment", {"--deployment", "web", "--replicas", "4"}, "k8s:aks-legal-production/production/deployment/web"},
  {"scale-hpa", {"--hpa", "web-hpa", "--min", "2", "--max", "5"}, "k8s:aks-legal-production/production/hpa/web-hpa"},
  {"scale-nodepool", {"--pool", "usernodepool", "--count", "4"}, "aks:aks-legal-production/usernodepool"},
  {"scale-postgres", {"--storage-gb", "256"}, "postgres:psql-legal-production"},
  {"scale-redis", {"--sku", "Standard", "--capacity", "2", "--force"}, "redis:redis-legal-production"},
  {"rotate-db-password", {"--admin"}, "postgres:psql-legal-production"},
  {"rotate-redis-key", {}, "redis:redis-legal-production"},
  {"dr-failover", {}, "postgres:psql-legal-production-replica"},
  {"weekly-maintenance", {"--part", "pods"}, "aks:aks-legal-production"},
}

describe("procedures and the resources they lock", function()
  local dir, env

  lazy_setup(function()
    dir = fs.tmpdir("opsh-locks-")
    twin.up({dir = dir, without = {"azurite", "registry"}})
    env = twin.environment(dir)
  end)

  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  for _, case in ipairs(CASES) do
    local name, args, resource = case[1], case[2], case[3]
    it(name .. " stops before any change while " .. resource .. " is held, naming the holder", function()
      local r <close> = redis.connect({host = env.redis.host, port = env.redis.port, tls = true, ca = env.redis.ca,
        password = env.twin.redis_password})
      local lease = lock.acquire(r, resource, {procedure = "locks-spec"})
      local argv = {runtime.exe(), "--env", "twin", "--yes", "--lock-wait", "0", "run", script(name)}
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      local res = proc.run{argv = argv, env_add = {OPSH_TWIN_DIR = dir}, check = false, timeout = 120}
      lease:release()
      assert.are.equal(1, res.code, res.stderr)
      assert.matches(resource:gsub("%p", "%%%0") .. " is locked by .*locks%-spec", res.stderr)
      assert.is_nil(res.stdout:find("[1-9]%d* change%(s%)"), res.stdout)
    end)
  end

  it("refuses a --lock-wait that is not a duration, before anything", function()
    local res = proc.run{argv = {runtime.exe(), "--env", "twin", "--lock-wait", "soon", "run", script("scale-deployment"),
      "--deployment", "web", "--replicas", "4"}, env_add = {OPSH_TWIN_DIR = dir}, check = false}
    assert.are.equal(2, res.code)
    assert.matches("%-%-lock%-wait 'soon' is not a duration", res.stderr)
  end)
end)
