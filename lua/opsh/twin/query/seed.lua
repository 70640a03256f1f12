-- Deterministic telemetry for the query twins: the last 3 days before `now` (rounded down to the
-- minute), the same rows for the same `now`. tables(now) -> {requests =, exceptions =, dependencies =,
-- performanceCounters =} (App Insights) and workspace(now) -> {AzureDiagnostics =} (Log Analytics),
-- each {columns = {{name, type}}, rows = {records}} with datetimes as epoch seconds.
local platform = require("opsh.twin.platform")

local M = {}

M.DAYS = 3

local function rng(seed)
  local state = seed
  return function(n)
    state = (state * 1103515245 + 12345) % 2147483648
    if n then return state % n + 1 end
    return state / 2147483648
  end
end

local function cols(spec)
  local out = {}
  for i, pair in ipairs(spec) do out[i] = {name = pair[1], type = pair[2]} end
  return out
end

local OPERATIONS = {
  {name = "GET /api/documents", role = "document-service", ms = 180},
  {name = "POST /api/documents", role = "document-service", ms = 420},
  {name = "GET /api/cases", role = "web", ms = 120},
  {name = "POST /api/ai/summarize", role = "ai-service", ms = 2600},
  {name = "GET /api/tasks", role = "task-service", ms = 90},
  {name = "GET /health", role = "gateway", ms = 8},
}
local CODES = {"200", "200", "200", "200", "200", "200", "200", "201", "404", "500"}
local EXCEPTIONS = {
  {type = "System.TimeoutException", message = "The operation has timed out."},
  {type = "Npgsql.NpgsqlException", message = "Exception while reading from stream"},
  {type = "System.NullReferenceException", message = "Object reference not set to an instance of an object."},
  {type = "StackExchange.Redis.RedisConnectionException", message = "No connection is available"},
}
local DEPENDENCIES = {
  {type = "SQL", target = "psql-legal-production.postgres.database.azure.com", name = "SELECT documents"},
  {type = "Redis", target = "redis-legal-production.redis.cache.windows.net", name = "GET"},
  {type = "HTTP", target = "api.openai.azure.com", name = "POST /openai/deployments/gpt/chat/completions"},
  {type = "Azure blob", target = "stalegalproduction.blob.core.windows.net", name = "PUT documents"},
}
local COUNTERS = {
  {name = "Memory", category = "Memory", counter = "Available Bytes", base = 2.1e9, spread = 6e8},
  {name = "% Processor Time", category = "Processor", counter = "% Processor Time", base = 35, spread = 40},
  {name = "Requests/Sec", category = "ASP.NET Applications", counter = "Requests/Sec", base = 40, spread = 30},
}
local AUDIT_VERBS = {"get", "list", "watch", "update", "patch", "create", "delete"}
local AUDIT_RESOURCES = {"pods", "deployments", "secrets", "configmaps", "nodes", "leases"}
local AUDIT_USERS = {"system:serviceaccount:kube-system:cluster-autoscaler", "aksService",
  "sre@legal.example", "system:serviceaccount:production:task-service", "masterclient"}

local function hex(r, n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", r(16) - 1) end
  return table.concat(t)
end

--- tables(now) -> the App Insights tables of the production app
function M.tables(now)
  now = now // 60 * 60
  local start = now - M.DAYS * 86400
  local r = rng(20261205)
  local requests, exceptions, dependencies, counters = {}, {}, {}, {}
  local app = platform.regions[1].appinsights
  local t = start
  while t < now do
    local op = OPERATIONS[r(#OPERATIONS)]
    local code = CODES[r(#CODES)]
    local duration = math.floor(op.ms * (0.4 + r() * 1.6) * 1000 + 0.5) / 1000
    local id = hex(r, 16)
    local opid = hex(r, 32)
    requests[#requests + 1] = {
      timestamp = t, id = id, name = op.name, url = "https://legal.example" .. op.name:match(" (.*)$"),
      success = code:sub(1, 1) ~= "5" and code ~= "404", resultCode = code, duration = duration,
      performanceBucket = duration < 250 and "<250ms" or duration < 1000 and "250ms-1sec" or ">=1sec",
      itemType = "request", operation_Name = op.name, operation_Id = opid, cloud_RoleName = op.role,
      cloud_RoleInstance = op.role .. "-7d9f8b6c4-" .. hex(r, 5), appName = app, itemCount = 1,
      customDimensions = {region = "westeurope"},
    }
    if code == "500" or r(7) == 1 then
      local ex = EXCEPTIONS[r(#EXCEPTIONS)]
      exceptions[#exceptions + 1] = {
        timestamp = t, problemId = ex.type .. " at " .. op.role, type = ex.type, outerType = ex.type,
        message = ex.message, outerMessage = ex.message, severityLevel = 3, itemType = "exception",
        operation_Name = op.name, operation_Id = opid, cloud_RoleName = op.role, appName = app, itemCount = 1,
      }
    end
    if r(2) == 1 then
      local dep = DEPENDENCIES[r(#DEPENDENCIES)]
      local ok = r(20) ~= 1
      dependencies[#dependencies + 1] = {
        timestamp = t, id = hex(r, 16), target = dep.target, type = dep.type, name = dep.name, data = dep.name,
        success = ok, resultCode = ok and "200" or "500", duration = math.floor(r() * 300000) / 1000,
        itemType = "dependency", operation_Name = op.name, operation_Id = opid, cloud_RoleName = op.role,
        appName = app, itemCount = 1,
      }
    end
    t = t + 60 + r(240)
  end
  for ct = start, now - 1, 300 do
    for _, c in ipairs(COUNTERS) do
      counters[#counters + 1] = {
        timestamp = ct, name = c.name, category = c.category, counter = c.counter, instance = "",
        value = math.floor((c.base + (r() - 0.5) * c.spread) * 100 + 0.5) / 100,
        cloud_RoleName = "web", cloud_RoleInstance = "aks-system-12345678-vmss000000", itemType = "performanceCounter",
        appName = app, itemCount = 1,
      }
    end
  end
  return {
    requests = {rows = requests, columns = cols {
      {"timestamp", "datetime"}, {"id", "string"}, {"name", "string"}, {"url", "string"}, {"success", "bool"},
      {"resultCode", "string"}, {"duration", "real"}, {"performanceBucket", "string"}, {"itemType", "string"},
      {"customDimensions", "dynamic"}, {"operation_Name", "string"}, {"operation_Id", "string"},
      {"cloud_RoleName", "string"}, {"cloud_RoleInstance", "string"}, {"appName", "string"}, {"itemCount", "int"}}},
    exceptions = {rows = exceptions, columns = cols {
      {"timestamp", "datetime"}, {"problemId", "string"}, {"type", "string"}, {"outerType", "string"},
      {"message", "string"}, {"outerMessage", "string"}, {"severityLevel", "int"}, {"itemType", "string"},
      {"operation_Name", "string"}, {"operation_Id", "string"}, {"cloud_RoleName", "string"},
      {"appName", "string"}, {"itemCount", "int"}}},
    dependencies = {rows = dependencies, columns = cols {
      {"timestamp", "datetime"}, {"id", "string"}, {"target", "string"}, {"type", "string"}, {"name", "string"},
      {"data", "string"}, {"success", "bool"}, {"resultCode", "string"}, {"duration", "real"},
      {"itemType", "string"}, {"operation_Name", "string"}, {"operation_Id", "string"},
      {"cloud_RoleName", "string"}, {"appName", "string"}, {"itemCount", "int"}}},
    performanceCounters = {rows = counters, columns = cols {
      {"timestamp", "datetime"}, {"name", "string"}, {"category", "string"}, {"counter", "string"},
      {"instance", "string"}, {"value", "real"}, {"cloud_RoleName", "string"}, {"cloud_RoleInstance", "string"},
      {"itemType", "string"}, {"appName", "string"}, {"itemCount", "int"}}},
  }
end

--- workspace(now) -> the Log Analytics tables of the production workspace (AKS kube-audit diagnostics)
function M.workspace(now)
  now = now // 60 * 60
  local start = now - M.DAYS * 86400
  local r = rng(5122026)
  local region = platform.regions[1]
  local cluster = region.aks.cluster
  local resource_id = ("/SUBSCRIPTIONS/%s/RESOURCEGROUPS/%s/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/%s")
    :format(platform.subscription, region.resource_group, cluster):upper()
  local rows = {}
  local t = start
  while t < now do
    local category = r(10) == 1 and "kube-apiserver" or "kube-audit"
    local verb, res, user = AUDIT_VERBS[r(#AUDIT_VERBS)], AUDIT_RESOURCES[r(#AUDIT_RESOURCES)], AUDIT_USERS[r(#AUDIT_USERS)]
    local log = string.format('{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","verb":"%s",'
      .. '"user":{"username":"%s"},"objectRef":{"resource":"%s","namespace":"production"},"responseStatus":{"code":%d}}',
      verb, user, res, r(25) == 1 and 403 or 200)
    rows[#rows + 1] = {
      TimeGenerated = t, TenantId = platform.tenant, Category = category, OperationName = "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
      ResourceId = resource_id, _ResourceId = resource_id:lower(), Resource = cluster:upper(),
      ResourceGroup = region.resource_group:upper(), SubscriptionId = platform.subscription,
      ResourceProvider = "MICROSOFT.CONTAINERSERVICE", ResourceType = "MANAGEDCLUSTERS",
      log_s = log, pod_s = "kube-apiserver-" .. hex(r, 8), Type = "AzureDiagnostics", SourceSystem = "Azure",
    }
    t = t + 30 + r(300)
  end
  return {AzureDiagnostics = {rows = rows, columns = cols {
    {"TenantId", "string"}, {"TimeGenerated", "datetime"}, {"ResourceId", "string"}, {"Category", "string"},
    {"ResourceGroup", "string"}, {"SubscriptionId", "string"}, {"ResourceProvider", "string"},
    {"Resource", "string"}, {"ResourceType", "string"}, {"OperationName", "string"}, {"log_s", "string"},
    {"pod_s", "string"}, {"SourceSystem", "string"}, {"Type", "string"}, {"_ResourceId", "string"}}}}
end

return M
