-- opsh.azure.cloud: the endpoints and token audiences of an environment's cloud. An environment
-- names its cloud (`azure.cloud`: "public" by default, "usgov", "china") and may override any
-- endpoint (`endpoints = {arm =, login =, imds =, token =, ca =}`): the twin sets them all.
local core = require("opsh._core")

local M = {}

-- audiences are the resource URIs tokens are asked for (scope = audience .. "/.default")
M.clouds = {
  public = {
    arm = "https://management.azure.com", login = "https://login.microsoftonline.com",
    imds = "http://169.254.169.254",
    audiences = {arm = "https://management.azure.com/", keyvault = "https://vault.azure.net",
      storage = "https://storage.azure.com/", loganalytics = "https://api.loganalytics.io",
      appinsights = "https://api.applicationinsights.io", acr = "https://containerregistry.azure.net"},
  },
  usgov = {
    arm = "https://management.usgovcloudapi.net", login = "https://login.microsoftonline.us",
    imds = "http://169.254.169.254",
    audiences = {arm = "https://management.usgovcloudapi.net/", keyvault = "https://vault.usgovcloudapi.net",
      storage = "https://storage.azure.com/", loganalytics = "https://api.loganalytics.us",
      appinsights = "https://api.applicationinsights.us", acr = "https://containerregistry.azure.net"},
  },
  china = {
    arm = "https://management.chinacloudapi.cn", login = "https://login.chinacloudapi.cn",
    imds = "http://169.254.169.254",
    audiences = {arm = "https://management.chinacloudapi.cn/", keyvault = "https://vault.azure.cn",
      storage = "https://storage.azure.com/", loganalytics = "https://api.loganalytics.azure.cn",
      appinsights = "https://api.applicationinsights.azure.cn", acr = "https://containerregistry.azure.net"},
  },
}

-- the local twin (`opsh twin up`): public audiences, every endpoint given by the environment
M.clouds.twin = {arm = M.clouds.public.arm, login = M.clouds.public.login, imds = M.clouds.public.imds,
  audiences = M.clouds.public.audiences}

local function strip(url) return url and (url:gsub("/+$", "")) end

--- of(envt) -> {name, arm, login, imds, token (URL or nil), ca (PEM path or nil), audiences}
-- The process environment's AZURE_AUTHORITY_HOST overrides the login host, as azure-identity does.
function M.of(envt)
  envt = envt or {}
  local name = envt.azure and envt.azure.cloud or "public"
  local c = M.clouds[name]
  if not c then
    local names = {}
    for n in pairs(M.clouds) do names[#names + 1] = n end
    table.sort(names)
    error(core.error("config", string.format("environment '%s': unknown azure.cloud '%s' (use %s)",
      tostring(envt.name), name, table.concat(names, ", "))), 0)
  end
  local e = envt.endpoints or {}
  local authority = os.getenv("AZURE_AUTHORITY_HOST")
  return {
    name = name,
    arm = strip(e.arm) or c.arm,
    login = strip(e.login) or strip(authority ~= "" and authority or nil) or c.login,
    imds = strip(e.imds) or c.imds,
    token = e.token,
    ca = e.ca,
    audiences = c.audiences,
  }
end

--- audience(cloud, name_or_uri) -> the resource URI for "arm", "keyvault", ... or the URI given
function M.audience(cloud, which)
  if type(which) ~= "string" or which == "" then
    error(core.error("usage", "an audience name (arm, keyvault, storage, loganalytics, appinsights, acr) "
      .. "or a resource URI is required"), 0)
  end
  local a = cloud.audiences[which]
  if a then return a end
  if not which:find("^%a[%w+.-]*://") then
    error(core.error("usage", string.format("unknown audience '%s' (use arm, keyvault, storage, loganalytics, "
      .. "appinsights, acr, or a resource URI)", which)), 0)
  end
  return which
end

return M
