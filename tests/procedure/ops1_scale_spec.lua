-- The scaling procedures against the twin: each change checked in the twin's store (not through the
-- procedure's own client), a dry run that changes nothing and exits 4, and a second run that changes nothing.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("scaling procedures on the twin", function()
  local dir, store

  local function opsh(...) return P.opsh(dir, ...) end

  local function object(collection, name)
    for _, it in ipairs(store:list(collection)) do
      if it.object.metadata and it.object.metadata.name == name then return it.object end
      if it.key:match("/" .. name:gsub("%-", "%%-") .. "$") then return it.object end
    end
  end

  local function pool(name)
    for _, it in ipairs(store:list("arm")) do
      if it.key:match("/managedclusters/aks%-legal%-production/agentpools/" .. name .. "$") then return it.object.properties end
    end
  end

  local function hpa_cpu(h)
    for _, m in ipairs(h.spec.metrics) do
      if m.resource and m.resource.name == "cpu" then return m.resource.target.averageUtilization end
    end
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-scale-")
    twin.up({dir = dir, without = {"postgres", "azurite", "registry"}})
    store = twin.client(dir)
    store:put("k8s.knobs", "all", {pod_start_seconds = 0.2})
    store:put("arm.knobs", "knobs", {lro_seconds = 0.2})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("scale-deployment: a dry run plans and exits 4, the run scales and waits, the second run changes nothing", function()
    local before = object("k8s.production.deployments", "gateway").spec.replicas
    local r = opsh("--dry-run", "run", "scale-deployment", "--deployment=gateway", "--replicas=" .. before + 2)
    assert.equal(4, r.code, r.stderr)
    assert.equal(before, object("k8s.production.deployments", "gateway").spec.replicas)
    r = opsh("run", "scale-deployment", "--deployment=gateway", "--replicas=" .. before + 2, "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local d = object("k8s.production.deployments", "gateway")
    assert.equal(before + 2, d.spec.replicas)
    assert.equal(before + 2, d.status.readyReplicas)   -- the rollout was waited for
    assert.matches("changes=1", r.stderr)
    r = opsh("run", "scale-deployment", "--deployment=gateway", "--replicas=" .. before + 2, "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.matches("changes=0", r.stderr)
    r = opsh("--dry-run", "run", "scale-deployment", "--deployment=gateway", "--replicas=" .. before + 2)
    assert.equal(0, r.code, r.stderr)   -- nothing to plan
  end)

  it("scale-deployment: a rollout that does not finish in time puts the previous count back (undo)", function()
    local before = object("k8s.production.deployments", "web").spec.replicas
    store:put("k8s.knobs", "all", {pod_start_seconds = 5})
    local r = opsh("run", "scale-deployment", "--deployment=web", "--replicas=" .. before + 3, "--timeout=100ms")
    store:put("k8s.knobs", "all", {pod_start_seconds = 0.2})
    assert.equal(1, r.code, r.stderr)
    assert.matches("undone", r.stdout)
    assert.equal(before, object("k8s.production.deployments", "web").spec.replicas)
  end)

  it("scale-hpa: replaces the v2 CPU metric (not the v1 field), once", function()
    local r = opsh("run", "scale-hpa", "--hpa=web-hpa", "--min=5", "--max=20", "--cpu=60", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local h = object("k8s.production.horizontalpodautoscalers", "web-hpa")
    assert.same({5, 20, 60}, {h.spec.minReplicas, h.spec.maxReplicas, hpa_cpu(h)})
    assert.is_nil(h.spec.targetCPUUtilizationPercentage)
    r = opsh("run", "scale-hpa", "--hpa=web-hpa", "--min=5", "--max=20", "--cpu=60", "-o", "json")
    assert.matches("changes=0", r.stderr)
    r = opsh("run", "scale-hpa", "--hpa=web-hpa", "--min=30")
    assert.equal(2, r.code)
    assert.matches("exceed max", r.stderr)
    assert.equal(5, object("k8s.production.horizontalpodautoscalers", "web-hpa").spec.minReplicas)
  end)

  it("scale-nodepool: count, then the autoscaler; a count under the autoscaler is refused before sending", function()
    local r = opsh("run", "scale-nodepool", "--pool=usernodepool", "--count=5", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.equal(5, pool("usernodepool").count)
    r = opsh("--dry-run", "run", "scale-nodepool", "--pool=usernodepool", "--min=3", "--max=8")
    assert.equal(4, r.code, r.stderr)
    assert.is_not_true(pool("usernodepool").enableAutoScaling)
    r = opsh("run", "scale-nodepool", "--pool=usernodepool", "--min=3", "--max=8", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local p = pool("usernodepool")
    assert.same({true, 3, 8}, {p.enableAutoScaling, p.minCount, p.maxCount})
    r = opsh("run", "scale-nodepool", "--pool=usernodepool", "--min=3", "--max=8", "-o", "json")
    assert.matches("changes=0", r.stderr)
    local lines = #fs.read(dir .. "/audit.log"):gsub("[^\n]", "")
    r = opsh("run", "scale-nodepool", "--pool=usernodepool", "--count=4")
    assert.equal(2, r.code)
    assert.matches("under the cluster autoscaler", r.stderr)
    assert.equal(lines, #fs.read(dir .. "/audit.log"):gsub("[^\n]", ""))
    r = opsh("run", "scale-nodepool", "--pool=usernodepool", "--min=9", "--max=3")
    assert.equal(2, r.code)
  end)
end)
