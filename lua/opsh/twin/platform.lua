-- opsh.twin.platform: the names and shapes of the platform the twin stands in for, in one place.
-- The twin mirrors production and its secondary region under the runbook's own names, so a
-- procedure rehearsed with `--env twin` sends the requests it will send to production; only the
-- endpoints and the credentials differ. Every API twin (ARM, Kubernetes, Key Vault, queries, ACR)
-- and the twin environment read these facts from here, never from a copy.
local M = {}

M.tenant = "3b5e8c1a-7d2f-4e9b-a6c0-1f4d8e2b9a73"
M.subscription = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"
M.subscription_name = "legal-platform"
-- the service principal `opsh twin up` logs az and opsh in as (its secret lives in the twin's secrets)
M.client_id = "0f6d2b7e-5c1a-4d3e-9b8f-7a6c5d4e3f21"

M.namespace = "production"
M.deployments = {"web", "gateway", "document-service", "ai-service", "task-service",
  "integration-service", "notification-service"}

-- One region each. `pools`: AKS agent pools with their node count; the Kubernetes twin's Node objects
-- follow these counts as the ARM twin changes them (store collection "arm", see resource_id).
M.regions = {
  {name = "production", location = "westeurope", resource_group = "rg-legal-production",
   aks = {cluster = "aks-legal-production", kubernetes_version = "1.32.4",
     pools = {{name = "systempool", mode = "System", count = 3, vm_size = "Standard_D4s_v5"},
              {name = "usernodepool", mode = "User", count = 3, vm_size = "Standard_D8s_v5"}}},
   postgres = {server = "psql-legal-production", database = "legaldb", admin_user = "adminuser",
     sku = {name = "Standard_D4ds_v5", tier = "GeneralPurpose"}, storage_gb = 128, version = "15"},
   redis = {name = "redis-legal-production", sku = {name = "Standard", family = "C", capacity = 1}},
   keyvault = "kv-legal-production", appinsights = "legal-platform-production",
   workspace = "log-legal-production", acr = "acrlegalproduction", storage = "stalegalproduction",
   action_group = "devops-alerts", dns = {zone = "legal-platform.com", record = "@"}},
  {name = "secondary", location = "northeurope", resource_group = "rg-legal-production-secondary",
   aks = {cluster = "aks-legal-production-secondary", kubernetes_version = "1.32.4",
     pools = {{name = "systempool", mode = "System", count = 2, vm_size = "Standard_D4s_v5"},
              {name = "usernodepool", mode = "User", count = 2, vm_size = "Standard_D8s_v5"}}},
   -- the geo-replica of the production server (the twin's streaming replica)
   postgres = {server = "psql-legal-production-replica", database = "legaldb", admin_user = "adminuser",
     sku = {name = "Standard_D4ds_v5", tier = "GeneralPurpose"}, storage_gb = 128, version = "15",
     replica_of = "psql-legal-production"}},
}

--- region(name) -> the region table ("production" or "secondary"), or nil
function M.region(name)
  for _, r in ipairs(M.regions) do if r.name == name then return r end end
end

--- resource_id(resource_group, provider_type, name, ...) -> the ARM resource ID, lower-cased: the key of
-- the resource's object in the twin store's "arm" collection (its value: the body a GET returns).
-- resource_id("rg-legal-production", "Microsoft.ContainerService/managedClusters", "aks-legal-production",
--   "agentPools", "usernodepool")
function M.resource_id(resource_group, provider_type, name, ...)
  local parts = {"/subscriptions/", M.subscription, "/resourceGroups/", resource_group, "/providers/",
    provider_type, "/", name}
  local rest = {...}
  for i = 1, #rest, 2 do parts[#parts + 1] = "/" .. rest[i] .. "/" .. rest[i + 1] end
  return table.concat(parts):lower()
end

return M
