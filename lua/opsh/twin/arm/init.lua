-- opsh.twin.arm: the ARM twin (Azure Resource Manager and its identity endpoints) on a listener of its
-- own. Serves Entra-ID-shaped login (OIDC discovery AAD- and ADFS-style, the token endpoint for client
-- secrets, client assertions and federated tokens), IMDS, /metadata/endpoints, tenants and
-- subscriptions, and the platform's resources (AKS, PostgreSQL flexible servers, Redis, Monitor, App
-- Insights, DNS, cost, storage) kept in the twin store's `arm` collection. See docs/twin-azure.md.
local core = require("opsh._core")
local json = require("opsh.json")
local platform = require("opsh.twin.platform")
local router = require("opsh.twin.arm.router")

local M = {name = "arm", listener = true}

local RESOURCE_MODULES = {"opsh.twin.arm.aks", "opsh.twin.arm.postgres", "opsh.twin.arm.redis",
  "opsh.twin.arm.monitor", "opsh.twin.arm.misc"}

-- ---- generic resources: GET of any stored object, lists by parent and type ----

local function arm_items(twin) return (twin.store:list(router.COLLECTION)) end

--- children(twin, pattern) -> the objects whose key matches a Lua pattern, in key order
function M.children(twin, pattern)
  local out = {}
  for _, item in ipairs(arm_items(twin)) do
    if item.key:match(pattern) then out[#out + 1] = item.object end
  end
  return out
end

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local function generic_get(twin, req, ctx)
  local obj = twin.store:get(router.COLLECTION, ctx.lpath)
  if obj then return obj end
  -- a list: {rg or subscription}/providers/ns/type (or a nested collection under a resource)
  local sub, rest = ctx.lpath:match("^/subscriptions/([^/]+)/providers/(.+)$")
  local pattern
  if sub and select(2, rest:gsub("/", "")) == 1 then
    pattern = "^/subscriptions/" .. escape(sub) .. "/resourcegroups/[^/]+/providers/" .. escape(rest) .. "/[^/]+$"
  else
    pattern = "^" .. escape(ctx.lpath) .. "/[^/]+$"
  end
  local items = M.children(twin, pattern)
  local segs = select(2, ctx.lpath:gsub("/", ""))
  -- an even number of segments after the provider is a collection; otherwise a missing resource
  if #items > 0 or (ctx.lpath:find("/providers/", 1, true) and segs % 2 == 1 and not ctx.lpath:match("/providers/[^/]+$")) then
    return router.page(req, ctx.base, items, tonumber(ctx.knobs.page_size))
  end
  local rg = ctx.lpath:match("/resourcegroups/([^/]+)")
  if rg and not twin.store:get(router.COLLECTION, "/subscriptions/" .. platform.subscription .. "/resourcegroups/" .. rg) then
    return router.err(404, "ResourceGroupNotFound", string.format("Resource group '%s' could not be found.", rg))
  end
  return router.err(404, "ResourceNotFound", string.format("The Resource '%s' was not found.", ctx.path))
end

-- ---- mount ----

function M.mount(srv, twin)
  local base = (twin.endpoint(M.name) or srv.url):gsub("/+$", "")
  local routes = {}
  local function add(method, pattern, fn, opts)
    routes[#routes + 1] = {method = method, pattern = pattern, fn = fn, anonymous = opts and opts.anonymous}
  end
  local api = {twin = twin, add = add, base = base, children = function(p) return M.children(twin, p) end}
  require("opsh.twin.arm.login").routes(api)
  require("opsh.twin.arm.lro").routes(add)
  for _, name in ipairs(RESOURCE_MODULES) do require(name).routes(api) end
  require("opsh.twin.arm.seed").seed(twin)
  require("opsh.twin.arm.azcli").prepare(twin, base)

  local wrapped = {}
  for i, r in ipairs(routes) do
    wrapped[i] = router.wrap(twin, base, function(req, ctx)
      return r.fn(req, ctx, table.unpack(req.captures))
    end, {anonymous = r.anonymous})
  end
  local fallback = router.wrap(twin, base, function(req, ctx)
    if req.method == "GET" or req.method == "HEAD" then return generic_get(twin, req, ctx) end
    return router.err(405, "MethodNotAllowed", string.format("The twin does not serve %s %s", req.method, ctx.path))
  end)
  srv:handle(function(req)
    local _, lpath = router.normalise(req.path)
    for i, r in ipairs(routes) do
      if r.method == req.method or r.method == "*" or (r.method == "GET" and req.method == "HEAD") then
        local caps = {lpath:match(r.pattern)}
        if caps[1] ~= nil then
          req.captures = caps
          return wrapped[i](req)
        end
      end
    end
    req.captures = {}
    return fallback(req)
  end)
end

-- ---- environment and shell ----

function M.environment(twin, env, endpoint)
  local azcli = require("opsh.twin.arm.azcli")
  env.tenant, env.subscription = platform.tenant, platform.subscription
  env.azure = env.azure or {}
  env.azure.cloud = "twin"
  env.azure.client_id = platform.client_id
  env.azure.credentials = env.azure.credentials or json.array({"client_secret"})
  env.endpoints = env.endpoints or {}
  env.endpoints.arm = endpoint
  env.endpoints.login = endpoint
  env.endpoints.token = endpoint .. "/" .. platform.tenant .. "/oauth2/v2.0/token"
  env.endpoints.imds = endpoint
  local prod = platform.region("production")
  local rid = require("opsh.twin.arm.seed").rid
  env.monitor = env.monitor or {
    action_group = rid(prod.resource_group, "Microsoft.Insights/actionGroups", prod.action_group),
    workspace = rid(prod.resource_group, "Microsoft.OperationalInsights/workspaces", prod.workspace)}
  env.dns = env.dns or {zone = prod.dns.zone, record = prod.dns.record, resource_group = prod.resource_group}
  local secret = azcli.client_secret(twin.dir)
  if secret then
    env.twin.secrets = env.twin.secrets or {}
    env.twin.secrets["azure-client-secret"] = core.secret(secret)
  end
  env.twin.az_config_dir = azcli.config_dir(twin.dir)
end

function M.shell(twin, exports)
  local azcli = require("opsh.twin.arm.azcli")
  exports.AZURE_CONFIG_DIR = azcli.config_dir(twin.dir)
  exports.REQUESTS_CA_BUNDLE = twin.ca.ca
  exports.AZURE_CORE_COLLECT_TELEMETRY = "false"
  exports.AZURE_TENANT_ID = platform.tenant
  exports.AZURE_CLIENT_ID = platform.client_id
  exports.AZURE_CLIENT_SECRET = azcli.client_secret(twin.dir)
  exports.AZURE_SUBSCRIPTION_ID = platform.subscription
end

return M
