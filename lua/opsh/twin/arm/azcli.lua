-- opsh.twin.arm.azcli: the service principal's secret and the az CLI configuration directory the twin
-- prepares (DIR/api/az): the twin cloud registered with an ADFS-style login endpoint (az 2.45's MSAL skips
-- instance discovery for it), selected, and logged in as the platform's service principal, written as
-- the files `az cloud register`, `az cloud set` and `az login --service-principal` leave, so the secret
-- never goes through an argv. Rewritten at every start: the twin's port changes.
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local json = require("opsh.json")
local core = require("opsh._core")
local platform = require("opsh.twin.platform")

local M = {}

local PRIVATE = tonumber("600", 8)
local CLOUD = "Twin"

-- under the API process's folder: `down` removes it, `up` writes it again for the new port
function M.config_dir(dir) return dir .. "/api/az" end
function M.secret_path(dir) return require("opsh.twin.identity").identity_dir(dir) .. "/client-secret" end

--- client_secret(dir) -> the service principal's secret (plain text, for the token endpoint and the
-- environment, which wraps it in an opsh.secret), or nil before the ARM twin first started
function M.client_secret(dir)
  local s = fs.read(M.secret_path(dir), {missing_ok = true})
  return s and (s:gsub("%s+$", ""))
end

local function ensure_secret(dir)
  if M.client_secret(dir) then return end
  fs.mkdir(require("opsh.twin.identity").identity_dir(dir), {parents = true, mode = tonumber("700", 8)})
  -- Entra secrets look like this: 40 characters of letters, digits and ~._-
  local s = crypto.random_password(30, {url = true})
  fs.write_atomic(M.secret_path(dir), s, {mode = PRIVATE})
end

local function ini(sections)
  local out = {}
  for _, s in ipairs(sections) do
    out[#out + 1] = "[" .. s[1] .. "]"
    for _, kv in ipairs(s[2]) do out[#out + 1] = kv[1] .. " = " .. kv[2] end
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

--- prepare(twin, base): write DIR/az for the twin served at `base`
function M.prepare(twin, base)
  ensure_secret(twin.dir)
  local dir = M.config_dir(twin.dir)
  fs.mkdir(dir, {parents = true, mode = tonumber("700", 8)})
  fs.chmod(dir, tonumber("700", 8))
  -- tokens cached by an earlier run were issued by the same key; the endpoints changed, so start clean
  for _, f in ipairs({"msal_token_cache.json", "msal_http_cache.bin", "commandIndex.json"}) do
    if fs.exists(dir .. "/" .. f) then fs.remove(dir .. "/" .. f) end
  end
  -- no update check against the public internet (az does one on a fresh directory)
  fs.write_atomic(dir .. "/versionCheck.json", json.encode({versions = {["azure-cli"] = {["local"] = "2.45.0"},
    core = {["local"] = "2.45.0"}, telemetry = {["local"] = "1.0.8"}},
    update_time = os.date("!%Y-%m-%d %H:%M:%S.000000")}))
  fs.write_atomic(dir .. "/config", ini({
    {"cloud", {{"name", CLOUD}}},
    {"core", {{"collect_telemetry", "false"}, {"first_run", "no"}, {"survey_message", "false"},
      {"encrypt_token_cache", "false"}, {"no_color", "true"}}},
    {"auto-upgrade", {{"enable", "no"}}},
  }))
  fs.write_atomic(dir .. "/clouds.config", ini({{CLOUD, {
    {"profile", "latest"},
    {"endpoint_resource_manager", base .. "/"},
    {"endpoint_management", "https://management.core.windows.net/"},
    {"endpoint_active_directory", base .. "/adfs"},
    {"endpoint_active_directory_resource_id", "https://management.core.windows.net/"},
    {"endpoint_active_directory_graph_resource_id", "https://graph.windows.net/"},
    {"endpoint_microsoft_graph_resource_id", "https://graph.microsoft.com/"},
    {"endpoint_gallery", base .. "/"},
    {"endpoint_log_analytics_resource_id", "https://api.loganalytics.io"},
    {"endpoint_app_insights_resource_id", "https://api.applicationinsights.io"},
    {"suffix_storage_endpoint", "core.windows.net"},
    {"suffix_keyvault_dns", ".vault.azure.net"},
    {"suffix_acr_login_server_endpoint", ".azurecr.io"},
    {"subscription", platform.subscription},
  }}}))
  fs.write_atomic(dir .. "/azureProfile.json", json.encode({installationId = "6b1e1a52-7a39-11ef-9f7b-0242ac120002",
    subscriptions = json.array({{id = platform.subscription, name = platform.subscription_name, state = "Enabled",
      user = {name = platform.client_id, type = "servicePrincipal"}, isDefault = true,
      tenantId = platform.tenant, homeTenantId = platform.tenant, environmentName = CLOUD,
      managedByTenants = json.array({})}})}))
  fs.write_atomic(dir .. "/service_principal_entries.json", core.secret(json.encode(json.array({
    {client_id = platform.client_id, tenant = platform.tenant, client_secret = M.client_secret(twin.dir)}}))),
    {mode = PRIVATE})
end

return M
