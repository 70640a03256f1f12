-- opsh.k8s: Kubernetes through opsh.http — kubeconfig as kubectl reads it, discovery, the generic
-- verbs on any resource, watches and logs as streams, and the runbook's helpers. See docs/k8s.md.
local core = require("opsh._core")
local kubeconfig = require("opsh.k8s.kubeconfig")
local credentials = require("opsh.k8s.credentials")
local client = require("opsh.k8s.client")
local errors = require("opsh.k8s.errors")

require("opsh.k8s.stream")
require("opsh.k8s.helpers")
require("opsh.k8s.top")
require("opsh.k8s.apply")
require("opsh.k8s.tables")

local M = {}

local function usage(message) error(core.error("usage", message), 0) end

local CLIENT_OPTIONS = {kubeconfig = true, context = true, namespace = true, cache_dir = true, discovery_ttl = true,
  field_manager = true, request_timeout = true, in_cluster = true}

local function check_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then usage(string.format("bad argument to '%s' (options table expected)", fname)) end
  for k in pairs(opts) do
    if not CLIENT_OPTIONS[k] then usage(string.format("bad argument to '%s' (unknown option '%s')", fname, tostring(k))) end
  end
  return opts
end

local function make(resolved, tls, opts)
  return client.new{server = resolved.server, context = resolved.context, namespace = resolved.namespace, tls = tls,
    cache_dir = opts.cache_dir, discovery_ttl = opts.discovery_ttl, field_manager = opts.field_manager,
    request_timeout = opts.request_timeout}
end

--- from_kubeconfig(yaml [, {context=, namespace=, ...}]) -> client: a kubeconfig held as text (the
-- one `az aks get-credentials` or ARM's listClusterUserCredential returns), never written to disk
function M.from_kubeconfig(text, opts)
  opts = check_opts(opts, "from_kubeconfig")
  local cfg = kubeconfig.from_string(text)
  local r = kubeconfig.resolve(cfg, opts)
  return make(r, credentials.for_user(r), opts)
end

--- in_cluster([{dir=, host=, port=, namespace=}]) -> client of the pod's service account, or raises
-- kind "config" when not running in a pod
function M.in_cluster(opts)
  opts = opts or {}
  local r, tls = credentials.in_cluster(opts)
  if not r then
    error(core.error("config", "not running in a pod: KUBERNETES_SERVICE_HOST/PORT or the service account token "
      .. "is missing"), 0)
  end
  if opts.namespace then r.namespace = opts.namespace end
  return make(r, tls, {cache_dir = opts.cache_dir})
end

-- what the selected opsh environment says: kubeconfig path and context (aks.kubeconfig, aks.context,
-- else the context named like aks.cluster, as `az aks get-credentials` names it) and its namespace
local function from_env()
  local envmod = require("opsh.env")
  if not envmod.selected_name() then return nil end
  local ok, env = pcall(envmod.current)
  if not ok then error(env, 0) end
  local aks = env.aks or {}
  return {kubeconfig = aks.kubeconfig, context = aks.context or aks.cluster, namespace = env.namespace,
    env = env.name, strict = aks.context == nil}
end

--- client([{kubeconfig=, context=, namespace=, cache_dir=, discovery_ttl=, field_manager=}]) -> client.
-- Without kubeconfig/context: the selected environment's (--env), else KUBECONFIG / ~/.kube/config's
-- current context, else the pod's service account (in-cluster).
function M.client(opts)
  opts = check_opts(opts, "client")
  local want = {kubeconfig = opts.kubeconfig, context = opts.context, namespace = opts.namespace}
  if not want.kubeconfig then
    local e = from_env()
    if e then
      -- the environment's kubeconfig; its context and namespace unless the call names another context
      want.kubeconfig = e.kubeconfig
      if not want.context then
        want.context, want.env = e.context, e.env
        want.namespace = want.namespace or e.namespace
      end
    end
  end
  local cfg, files = kubeconfig.load(want.kubeconfig)
  if #files == 0 and not want.context then
    local r, tls = credentials.in_cluster()
    if r then
      if want.namespace then r.namespace = want.namespace end
      return make(r, tls, opts)
    end
  end
  if want.env and want.context and not cfg.contexts[want.context] then
    error(core.error("config", string.format("environment %s: context '%s' is not in the kubeconfig (%s); "
      .. "run az aks get-credentials, or set aks.kubeconfig / aks.context", want.env, want.context,
      #files > 0 and table.concat(files, ":") or "no file found"), {context = want.context}), 0)
  end
  local r = kubeconfig.resolve(cfg, want)
  return make(r, credentials.for_user(r), opts)
end

--- contexts([kubeconfig]) -> {{name=, cluster=, user=, namespace=, current=}} of the merged kubeconfig
function M.contexts(path)
  local cfg = kubeconfig.load(path)
  local out = {}
  for _, name in ipairs(kubeconfig.contexts(cfg)) do
    local c = cfg.contexts[name].context or {}
    out[#out + 1] = {name = name, cluster = c.cluster, user = c.user, namespace = c.namespace,
      current = name == cfg.current}
  end
  return out
end

-- ---- the default client, one per context ----

local clients = {}

--- default([{context=, namespace=}]) -> the client module-level calls use (made once per context)
function M.default(opts)
  local key = opts and opts.context or ""
  local c = clients[key]
  if not c then
    c = M.client(opts and opts.context and {context = opts.context} or nil)
    clients[key] = c
  end
  if opts and opts.namespace then c = c:with{namespace = opts.namespace} end
  return c
end

--- reset(): forget the default clients (after changing KUBECONFIG or the environment)
function M.reset() clients = {} end

-- a call's options may name another context: the default client of that context serves it
local function pick(args)
  for i = 1, args.n do
    local a = args[i]
    if type(a) == "table" and a.kind == nil and rawget(a, "context") ~= nil and getmetatable(a) == nil then
      local copy = {}
      for k, v in pairs(a) do if k ~= "context" then copy[k] = v end end
      args[i] = copy
      return M.default{context = a.context}
    end
  end
  return M.default()
end

for _, name in ipairs({"get", "list", "iter", "create", "replace", "patch", "delete", "delete_collection", "status",
  "evict", "watch", "log", "scale", "apply", "pods", "rollout_restart", "rollout_status", "set_hpa", "top_nodes",
  "top_pods", "certificates", "node_conditions", "events", "resource", "resources", "discover"}) do
  M[name] = function(...)
    local args = table.pack(...)
    local c = pick(args)
    return c[name](c, table.unpack(args, 1, args.n))
  end
end

--- is(err, reason_or_code) -> does the error say that (is(err, "NotFound"), is(err, 409))?
M.is = errors.is

--- retry_conflict(fn [, attempts = 5]) -> fn's results; fn runs again after a 409 Conflict
M.retry_conflict = client.retry_conflict

--- selector{app = "web"} -> "app=web"
M.selector = client.selector

return M
