-- opsh.twin.arm.aks: Microsoft.ContainerService managed clusters and agent pools. Agent pools are their
-- own objects in the store (`.../managedclusters/<c>/agentpools/<p>`), which the Kubernetes twin follows;
-- the cluster's agentPoolProfiles are rebuilt from them after every change.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local json = require("opsh.json")
local lro = require("opsh.twin.arm.lro")
local router = require("opsh.twin.arm.router")
local seed = require("opsh.twin.arm.seed")

local M = {}

local C = router.COLLECTION
local CLUSTER = "^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.containerservice/managedclusters/[^/]+)"
local NEWER_IMAGE = "AKSUbuntu-2204gen2containerd-202506.02.0"

-- fields of an agent pool a PUT may change (the rest are the service's)
local POOL_FIELDS = {"count", "vmSize", "mode", "enableAutoScaling", "minCount", "maxCount", "orchestratorVersion",
  "nodeLabels", "nodeTaints", "scaleSetPriority", "scaleSetEvictionPolicy", "spotMaxPrice", "maxPods",
  "osDiskSizeGB", "availabilityZones", "upgradeSettings", "scaleDownMode", "tags", "osType", "osSKU", "type"}

local function validate_pool(props, name)
  if not name:match("^[a-z][a-z0-9]*$") or #name > 12 then
    router.fail(400, "InvalidParameter", string.format("The agent pool name '%s' is invalid: it must start with a "
      .. "lowercase letter, contain only lowercase letters and digits, and be at most 12 characters.", name))
  end
  local count = props.count
  if count ~= nil and (math.type(count) ~= "integer" or count < 0 or count > 1000) then
    router.fail(400, "InvalidParameter", "The value of parameter agentPoolProfile.count is invalid: it must be 0 to 1000.")
  end
  if props.enableAutoScaling then
    local lo, hi = props.minCount, props.maxCount
    if math.type(lo) ~= "integer" or math.type(hi) ~= "integer" or lo > hi or lo < 0 then
      router.fail(400, "InvalidParameter", "Enabling the cluster autoscaler needs minCount <= maxCount, both set.")
    end
  end
  if props.scaleSetPriority == "Spot" and props.mode == "System" then
    router.fail(400, "InvalidParameter", "A Spot node pool cannot be a System node pool.")
  end
end

-- what the pool becomes once the operation ends: the autoscaler keeps count inside [minCount, maxCount]
local function settle(props)
  if props.enableAutoScaling and props.minCount and props.maxCount and props.count then
    props.count = math.max(props.minCount, math.min(props.maxCount, props.count))
  end
  if not props.enableAutoScaling then props.minCount, props.maxCount = nil, nil end
  props.provisioningState = "Succeeded"
end

local function pool_put(twin, ctx, cluster_key, name, body)
  local cluster = twin.store:get(C, cluster_key)
  if not cluster then router.fail(404, "ResourceNotFound", "The Resource 'Microsoft.ContainerService/managedClusters' was not found.") end
  local key = cluster_key .. "/agentpools/" .. name
  local current = twin.store:get(C, key)
  local props = (body and body.properties) or {}
  local pool
  if current then
    pool = current
  else
    local region = {aks = {kubernetes_version = cluster.properties.kubernetesVersion}}
    pool = seed.agent_pool(region, cluster.id, {name = name, count = props.count or 1, vm_size = props.vmSize
      or "Standard_D2s_v5", mode = props.mode or "User"})
  end
  for _, f in ipairs(POOL_FIELDS) do
    if props[f] ~= nil then pool.properties[f] = props[f] ~= json.null and props[f] or nil end
  end
  validate_pool(pool.properties, name)
  if pool.properties.scaleSetPriority == "Spot" then
    pool.properties.scaleSetEvictionPolicy = pool.properties.scaleSetEvictionPolicy or "Delete"
    pool.properties.spotMaxPrice = pool.properties.spotMaxPrice or -1
    pool.properties.nodeTaints = json.array({"kubernetes.azure.com/scalesetpriority=spot:NoSchedule"})
    pool.properties.nodeLabels = {["kubernetes.azure.com/scalesetpriority"] = "spot"}
  end
  pool.properties.provisioningState = current and "Updating" or "Creating"
  twin.store:put(C, key, pool)
  seed.sync_cluster(twin.store, cluster_key)
  local headers = lro.start(ctx, {provider = "Microsoft.ContainerService", location = cluster.location,
    work = function()
      local p = twin.store:get(C, key)
      settle(p.properties)
      twin.store:put(C, key, p)
      seed.sync_cluster(twin.store, cluster_key)
      return p
    end})
  return {status = current and 200 or 201, headers = headers, json = pool}
end

-- a cluster PUT (az aks update / upgrade): the agentPoolProfiles go to the pools, a few settings to the cluster
local function cluster_put(twin, ctx, cluster_key, body)
  local cluster = twin.store:get(C, cluster_key)
  if not cluster then
    router.fail(400, "BadRequest", "The twin does not create AKS clusters; the platform's clusters are seeded.")
  end
  local props = body.properties or {}
  for _, prof in ipairs(props.agentPoolProfiles or {}) do
    local key = cluster_key .. "/agentpools/" .. tostring(prof.name):lower()
    local pool = twin.store:get(C, key)
    if pool then
      for _, f in ipairs(POOL_FIELDS) do
        if prof[f] ~= nil then pool.properties[f] = prof[f] ~= json.null and prof[f] or nil end
      end
      validate_pool(pool.properties, pool.name)
      pool.properties.provisioningState = "Updating"
      twin.store:put(C, key, pool)
    end
  end
  for _, f in ipairs({"kubernetesVersion", "autoScalerProfile", "addonProfiles", "networkProfile", "aadProfile",
      "apiServerAccessProfile", "disableLocalAccounts"}) do
    if props[f] ~= nil and props[f] ~= json.null then cluster.properties[f] = props[f] end
  end
  if body.tags and body.tags ~= json.null then cluster.tags = body.tags end
  cluster.properties.provisioningState = "Updating"
  twin.store:put(C, cluster_key, cluster)
  cluster = seed.sync_cluster(twin.store, cluster_key)
  local headers = lro.start(ctx, {provider = "Microsoft.ContainerService", location = cluster.location,
    work = function()
      for _, prof in ipairs(props.agentPoolProfiles or {}) do
        local key = cluster_key .. "/agentpools/" .. tostring(prof.name):lower()
        local pool = twin.store:get(C, key)
        if pool then
          settle(pool.properties)
          pool.properties.currentOrchestratorVersion = pool.properties.orchestratorVersion
          twin.store:put(C, key, pool)
        end
      end
      local c = twin.store:get(C, cluster_key)
      c.properties.provisioningState = "Succeeded"
      c.properties.currentKubernetesVersion = c.properties.kubernetesVersion
      twin.store:put(C, cluster_key, c)
      return seed.sync_cluster(twin.store, cluster_key)
    end})
  return {status = 200, headers = headers, json = cluster}
end

--- kubeconfig(twin, cluster, admin) -> kubeconfig text for the Kubernetes twin: its server URL, the twin
-- CA, and a client certificate from the twin CA (O=system:masters for admin, as AKS's local accounts).
function M.kubeconfig(twin, cluster, admin)
  local server = twin.endpoint("kubernetes") or twin.endpoint("arm")
  local dir = twin.dir .. "/ca"
  local user = (admin and "clusterAdmin_" or "clusterUser_") .. cluster.id:match("/resource[gG]roups/([^/]+)")
    .. "_" .. cluster.name
  local cert = crypto.x509.create_cert({ca_cert = fs.read(dir .. "/ca.pem"), ca_key = core.secret(fs.read(dir .. "/ca.key")),
    cn = admin and "masterclient" or "clusterUser", client = true, server = false, days = 30,
    org = "system:masters"})
  local ca = fs.read(dir .. "/ca.pem")
  local cfg = {apiVersion = "v1", kind = "Config", preferences = {}, ["current-context"] = cluster.name .. (admin and "-admin" or ""),
    clusters = json.array({{name = cluster.name, cluster = {server = server,
      ["certificate-authority-data"] = crypto.base64_encode(ca)}}}),
    contexts = json.array({{name = cluster.name .. (admin and "-admin" or ""),
      context = {cluster = cluster.name, user = user, namespace = "default"}}}),
    users = json.array({{name = user, user = {["client-certificate-data"] = crypto.base64_encode(cert.cert_pem),
      ["client-key-data"] = core.reveal(crypto.base64_encode(cert.key_pem))}}})}
  return json.encode(cfg)
end

function M.routes(api)
  local twin, add = api.twin, api.add
  add("PUT", CLUSTER .. "/agentpools/([^/]+)$", function(req, ctx, cluster_key, name)
    return pool_put(twin, ctx, cluster_key, name, req:json())
  end)
  add("DELETE", CLUSTER .. "/agentpools/([^/]+)$", function(_, ctx, cluster_key, name)
    local key = cluster_key .. "/agentpools/" .. name
    local pool = twin.store:get(C, key)
    if not pool then return {status = 204} end
    if pool.properties.mode == "System" then
      router.fail(400, "OperationNotAllowed", "A cluster must keep at least one System node pool.")
    end
    pool.properties.provisioningState = "Deleting"
    twin.store:put(C, key, pool)
    local headers = lro.start(ctx, {provider = "Microsoft.ContainerService", location = "westeurope",
      work = function()
        twin.store:delete(C, key)
        seed.sync_cluster(twin.store, cluster_key)
      end})
    return {status = 202, headers = headers}
  end)
  add("POST", CLUSTER .. "/agentpools/([^/]+)/upgradenodeimageversion$", function(_, ctx, cluster_key, name)
    local key = cluster_key .. "/agentpools/" .. name
    local pool = twin.store:get(C, key)
    if not pool then router.fail(404, "NotFound", "agent pool " .. name .. " not found") end
    pool.properties.provisioningState = "UpgradingNodeImageVersion"
    twin.store:put(C, key, pool)
    seed.sync_cluster(twin.store, cluster_key)
    local headers = lro.start(ctx, {provider = "Microsoft.ContainerService", location = "westeurope",
      work = function()
        local p = twin.store:get(C, key)
        p.properties.nodeImageVersion = NEWER_IMAGE
        p.properties.provisioningState = "Succeeded"
        twin.store:put(C, key, p)
        seed.sync_cluster(twin.store, cluster_key)
        return p
      end})
    headers.Location = nil
    return {status = 202, headers = headers, json = pool}
  end)
  add("GET", CLUSTER .. "/agentpools/([^/]+)/upgradeprofiles/default$", function(_, _, cluster_key, name)
    local pool = twin.store:get(C, cluster_key .. "/agentpools/" .. name)
    if not pool then router.fail(404, "NotFound", "agent pool " .. name .. " not found") end
    return {id = pool.id .. "/upgradeProfiles/default", name = "default",
      type = "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
      properties = {kubernetesVersion = pool.properties.orchestratorVersion, osType = "Linux",
        upgrades = json.array({}), latestNodeImageVersion = NEWER_IMAGE}}
  end)
  add("PUT", CLUSTER .. "$", function(req, ctx, cluster_key) return cluster_put(twin, ctx, cluster_key, req:json()) end)
  for _, kind in ipairs({"user", "admin"}) do
    add("POST", CLUSTER .. "/listcluster" .. kind .. "credential$", function(_, _, cluster_key)
      local cluster = twin.store:get(C, cluster_key)
      if not cluster then router.fail(404, "ResourceNotFound", "The Resource was not found.") end
      local cfg = M.kubeconfig(twin, cluster, kind == "admin")
      return {kubeconfigs = json.array({{name = kind == "admin" and "clusterAdmin" or "clusterUser",
        value = crypto.base64_encode(cfg)}})}
    end)
  end
end

return M
