-- opsh.twin.k8s: the Kubernetes API twin (an API twin module, docs/twin-kubernetes.md). One HTTPS
-- listener of its own serves both clusters: production at the root (and /clusters/production), the DR
-- secondary under /clusters/secondary. Client certificates from the twin CA and the twin's bearer token
-- are accepted, anything else is 401. Objects live in the twin store (objects.lua); a controller makes
-- Deployments, ReplicaSets, Pods and Nodes behave (controller.lua); seed.lua makes production.
local core = require("opsh._core")
local json = require("opsh.json")
local auth = require("opsh.twin.k8s.auth")
local controller = require("opsh.twin.k8s.controller")
local discovery = require("opsh.twin.k8s.discovery")
local kinds = require("opsh.twin.k8s.kinds")
local knobs = require("opsh.twin.k8s.knobs")
local logs = require("opsh.twin.k8s.logs")
local metrics = require("opsh.twin.k8s.metrics")
local objects = require("opsh.twin.k8s.objects")
local resources = require("opsh.twin.k8s.resources")
local seed = require("opsh.twin.k8s.seed")
local status = require("opsh.twin.k8s.status")
local watch = require("opsh.twin.k8s.watch")

local M = {name = "kubernetes", listener = true}

M.CLUSTERS = {"production", "secondary"}

local function split(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  return segs
end

local function not_found()
  return status.answer(404, "the server could not find the requested resource", "NotFound", {})
end

local function method_not_allowed()
  return status.answer(405, "the server does not allow this method on the requested resource", "MethodNotAllowed", {})
end

-- the resource part of a path: rest = segments after /api/v1 or /apis/g/v
local function resource_route(ctx, req, group, version, rest)
  local rt = {ctx = ctx, req = req, version = version}
  local ns, res, name, sub
  if rest[1] == "namespaces" and #rest >= 3 then
    local r = kinds.find(group, version, rest[3])
    if r and r.namespaced then
      ns, res, name, sub = rest[2], rest[3], rest[4], rest[5]
      if #rest > 5 then return not_found() end
    end
  end
  if not res then
    res, name, sub = rest[1], rest[2], rest[3]
    if #rest > 3 then return not_found() end
  end
  local r = kinds.find(group, version, res)
  if not r then return not_found() end
  if not r.namespaced and ns then return not_found() end
  rt.r, rt.ns, rt.name, rt.sub = r, ns, name, sub
  if r.kind == "Namespace" and name then rt.ns = nil end
  local m = req.method
  if r.computed then
    if m ~= "GET" then return method_not_allowed() end
    if sub then return not_found() end
    return r.kind == "PodMetrics" and metrics.pods(rt) or metrics.nodes(rt)
  end
  if not name then
    if m == "GET" then
      if req.query.watch == "true" or req.query.watch == "1" then return watch.watch(rt) end
      return resources.list(rt)
    elseif m == "POST" then
      if r.namespaced and not ns then return method_not_allowed() end
      return resources.create(rt)
    elseif m == "DELETE" then return resources.deletecollection(rt)
    end
    return method_not_allowed()
  end
  if sub == nil then
    if m == "GET" then return resources.get(rt)
    elseif m == "PUT" then return resources.replace(rt)
    elseif m == "PATCH" then return resources.patch(rt)
    elseif m == "DELETE" then return resources.delete(rt) end
    return method_not_allowed()
  end
  local allowed = false
  for _, s in ipairs(r.subresources or {}) do if s[1] == sub then allowed = true end end
  if not allowed then return not_found() end
  if sub == "scale" then
    if m == "GET" then return resources.get_scale(rt)
    elseif m == "PUT" then return resources.put_scale(rt)
    elseif m == "PATCH" then return resources.patch(rt) end
  elseif sub == "status" then
    if m == "GET" then return resources.get(rt)
    elseif m == "PUT" then return resources.replace(rt)
    elseif m == "PATCH" then return resources.patch(rt) end
  elseif sub == "log" and m == "GET" then
    return logs.answer(rt, (objects.must_get(ctx, r, ns, name)))
  elseif sub == "eviction" and m == "POST" then
    return resources.evict(rt)
  end
  return method_not_allowed()
end

--- dispatch(ctx, req, segs) -> response
function M.dispatch(ctx, req, segs)
  local a, b, c = segs[1], segs[2], segs[3]
  if a == nil then
    return {paths = json.array({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"})}
  elseif a == "version" and not b then return discovery.version()
  elseif (a == "healthz" or a == "livez" or a == "readyz") and not b then return "ok"
  elseif a == "openapi" then
    if b == "v3" then
      local rest = table.concat(segs, "/", 3)
      return discovery.openapi(rest) or not_found()
    end
    return not_found()
  elseif a == "api" then
    if not b then return discovery.api(req, req.headers.host or "127.0.0.1") end
    if b ~= "v1" then return not_found() end
    if not c then return discovery.resource_list("", "v1") end
    return resource_route(ctx, req, "", "v1", {table.unpack(segs, 3)})
  elseif a == "apis" then
    if not b then return discovery.apis(req) end
    if not c then return discovery.group(b) or not_found() end
    if not segs[4] then return discovery.resource_list(b, c) or not_found() end
    return resource_route(ctx, req, b, c, {table.unpack(segs, 4)})
  end
  return not_found()
end

local function handler(contexts, tw)
  return function(req)
    local segs = split(req.path)
    local cluster = "production"
    if segs[1] == "clusters" and segs[2] then
      cluster = segs[2]
      table.remove(segs, 1); table.remove(segs, 1)
    end
    local ctx = contexts[cluster]
    if not ctx then return not_found() end
    local who = auth.user(tw, req)
    if not who then
      return status.answer(401, "Unauthorized", "Unauthorized", nil)
    end
    local k = knobs.get(ctx)
    if k.delay and k.delay > 0 then core.sleep(k.delay) end
    local injected = knobs.inject(k, req)
    if injected then return injected end
    local ok, res, extra = pcall(M.dispatch, ctx, req, segs)
    if ok then return res, extra end
    if type(res) == "table" and res.k8s_status then return res.k8s_status end
    require("opsh.log").error("kubernetes twin: handler failed", {path = req.path, error = tostring(core.is_error(res) and res.message or res)})
    return status.answer(500, "Internal error occurred: " .. tostring(core.is_error(res) and res.message or res), "InternalError", {})
  end
end

function M.mount(srv, tw)
  local contexts = {}
  for _, name in ipairs(M.CLUSTERS) do
    contexts[name] = {store = tw.store, cluster = name, twin = tw}
  end
  auth.prepare(tw, srv.url, M.CLUSTERS)
  for _, name in ipairs(M.CLUSTERS) do seed.cluster(contexts[name]) end
  for _, name in ipairs(M.CLUSTERS) do controller.start(contexts[name]) end
  srv:handle(handler(contexts, tw))
end

function M.environment(tw, env, endpoint)
  env.aks = env.aks or {}
  env.aks.kubeconfig = auth.kubeconfig_path(tw.dir)
  env.aks.context = require("opsh.twin.platform").region("production").aks.cluster
  env.endpoints = env.endpoints or {}
  env.endpoints.kubernetes = endpoint
end

function M.shell(tw, exports)
  exports.KUBECONFIG = auth.kubeconfig_path(tw.dir)
end

return M
