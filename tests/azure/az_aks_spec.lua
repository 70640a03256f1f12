-- Fidelity: Debian's az 2.45, logged in to the ARM twin by `opsh twin up` alone, runs the runbook's
-- AKS commands with the expected effect; what az changes is what the twin store holds (the objects the
-- Kubernetes twin follows), and the reverse.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/az_helpers.lua")
local twin = require("opsh.twin")

local RG, CLUSTER = "rg-legal-production", "aks-legal-production"

describe("az aks against the ARM twin", function()
  if not H.have_az() then pending("az is not installed (make deps)"); return end
  local dir, env
  local pool_id = H.rid(RG, "Microsoft.ContainerService/managedClusters", CLUSTER, "agentPools", "usernodepool")

  setup(function() dir, env = H.up({"postgres", "redis", "azurite", "registry"}) end)
  teardown(function() H.down(dir) end)

  it("shows and lists the platform's clusters with the runbook's queries", function()
    local row = H.az(env, "aks", "show", "--resource-group", RG, "--name", CLUSTER,
      "--query", "{Status:provisioningState, Nodes:agentPoolProfiles[0].count, VMSize:agentPoolProfiles[0].vmSize}", "-o", "json")
    assert.are.same({Status = "Succeeded", Nodes = 3, VMSize = "Standard_D4s_v5"}, row)
    local names = H.az(env, "aks", "list", "--query", "[].name", "-o", "json")
    table.sort(names)
    assert.are.same({CLUSTER, CLUSTER .. "-secondary"}, names)
    local pools = H.az(env, "aks", "nodepool", "list", "-g", RG, "--cluster-name", CLUSTER, "--query", "[].{n:name,c:count}", "-o", "json")
    assert.are.same({{n = "systempool", c = 3}, {n = "usernodepool", c = 3}}, pools)
  end)

  it("scales a pool and sets its autoscaler; the store's agent pool follows, and az sees what opsh changes", function()
    local p = H.az(env, "aks", "nodepool", "scale", "-g", RG, "--cluster-name", CLUSTER, "-n", "usernodepool",
      "--node-count", "10", "-o", "json")
    assert.are.equal(10, p.count)
    assert.are.equal("Succeeded", p.provisioningState)
    assert.are.equal(10, H.arm(dir, pool_id).properties.count)
    p = H.az(env, "aks", "nodepool", "update", "-g", RG, "--cluster-name", CLUSTER, "-n", "usernodepool",
      "--enable-cluster-autoscaler", "--min-count", "3", "--max-count", "10", "-o", "json")
    assert.are.same({true, 3, 10}, {p.enableAutoScaling, p.minCount, p.maxCount})
    H.az(env, "aks", "nodepool", "update", "-g", RG, "--cluster-name", CLUSTER, "-n", "usernodepool",
      "--update-cluster-autoscaler", "--min-count", "3", "--max-count", "15", "-o", "json")
    local stored = H.arm(dir, pool_id).properties
    assert.are.same({true, 3, 15}, {stored.enableAutoScaling, stored.minCount, stored.maxCount})
    -- the reverse: a change made through the store (as opsh's procedures' twin would) is what az reads
    twin.client(dir):patch("arm", pool_id:lower(), {properties = {count = 7}})
    assert.are.equal(7, H.az(env, "aks", "nodepool", "show", "-g", RG, "--cluster-name", CLUSTER, "-n", "usernodepool",
      "--query", "count", "-o", "json"))
    -- scaling a pool under the autoscaler is refused, as by AKS
    assert.matches("autoscaler", H.az_fail(env, "aks", "nodepool", "scale", "-g", RG, "--cluster-name", CLUSTER,
      "-n", "usernodepool", "--node-count", "4"))
  end)

  it("updates the cluster (az aks update) and refuses the cluster-wide autoscaler with two pools, as AKS does", function()
    local c = H.az(env, "aks", "update", "-g", RG, "-n", CLUSTER, "--tags", "team=sre", "-o", "json")
    assert.are.equal("sre", c.tags.team)
    assert.are.equal("sre", H.arm(dir, H.rid(RG, "Microsoft.ContainerService/managedClusters", CLUSTER)).tags.team)
    assert.matches("more than one node pool", H.az_fail(env, "aks", "update", "-g", RG, "-n", CLUSTER,
      "--enable-cluster-autoscaler", "--min-count", "5", "--max-count", "20"))
  end)

  it("upgrades every pool's node image (--node-image-only) through the per-pool operation", function()
    local before = H.arm(dir, pool_id).properties.nodeImageVersion
    local c = H.az(env, "aks", "upgrade", "-g", RG, "-n", CLUSTER, "--node-image-only", "--yes", "-o", "json")
    for _, prof in ipairs(c.agentPoolProfiles) do
      assert.are.equal("UpgradingNodeImageVersion", prof.provisioningState)
    end
    local after = H.eventually(function()
      local p = H.arm(dir, pool_id).properties
      return p.provisioningState == "Succeeded" and p
    end)
    assert.is_truthy(after)
    assert.are_not.equal(before, after.nodeImageVersion)
  end)

  it("adds a spot pool with the runbook's flags", function()
    local p = H.az(env, "aks", "nodepool", "add", "-g", RG, "--cluster-name", CLUSTER, "-n", "spotnodepool",
      "--priority", "Spot", "--eviction-policy", "Delete", "--spot-max-price", "-1", "--enable-cluster-autoscaler",
      "--min-count", "1", "--max-count", "5", "--node-count", "1", "-o", "json")
    assert.are.same({"Spot", "Delete", -1, true, 1, 5}, {p.scaleSetPriority, p.scaleSetEvictionPolicy, p.spotMaxPrice,
      p.enableAutoScaling, p.minCount, p.maxCount})
    local stored = H.arm(dir, H.rid(RG, "Microsoft.ContainerService/managedClusters", CLUSTER, "agentPools", "spotnodepool"))
    assert.are.equal("Succeeded", stored.properties.provisioningState)
    assert.are.equal(3, #H.arm(dir, H.rid(RG, "Microsoft.ContainerService/managedClusters", CLUSTER)).properties.agentPoolProfiles)
  end)

  it("hands out a kubeconfig for the cluster's Kubernetes endpoint (get-credentials)", function()
    local file = dir .. "/kubeconfig-secondary"
    H.az(env, "aks", "get-credentials", "-g", RG .. "-secondary", "-n", CLUSTER .. "-secondary", "--file", file)
    local cfg = require("opsh.yaml").decode(require("opsh.fs").read(file))
    assert.are.equal(CLUSTER .. "-secondary", cfg["current-context"])
    assert.matches("^https://127%.0%.0%.1:%d+", cfg.clusters[1].cluster.server)
    assert.is_string(cfg.users[1].user["client-certificate-data"])
  end)
end)
