-- opsh.twin.arm.seed: the platform's ARM resources (opsh.twin.platform) written into the store's `arm`
-- collection at the first start (a resource already there is left as the last run left it; `twin
-- reset` empties the store). Bodies are shaped like the REST specs' examples.
local json = require("opsh.json")
local platform = require("opsh.twin.platform")
local router = require("opsh.twin.arm.router")

local M = {}

local C = router.COLLECTION
local A = json.array

function M.rid(rg, ptype, name, ...)
  local parts = {"/subscriptions/", platform.subscription, "/resourceGroups/", rg, "/providers/", ptype, "/", name}
  local rest = {...}
  for i = 1, #rest, 2 do parts[#parts + 1] = "/" .. rest[i] .. "/" .. rest[i + 1] end
  return table.concat(parts)
end

local NODE_IMAGE = "AKSUbuntu-2204gen2containerd-202505.14.0"

function M.agent_pool(region, cluster_id, p)
  return {id = cluster_id .. "/agentPools/" .. p.name, name = p.name,
    type = "Microsoft.ContainerService/managedClusters/agentPools",
    properties = {count = p.count, vmSize = p.vm_size, osDiskSizeGB = 128, osDiskType = "Managed",
      kubeletDiskType = "OS", maxPods = 110, type = "VirtualMachineScaleSets", mode = p.mode,
      enableAutoScaling = p.enable_auto_scaling or false, minCount = p.min_count, maxCount = p.max_count,
      scaleDownMode = "Delete", orchestratorVersion = region.aks.kubernetes_version,
      currentOrchestratorVersion = region.aks.kubernetes_version, nodeImageVersion = NODE_IMAGE,
      provisioningState = "Succeeded", powerState = {code = "Running"}, osType = "Linux", osSKU = "Ubuntu",
      enableNodePublicIP = false, enableFIPS = false, scaleSetPriority = p.priority,
      scaleSetEvictionPolicy = p.eviction_policy, spotMaxPrice = p.spot_max_price,
      upgradeSettings = {maxSurge = "10%"}, availabilityZones = p.mode == "System" and A({"1", "2", "3"}) or nil,
      nodeLabels = {}, nodeTaints = A({})}}
end

function M.cluster(region)
  local a = region.aks
  local id = M.rid(region.resource_group, "Microsoft.ContainerService/managedClusters", a.cluster)
  local host = a.cluster:gsub("[^%w]", "") .. "-dns"
  return id, {id = id, name = a.cluster, type = "Microsoft.ContainerService/ManagedClusters",
    location = region.location, tags = {environment = "production"},
    sku = {name = "Base", tier = "Standard"},
    identity = {type = "SystemAssigned", principalId = router.uuid(), tenantId = platform.tenant},
    properties = {provisioningState = "Succeeded", powerState = {code = "Running"},
      kubernetesVersion = a.kubernetes_version, currentKubernetesVersion = a.kubernetes_version,
      dnsPrefix = a.cluster .. "-dns", fqdn = host .. ".hcp." .. region.location .. ".azmk8s.io",
      azurePortalFQDN = host .. ".portal.hcp." .. region.location .. ".azmk8s.io",
      agentPoolProfiles = A({}), servicePrincipalProfile = {clientId = "msi"},
      identityProfile = {kubeletidentity = {resourceId = "/subscriptions/" .. platform.subscription .. "/resourceGroups/MC_"
        .. region.resource_group .. "_" .. a.cluster .. "_" .. region.location
        .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. a.cluster .. "-agentpool",
        clientId = router.uuid(), objectId = router.uuid()}},
      nodeResourceGroup = "MC_" .. region.resource_group .. "_" .. a.cluster .. "_" .. region.location,
      enableRBAC = true, supportPlan = "KubernetesOfficial",
      networkProfile = {networkPlugin = "azure", networkPolicy = "azure", loadBalancerSku = "standard",
        serviceCidr = "192.0.2.0/24", dnsServiceIP = "192.0.2.10", outboundType = "loadBalancer"},
      autoScalerProfile = {["scan-interval"] = "10s", ["scale-down-delay-after-add"] = "10m",
        expander = "random", ["max-graceful-termination-sec"] = "600"},
      addonProfiles = {omsagent = {enabled = true, config = {logAnalyticsWorkspaceResourceID =
        M.rid(platform.region("production").resource_group, "Microsoft.OperationalInsights/workspaces",
          platform.region("production").workspace)}}},
      maxAgentPools = 100, disableLocalAccounts = false,
      securityProfile = {}, storageProfile = {diskCSIDriver = {enabled = true}},
      oidcIssuerProfile = {enabled = true}, workloadAutoScalerProfile = {}}}
end

--- sync_cluster(store, cluster_key): the cluster's agentPoolProfiles rebuilt from its agent pool objects
function M.sync_cluster(store, cluster_key)
  local cluster = store:get(C, cluster_key)
  if not cluster then return end
  local profiles = {}
  for _, item in ipairs((store:list(C))) do
    if item.key:match("^" .. cluster_key:gsub("[%-%.]", "%%%0") .. "/agentpools/[^/]+$") then
      local p = item.object
      local prof = {name = p.name}
      for k, v in pairs(p.properties) do prof[k] = v end
      profiles[#profiles + 1] = prof
    end
  end
  cluster.properties.agentPoolProfiles = A(profiles)
  store:put(C, cluster_key, cluster)
  return cluster
end

local PG_CONFIGS = {
  {"max_connections", "859", "Integer", "25-5000", "Sets the maximum number of concurrent connections.", false},
  {"shared_buffers", "524288", "Integer", "16-1073741823", "Sets the number of shared memory buffers used by the server.", false},
  {"work_mem", "4096", "Integer", "4096-2097151", "Sets the amount of memory to be used by internal sort operations and hash tables.", true},
  {"log_min_duration_statement", "-1", "Integer", "-1-2147483647", "Sets the minimum execution time above which statements will be logged.", true},
  {"idle_in_transaction_session_timeout", "0", "Integer", "0-2147483647", "Sets the maximum allowed duration of any idling transaction.", true},
  {"azure.extensions", "", "Set", "PG_STAT_STATEMENTS,PGCRYPTO,UUID-OSSP", "Specifies which extensions are allowed to be created in the server.", true},
}

function M.pg_server(region, pg, opts)
  opts = opts or {}
  local id = M.rid(region.resource_group, "Microsoft.DBforPostgreSQL/flexibleServers", pg.server)
  local now = os.time()
  return id, {id = id, name = pg.server, type = "Microsoft.DBforPostgreSQL/flexibleServers",
    location = region.location, tags = {environment = "production"},
    sku = {name = pg.sku.name, tier = pg.sku.tier},
    systemData = {createdAt = os.date("!%Y-%m-%dT%H:%M:%S.0000000Z", now - 86400 * 90)},
    properties = {administratorLogin = pg.admin_user, version = pg.version, minorVersion = "12",
      state = "Ready", fullyQualifiedDomainName = pg.server .. ".postgres.database.azure.com",
      storage = {storageSizeGB = pg.storage_gb, autoGrow = "Disabled", tier = "P10", iops = 500, type = ""},
      authConfig = {activeDirectoryAuth = "Disabled", passwordAuth = "Enabled"},
      dataEncryption = {type = "SystemManaged"},
      backup = {backupRetentionDays = 7, geoRedundantBackup = "Enabled",
        earliestRestoreDate = os.date("!%Y-%m-%dT%H:%M:%S.0000000+00:00", now - 7 * 86400)},
      network = {publicNetworkAccess = "Enabled"},
      highAvailability = {mode = "Disabled", state = "NotEnabled"},
      maintenanceWindow = {customWindow = "Disabled", dayOfWeek = 0, startHour = 0, startMinute = 0},
      replicationRole = opts.replica and "AsyncReplica" or "Primary",
      replicaCapacity = opts.replica and 0 or 5,
      replica = {role = opts.replica and "AsyncReplica" or "Primary", capacity = opts.replica and 0 or 5,
        replicationState = opts.replica and "Active" or nil},
      sourceServerResourceId = opts.source,
      availabilityZone = "1"}}
end

function M.pg_config(server_id, c)
  return {id = server_id .. "/configurations/" .. c[1], name = c[1],
    type = "Microsoft.DBforPostgreSQL/flexibleServers/configurations",
    properties = {value = c[2], defaultValue = c[2], dataType = c[3], allowedValues = c[4], description = c[5],
      source = "system-default", isDynamicConfig = c[6], isReadOnly = false, isConfigPendingRestart = false,
      documentationLink = "https://www.postgresql.org/docs/15/runtime-config.html"}}
end

function M.pg_backup(server_id, name, t, kind)
  return {id = server_id .. "/backups/" .. name, name = name,
    type = "Microsoft.DBforPostgreSQL/flexibleServers/backups",
    properties = {backupType = kind or "Full", completedTime = os.date("!%Y-%m-%dT%H:%M:%S.0000000+00:00", t),
      source = kind and "Customer Initiated" or "Automatic"}}
end

local function put_new(store, id, body, ops)
  local key = id:lower()
  if store:get(C, key) then return false end
  ops[#ops + 1] = {op = "put", collection = C, key = key, object = body}
  return true
end

--- seed(twin): every resource of the platform not in the store yet
function M.seed(twin)
  local store = twin.store
  local ops, clusters = {}, {}
  local prod = platform.region("production")
  for _, region in ipairs(platform.regions) do
    local rg = region.resource_group
    put_new(store, "/subscriptions/" .. platform.subscription .. "/resourceGroups/" .. rg,
      {id = "/subscriptions/" .. platform.subscription .. "/resourceGroups/" .. rg, name = rg,
        type = "Microsoft.Resources/resourceGroups", location = region.location,
        properties = {provisioningState = "Succeeded"}}, ops)
    if region.aks then
      local cid, cluster = M.cluster(region)
      if put_new(store, cid, cluster, ops) then clusters[#clusters + 1] = cid:lower() end
      for _, p in ipairs(region.aks.pools) do
        local pool = M.agent_pool(region, cid, p)
        if put_new(store, pool.id, pool, ops) then clusters[#clusters + 1] = cid:lower() end
      end
    end
    if region.postgres then
      local pg = region.postgres
      local source = pg.replica_of and M.rid(prod.resource_group, "Microsoft.DBforPostgreSQL/flexibleServers", pg.replica_of)
      local sid, server = M.pg_server(region, pg, {replica = pg.replica_of ~= nil, source = source})
      local new_server = put_new(store, sid, server, ops)
      for _, c in ipairs(PG_CONFIGS) do put_new(store, sid .. "/configurations/" .. c[1], M.pg_config(sid, c), ops) end
      if new_server and not pg.replica_of then
        for d = 1, 3 do
          local t = os.time() - d * 86400
          local name = "backup_" .. os.date("!%Y%m%dT%H%M%S", t)
          put_new(store, sid .. "/backups/" .. name, M.pg_backup(sid, name, t), ops)
        end
      end
    end
    if region.redis then
      local r = region.redis
      local id = M.rid(rg, "Microsoft.Cache/Redis", r.name)
      put_new(store, id, {id = id, name = r.name, type = "Microsoft.Cache/Redis", location = region.location,
        tags = {environment = "production"},
        properties = {provisioningState = "Succeeded", redisVersion = "6.0",
          sku = {name = r.sku.name, family = r.sku.family, capacity = r.sku.capacity},
          enableNonSslPort = false, minimumTlsVersion = "1.2", publicNetworkAccess = "Enabled",
          hostName = r.name .. ".redis.cache.windows.net", port = 6379, sslPort = 6380,
          redisConfiguration = {maxclients = "1000", ["maxmemory-reserved"] = "125", ["maxmemory-delta"] = "125",
            ["maxmemory-policy"] = "volatile-lru"},
          replicasPerMaster = 1, replicasPerPrimary = 1, updateChannel = "Stable",
          instances = A({{sslPort = 15000, isMaster = true, isPrimary = true}, {sslPort = 15001, isMaster = false,
            isPrimary = false}}), linkedServers = A({})}}, ops)
    end
    if region.appinsights then
      local id = M.rid(rg, "Microsoft.Insights/components", region.appinsights)
      put_new(store, id, {id = id, name = region.appinsights, type = "microsoft.insights/components",
        location = region.location, kind = "web", tags = {},
        properties = {ApplicationId = region.appinsights, AppId = "c1a2b3d4-0e5f-4a6b-8c7d-9e0f1a2b3c4d",
          Application_Type = "web", Flow_Type = "Bluefield", Request_Source = "rest",
          InstrumentationKey = "6e3b4c5d-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
          ConnectionString = "InstrumentationKey=6e3b4c5d-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
          RetentionInDays = 30, IngestionMode = "LogAnalytics", provisioningState = "Succeeded",
          WorkspaceResourceId = M.rid(rg, "Microsoft.OperationalInsights/workspaces", region.workspace),
          publicNetworkAccessForIngestion = "Enabled", publicNetworkAccessForQuery = "Enabled",
          CreationDate = "2024-01-15T10:00:00.0000000+00:00", TenantId = platform.subscription}}, ops)
    end
    if region.workspace then
      local id = M.rid(rg, "Microsoft.OperationalInsights/workspaces", region.workspace)
      put_new(store, id, {id = id, name = region.workspace, type = "Microsoft.OperationalInsights/workspaces",
        location = region.location, properties = {provisioningState = "Succeeded",
          customerId = "a7b8c9d0-1e2f-4a3b-9c4d-5e6f7a8b9c0d", sku = {name = "PerGB2018"}, retentionInDays = 30}}, ops)
    end
    if region.keyvault then
      local id = M.rid(rg, "Microsoft.KeyVault/vaults", region.keyvault)
      put_new(store, id, {id = id, name = region.keyvault, type = "Microsoft.KeyVault/vaults", location = region.location,
        properties = {tenantId = platform.tenant, sku = {family = "A", name = "standard"},
          vaultUri = "https://" .. region.keyvault .. ".vault.azure.net/", enableRbacAuthorization = true,
          enableSoftDelete = true, softDeleteRetentionInDays = 90, provisioningState = "Succeeded"}}, ops)
    end
    if region.acr then
      local id = M.rid(rg, "Microsoft.ContainerRegistry/registries", region.acr)
      put_new(store, id, {id = id, name = region.acr, type = "Microsoft.ContainerRegistry/registries",
        location = region.location, sku = {name = "Premium", tier = "Premium"},
        properties = {loginServer = region.acr .. ".azurecr.io", adminUserEnabled = false,
          provisioningState = "Succeeded"}}, ops)
    end
    if region.storage then
      local id = M.rid(rg, "Microsoft.Storage/storageAccounts", region.storage)
      put_new(store, id, {id = id, name = region.storage, type = "Microsoft.Storage/storageAccounts",
        location = region.location, kind = "StorageV2", sku = {name = "Standard_GRS", tier = "Standard"},
        properties = {provisioningState = "Succeeded", primaryLocation = region.location,
          secondaryLocation = "northeurope", statusOfPrimary = "available",
          primaryEndpoints = {blob = "https://" .. region.storage .. ".blob.core.windows.net/"},
          supportsHttpsTrafficOnly = true, minimumTlsVersion = "TLS1_2", accessTier = "Hot"}}, ops)
      put_new(store, id .. "/blobServices/default", {id = id .. "/blobServices/default", name = "default",
        type = "Microsoft.Storage/storageAccounts/blobServices", sku = {name = "Standard_GRS", tier = "Standard"},
        properties = {cors = {corsRules = A({})}, deleteRetentionPolicy = {enabled = false, allowPermanentDelete = false},
          containerDeleteRetentionPolicy = {enabled = false}, isVersioningEnabled = false,
          changeFeed = {enabled = false}}}, ops)
    end
    if region.action_group then
      local id = M.rid(rg, "Microsoft.Insights/actionGroups", region.action_group)
      put_new(store, id, {id = id, name = region.action_group, type = "Microsoft.Insights/ActionGroups",
        location = "Global", properties = {groupShortName = "devops", enabled = true,
          emailReceivers = A({{name = "devops-email", emailAddress = "devops@legal-platform.com",
            useCommonAlertSchema = true, status = "Enabled"}}), smsReceivers = A({}), webhookReceivers = A({}),
          armRoleReceivers = A({}), azureFunctionReceivers = A({}), logicAppReceivers = A({})}}, ops)
    end
    if region.dns then
      local zid = M.rid(rg, "Microsoft.Network/dnszones", region.dns.zone)
      put_new(store, zid, {id = zid, name = region.dns.zone, type = "Microsoft.Network/dnszones",
        location = "global", etag = router.uuid(), properties = {maxNumberOfRecordSets = 10000,
          numberOfRecordSets = 3, nameServers = A({"ns1-01.azure-dns.com.", "ns2-01.azure-dns.net."}),
          zoneType = "Public"}}, ops)
      local aid = zid .. "/A/" .. region.dns.record
      -- the production ingress; the failover points it at the secondary's (documentation addresses)
      put_new(store, aid, {id = aid, name = region.dns.record, type = "Microsoft.Network/dnszones/A",
        etag = router.uuid(), properties = {TTL = 300, fqdn = region.dns.zone .. ".",
          provisioningState = "Succeeded", targetResource = {},
          ARecords = A({{ipv4Address = "203.0.113.10"}})}}, ops)
    end
  end
  if #ops > 0 then store:txn(ops) end
  local seen = {}
  for _, c in ipairs(clusters) do
    if not seen[c] then seen[c] = true; M.sync_cluster(store, c) end
  end
end

return M
