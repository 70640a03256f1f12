-- opsh.azure.storage: storage account blob service properties through ARM (Microsoft.Storage
-- blobServices/default) — soft delete retention for blobs and containers, versioning. The account is
-- the environment's (`storage.account`, `storage.resource_group`) unless given. Blob data itself is
-- opsh.azure.blob's.
local R = require("opsh.azure.resource")

local M = {}

M.API = "2023-05-01"

local function service_of(opts, fname)
  local envt, arm = R.ctx(opts)
  local s = envt.storage or {}
  local account = R.pick(opts, "account", s.account, fname, "the storage account")
  local rg = R.pick(opts, "resource_group", s.resource_group or envt.resource_group, fname, "the resource group")
  return arm, arm:id(rg, "Microsoft.Storage/storageAccounts", account, "blobServices", "default")
end

--- blob_properties{account =} -> the blob service (properties.deleteRetentionPolicy {enabled, days},
-- isVersioningEnabled, containerDeleteRetentionPolicy, ...)
function M.blob_properties(opts)
  opts = R.args(opts, "storage.blob_properties", R.set("account", "resource_group"))
  local arm, id = service_of(opts, "storage.blob_properties")
  return arm:get(id, {api_version = M.API})
end

--- set_blob_properties{delete_retention_days = N | false, container_delete_retention_days = N | false,
-- versioning = true | false} -> the blob service; what is not given stays as it is
function M.set_blob_properties(opts)
  opts = R.args(opts, "storage.set_blob_properties", R.set("account", "resource_group", "delete_retention_days",
    "container_delete_retention_days", "versioning"))
  local fname = "storage.set_blob_properties"
  local arm, id = service_of(opts, fname)
  local current = arm:get(id, {api_version = M.API})
  local props = R.copy(current and current.properties or {})
  local function retention(key, member)
    local v = opts[key]
    if v == nil then return end
    if v == false then props[member] = {enabled = false} return end
    local days = R.integer(opts, key, fname, 1)
    if days > 365 then R.usage(fname, key .. " must be 1 to 365 (or false)") end
    props[member] = {enabled = true, days = days}
  end
  retention("delete_retention_days", "deleteRetentionPolicy")
  retention("container_delete_retention_days", "containerDeleteRetentionPolicy")
  if opts.versioning ~= nil then
    if type(opts.versioning) ~= "boolean" then R.usage(fname, "versioning must be true or false") end
    props.isVersioningEnabled = opts.versioning
  end
  return arm:put(id, {api_version = M.API, body = {properties = props}})
end

return M
