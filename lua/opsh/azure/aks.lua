-- opsh.azure.aks: AKS clusters and agent pools (Microsoft.ContainerService) — what the runbook
-- does with `az aks`: show and list clusters, list, show and scale node pools, the cluster
-- autoscaler, a new (spot) pool, node-image upgrades, and the user credentials as a kubeconfig for
-- opsh.k8s. The cluster is the environment's (`aks.cluster`, `aks.resource_group`) unless given.
local R = require("opsh.azure.resource")
local lro = require("opsh.azure.lro")

local M = {}

M.API = "2025-05-01"
local TYPE = "Microsoft.ContainerService/managedClusters"
-- read-only members of an agent pool a PUT does not send back
local READ_ONLY = {"provisioningState", "nodeImageVersion", "currentOrchestratorVersion", "powerState", "eTag"}

local function cluster_of(opts, fname)
  local envt, arm = R.ctx(opts)
  local aks = envt.aks or {}
  local name = R.pick(opts, "cluster", aks.cluster, fname, "the cluster")
  local rg = R.pick(opts, "resource_group", aks.resource_group or envt.resource_group, fname, "the resource group")
  return arm, arm:id(rg, TYPE, name), name
end

local function pool_of(opts, fname)
  local arm, cid, cname = cluster_of(opts, fname)
  local envt = R.ctx(opts)
  local pool = R.pick(opts, "pool", envt.aks and envt.aks.node_pool, fname, "the agent pool")
  return arm, cid .. "/agentPools/" .. pool, pool, cname
end

local CLUSTER = R.set("cluster", "resource_group")
local POOL = R.set("cluster", "resource_group", "pool")

--- get{cluster =, resource_group =} -> the managed cluster (properties.provisioningState,
-- kubernetesVersion, currentKubernetesVersion, agentPoolProfiles, ...)
function M.get(opts)
  opts = R.args(opts, "aks.get", CLUSTER)
  local arm, id = cluster_of(opts, "aks.get")
  return arm:get(id, {api_version = M.API})
end

--- list{resource_group =} -> the clusters of the resource group (all pages), or of the subscription
function M.list(opts) return R.list(opts, "aks.list", TYPE, M.API) end

--- pools{cluster =} -> the cluster's agent pools
function M.pools(opts)
  opts = R.args(opts, "aks.pools", CLUSTER)
  local arm, id = cluster_of(opts, "aks.pools")
  return arm:all(id .. "/agentPools", {api_version = M.API})
end

--- pool{pool =, cluster =} -> the agent pool (properties.count, enableAutoScaling, minCount, maxCount,
-- vmSize, mode, nodeImageVersion, provisioningState)
function M.pool(opts)
  opts = R.args(opts, "aks.pool", POOL)
  local arm, id = pool_of(opts, "aks.pool")
  return arm:get(id, {api_version = M.API})
end

-- read-modify-write of a pool, as az does: GET, change, PUT the properties back
local function update_pool(opts, fname, change)
  local arm, id, pool = pool_of(opts, fname)
  local current = arm:get(id, {api_version = M.API})
  local props = R.copy(current.properties or {})
  for _, k in ipairs(READ_ONLY) do props[k] = nil end
  change(props, current, pool)
  return arm:put(id, {api_version = M.API, body = {properties = props}, wait = opts.wait,
    label = string.format("%s %s", fname, pool)})
end

local function wait_opt(opts)
  if opts.wait ~= nil and type(opts.wait) ~= "boolean" then R.usage("aks", "wait must be a boolean") end
end

--- scale{pool =, count =} -> the agent pool once scaled (az aks nodepool scale). A pool under the
-- cluster autoscaler is refused: disable it first, or change its bounds with autoscale.
function M.scale(opts)
  opts = R.args(opts, "aks.scale", R.set("cluster", "resource_group", "pool", "count", "wait"))
  wait_opt(opts)
  local count = R.integer(opts, "count", "aks.scale", 0)
  if not count then R.usage("aks.scale", "count is required") end
  return update_pool(opts, "aks.scale", function(props, _, pool)
    if props.enableAutoScaling then
      R.usage("aks.scale", string.format("pool '%s' is under the cluster autoscaler (min %s, max %s): disable it "
        .. "or change its bounds with azure.aks.autoscale", pool, tostring(props.minCount), tostring(props.maxCount)))
    end
    props.count = count
  end)
end

--- autoscale{pool =, min =, max =} enables (or updates) the cluster autoscaler; autoscale{pool =,
-- enabled = false [, count =]} disables it (the pool keeps its current count unless one is given)
function M.autoscale(opts)
  opts = R.args(opts, "aks.autoscale", R.set("cluster", "resource_group", "pool", "min", "max", "enabled",
    "count", "wait"))
  wait_opt(opts)
  local min, max = R.integer(opts, "min", "aks.autoscale", 0), R.integer(opts, "max", "aks.autoscale", 1)
  local count = R.integer(opts, "count", "aks.autoscale", 0)
  if opts.enabled == false then
    if min or max then R.usage("aks.autoscale", "min and max go with enabling the autoscaler, not enabled = false") end
  else
    if not (min and max) then R.usage("aks.autoscale", "min and max are required (or enabled = false)") end
    if min > max then R.usage("aks.autoscale", string.format("min (%d) is greater than max (%d)", min, max)) end
  end
  return update_pool(opts, "aks.autoscale", function(props)
    if opts.enabled == false then
      props.enableAutoScaling, props.minCount, props.maxCount = false, nil, nil
      if count then props.count = count end
    else
      props.enableAutoScaling, props.minCount, props.maxCount = true, min, max
      local c = props.count or min
      props.count = count or math.max(min, math.min(max, c))
    end
  end)
end

--- add_pool{pool =, vm_size =, count =, mode = "User", min =, max =, spot = {max_price = -1,
-- eviction_policy = "Delete"}, labels =, taints =, zones =, orchestrator_version =} -> the new pool
-- (az aks nodepool add). A pool of that name that exists already is refused.
function M.add_pool(opts)
  opts = R.args(opts, "aks.add_pool", R.set("cluster", "resource_group", "pool", "vm_size", "count", "mode", "min",
    "max", "spot", "labels", "taints", "zones", "orchestrator_version", "wait"))
  wait_opt(opts)
  local name = opts.pool
  if type(name) ~= "string" or not name:match("^[a-z][a-z0-9]*$") or #name > 12 then
    R.usage("aks.add_pool", "pool must be 1-12 lower-case letters and digits, starting with a letter")
  end
  local vm_size = R.pick(opts, "vm_size", nil, "aks.add_pool", "vm_size")
  local count = R.integer(opts, "count", "aks.add_pool", 0) or 1
  local min, max = R.integer(opts, "min", "aks.add_pool", 0), R.integer(opts, "max", "aks.add_pool", 1)
  local arm, id = pool_of(opts, "aks.add_pool")
  if arm:get(id, {api_version = M.API, missing_ok = true}) then
    R.usage("aks.add_pool", string.format("agent pool '%s' exists already", name))
  end
  local props = {count = count, vmSize = vm_size, mode = opts.mode or "User", osType = "Linux",
    type = "VirtualMachineScaleSets", nodeLabels = opts.labels, nodeTaints = opts.taints,
    availabilityZones = opts.zones, orchestratorVersion = opts.orchestrator_version}
  if min or max then
    if not (min and max) then R.usage("aks.add_pool", "min and max go together") end
    props.enableAutoScaling, props.minCount, props.maxCount = true, min, max
  end
  if opts.spot ~= nil then
    local spot = opts.spot == true and {} or opts.spot
    if type(spot) ~= "table" then R.usage("aks.add_pool", "spot must be true or {max_price =, eviction_policy =}") end
    props.scaleSetPriority = "Spot"
    props.scaleSetEvictionPolicy = spot.eviction_policy or "Delete"
    props.spotMaxPrice = spot.max_price or -1
    -- AKS puts this label and taint on spot nodes itself; az sends them too
    props.nodeLabels = props.nodeLabels or {}
    props.nodeLabels["kubernetes.azure.com/scalesetpriority"] = "spot"
    props.nodeTaints = props.nodeTaints or {"kubernetes.azure.com/scalesetpriority=spot:NoSchedule"}
  end
  return arm:put(id, {api_version = M.API, body = {properties = props}, wait = opts.wait,
    label = "aks.add_pool " .. name})
end

--- upgrade_node_image{pool =} -> the pool once its nodes run the latest node image; without pool,
-- every pool of the cluster in turn, then the cluster (as `az aks upgrade --node-image-only`)
function M.upgrade_node_image(opts)
  opts = R.args(opts, "aks.upgrade_node_image", R.set("cluster", "resource_group", "pool", "wait"))
  wait_opt(opts)
  local arm, cid = cluster_of(opts, "aks.upgrade_node_image")
  local function one(pool)
    return arm:post(cid .. "/agentPools/" .. pool .. "/upgradeNodeImageVersion", {api_version = M.API,
      final_state = "location", wait = opts.wait, label = "upgrade node image " .. pool})
  end
  if opts.pool then return one(opts.pool) end
  local results = {}
  for _, p in ipairs(arm:all(cid .. "/agentPools", {api_version = M.API})) do results[#results + 1] = one(p.name) end
  if opts.wait == false or (opts.wait == nil and lro.no_wait) then return results end
  return arm:get(cid, {api_version = M.API})
end

--- kubeconfig{cluster =, admin = false} -> the cluster's user (or admin) kubeconfig as YAML text,
-- for opsh.k8s.from_kubeconfig. It holds credentials: never print or log it.
function M.kubeconfig(opts)
  opts = R.args(opts, "aks.kubeconfig", R.set("cluster", "resource_group", "admin"))
  local arm, id = cluster_of(opts, "aks.kubeconfig")
  local doc = arm:post(id .. (opts.admin and "/listClusterAdminCredential" or "/listClusterUserCredential"),
    {api_version = M.API, read = true})
  local first = doc and doc.kubeconfigs and doc.kubeconfigs[1]
  if not first or type(first.value) ~= "string" then
    error(require("opsh._core").error("azure", "aks.kubeconfig: the answer holds no kubeconfig",
      {code = "NoKubeconfig"}), 0)
  end
  return require("opsh.crypto").base64_decode(first.value)
end

return M
