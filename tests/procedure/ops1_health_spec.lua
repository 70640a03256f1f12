-- daily-health-check against the twin: the seven checks with verdicts, the figures checked through an
-- independent path (the ARM twin's agent pools, the k8s twin's store), and a check made to fail through a
-- twin knob exits 3.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local twin = require("opsh.twin")
local runtime = require("opsh.runtime")

describe("daily-health-check on the twin", function()
  local dir

  local function opsh(args)
    local argv = {runtime.exe()}
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return proc.run{argv = argv, env_add = {OPSH_TWIN_DIR = dir}, check = false, timeout = 90}
  end

  local function by_check(stdout)
    local t = {}
    for _, r in ipairs(json.decode(stdout)) do t[r.check] = r end
    return t
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-health-")
    twin.up({dir = dir, without = {"redis", "azurite", "registry"}})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("runs the seven checks, each with a verdict, and its figures match the twin", function()
    local r = opsh({"run", "daily-health-check", "--env", "twin", "-o", "json"})
    assert.equal(0, r.code, r.stderr)
    local res = by_check(r.stdout)
    for _, name in ipairs({"cluster", "pods", "usage", "database", "exceptions", "certificates", "hpa"}) do
      assert.truthy(res[name], name)
      assert.truthy(({pass = true, warn = true, fail = true})[res[name].verdict], name)
    end
    -- node count: the sum of the ARM twin's agent pools, read independently
    local nodes = 0
    for _, it in ipairs(twin.client(dir):list("arm")) do
      if it.key:match("/managedclusters/aks%-legal%-production/agentpools/[^/]+$") then
        nodes = nodes + it.object.properties.count
      end
    end
    assert.truthy(nodes > 0)
    assert.matches("Succeeded, " .. nodes .. " nodes", res.cluster.summary, 1, true)
    -- pods: the k8s twin's store holds as many pods as the check counted
    local pods = #twin.client(dir):list("k8s.production.pods")
    assert.matches("^" .. pods .. " pods", res.pods.summary)
    assert.matches("Ready", res.database.summary)
    assert.matches("connections %d+/%d+", res.database.detail)
    -- the seeded Certificate that expires in 5 days is a warning
    assert.equal("warn", res.certificates.verdict)
    assert.equal("pass", res.hpa.verdict)
  end)

  it("counts the last 24 h of exceptions from the App Insights twin, by type", function()
    local res = by_check(opsh({"run", "daily-health-check", "--env", "twin", "-o", "json"}).stdout)
    local total = tonumber(res.exceptions.summary:match("^(%d+) in 24 h$"))
    assert.truthy(total, res.exceptions.summary)
    local sum = 0
    for n in res.exceptions.detail:gmatch("=(%d+)") do sum = sum + tonumber(n) end
    assert.equal(total, sum)
    assert.equal(total >= 1000 and "fail" or total >= 100 and "warn" or "pass", res.exceptions.verdict)
  end)

  it("exits 3 and names the check when one fails (HPA reads refused by a twin knob)", function()
    twin.client(dir):put("k8s.knobs", "all", {fail_rate = 1, fail_status = 403, fail_match = "horizontalpodautoscalers"})
    local r = opsh({"run", "daily-health-check", "--env", "twin", "-o", "json"})
    twin.client(dir):put("k8s.knobs", "all", {})
    assert.equal(3, r.code, r.stderr)
    local res = by_check(r.stdout)
    assert.equal("fail", res.hpa.verdict)
    assert.equal("pass", res.cluster.verdict)
  end)
end)
