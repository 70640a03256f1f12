-- opsh.k8s discovery without a server: aggregated (apidiscovery.k8s.io/v2) and legacy documents
-- (the shapes kubectl 1.32 accepts, ../shared/reference/kubernetes-api.md appendix A) mapped to
-- resources — plural, singular, kind, short names, group-qualified forms, CRDs, preferred versions —
-- the disk cache and its TTL, URL paths, quantities and ages.
local fs = require("opsh.fs")
local json = require("opsh.json")
local discovery = require("opsh.k8s.discovery")
local client = require("opsh.k8s.client")
local top = require("opsh.k8s.top")
local helpers = require("opsh.k8s.helpers")

local AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

local function res(doc, ct)
  return {status = doc and 200 or 404, headers = {["content-type"] = ct or "application/json"},
    json = function() return doc end}
end

local function resource(name, kind, scope, extra)
  local r = {resource = name, responseKind = {group = extra and extra.group or "", version = "v1", kind = kind},
    scope = scope or "Namespaced", singularResource = kind:lower(), verbs = {"get", "list"}}
  for k, v in pairs(extra or {}) do if k ~= "group" then r[k] = v end end
  return r
end

local aggregated_api = {kind = "APIGroupDiscoveryList", items = {{metadata = {name = ""}, versions = {{version = "v1",
  resources = {resource("pods", "Pod", nil, {shortNames = {"po"}, subresources = {
    {subresource = "log", responseKind = {group = "", version = "v1", kind = "Pod"}, verbs = {"get"}},
    {subresource = "eviction", responseKind = {group = "policy", version = "v1", kind = "Eviction"}, verbs = {"create"}}}}),
    resource("nodes", "Node", "Cluster", {shortNames = {"no"}}),
    resource("configmaps", "ConfigMap", nil, {shortNames = {"cm"}})}}}}}}
local aggregated_apis = {kind = "APIGroupDiscoveryList", items = {
  {metadata = {name = "apps"}, versions = {{version = "v1", resources = {resource("deployments", "Deployment", nil,
    {group = "apps", shortNames = {"deploy"}, subresources = {{subresource = "scale",
      responseKind = {group = "autoscaling", version = "v1", kind = "Scale"}, verbs = {"get", "patch"}}}})}}}},
  {metadata = {name = "autoscaling"}, versions = {
    {version = "v2", resources = {resource("horizontalpodautoscalers", "HorizontalPodAutoscaler", nil,
      {group = "autoscaling", shortNames = {"hpa"}})}},
    {version = "v1", resources = {resource("horizontalpodautoscalers", "HorizontalPodAutoscaler", nil,
      {group = "autoscaling", shortNames = {"hpa"}})}}}},
  {metadata = {name = "metrics.k8s.io"}, versions = {{version = "v1beta1", resources = {
    resource("nodes", "NodeMetrics", "Cluster", {group = "metrics.k8s.io"}),
    resource("pods", "PodMetrics", nil, {group = "metrics.k8s.io"})}}}},
  {metadata = {name = "cert-manager.io"}, versions = {{version = "v1", resources = {resource("certificates", "Certificate",
    nil, {group = "cert-manager.io", shortNames = {"cert", "certs"}})}}}},
}}

local legacy = {
  ["/api"] = {kind = "APIVersions", versions = {"v1"}},
  ["/apis"] = {kind = "APIGroupList", groups = {
    {name = "apps", versions = {{groupVersion = "apps/v1", version = "v1"}}, preferredVersion = {version = "v1"}},
    {name = "autoscaling", versions = {{groupVersion = "autoscaling/v1", version = "v1"},
      {groupVersion = "autoscaling/v2", version = "v2"}}, preferredVersion = {version = "v2"}}}},
  ["/api/v1"] = {kind = "APIResourceList", groupVersion = "v1", resources = {
    {name = "pods", singularName = "pod", namespaced = true, kind = "Pod", verbs = {"get"}, shortNames = {"po"}},
    {name = "pods/log", singularName = "", namespaced = true, kind = "Pod", verbs = {"get"}}}},
  ["/apis/apps/v1"] = {kind = "APIResourceList", resources = {
    {name = "deployments", singularName = "deployment", namespaced = true, kind = "Deployment", verbs = {"get"},
      shortNames = {"deploy"}, categories = {"all"}},
    {name = "deployments/scale", singularName = "", namespaced = true, group = "autoscaling", version = "v1",
      kind = "Scale", verbs = {"get", "patch"}}}},
  ["/apis/autoscaling/v1"] = {kind = "APIResourceList", resources = {{name = "horizontalpodautoscalers",
    singularName = "horizontalpodautoscaler", namespaced = true, kind = "HorizontalPodAutoscaler", shortNames = {"hpa"}}}},
  ["/apis/autoscaling/v2"] = {kind = "APIResourceList", resources = {{name = "horizontalpodautoscalers",
    singularName = "horizontalpodautoscaler", namespaced = true, kind = "HorizontalPodAutoscaler", shortNames = {"hpa"}}}},
}

-- an http client stand-in that answers from tables and counts requests
local function fake(mode)
  local f = {requests = {}}
  function f.get(_, path, opts)
    f.requests[#f.requests + 1] = path
    if mode == "aggregated" then
      assert.are.equal(discovery.ACCEPT, opts.headers.Accept)
      if path == "/api" then return res(aggregated_api, AGG) end
      if path == "/apis" then return res(aggregated_apis, AGG .. ";charset=utf-8") end
    end
    return res(legacy[path])
  end
  return f
end

describe("opsh.k8s discovery", function()
  it("reads aggregated discovery in two requests and maps every name form", function()
    local f = fake("aggregated")
    local list, mode = discovery.fetch(f)
    assert.are.equal("aggregated", mode)
    assert.are.same({"/api", "/apis"}, f.requests)
    local idx = discovery.index(list)
    local function map(name) local r = discovery.lookup(idx, name); return r and (r.group .. "/" .. r.version .. "/" .. r.resource) end
    for _, n in ipairs({"pods", "pod", "po", "Pod", "PODS"}) do assert.are.equal("/v1/pods", map(n), n) end
    assert.are.equal("apps/v1/deployments", map("deploy"))
    assert.are.equal("apps/v1/deployments", map("deployments.apps"))
    assert.are.equal("apps/v1/deployments", map("Deployment"))
    assert.are.equal("autoscaling/v2/horizontalpodautoscalers", map("hpa"))
    assert.are.equal("autoscaling/v1/horizontalpodautoscalers", map("horizontalpodautoscalers.v1.autoscaling"))
    assert.are.equal("cert-manager.io/v1/certificates", map("cert"))
    assert.are.equal("cert-manager.io/v1/certificates", map("certificates.cert-manager.io"))
    assert.are.equal("/v1/configmaps", map("cm"))
    -- the core group wins a name over metrics.k8s.io; the group-qualified form reaches the metrics
    assert.are.equal("/v1/nodes", map("nodes"))
    assert.are.equal("metrics.k8s.io/v1beta1/pods", map("pods.metrics.k8s.io"))
    assert.is_nil(map("widgets"))
    local deploy = discovery.lookup(idx, "deploy")
    assert.are.same({group = "autoscaling", version = "v1", kind = "Scale", verbs = {"get", "patch"}}, deploy.subresources.scale)
    assert.are.equal("policy", discovery.lookup(idx, "po").subresources.eviction.group)
    assert.are.equal("autoscaling/v1/horizontalpodautoscalers",
      (function() local r = discovery.lookup(idx, "HorizontalPodAutoscaler", "autoscaling/v1")
        return r.group .. "/" .. r.version .. "/" .. r.resource end)())
    assert.is_false(discovery.lookup(idx, "no").namespaced)
  end)

  it("falls back to the legacy documents, fetching every group version, preferred versions winning", function()
    local f = fake("legacy")
    local list, mode = discovery.fetch(f)
    assert.are.equal("legacy", mode)
    table.sort(f.requests)
    assert.are.same({"/api", "/api/v1", "/apis", "/apis/apps/v1", "/apis/autoscaling/v1", "/apis/autoscaling/v2"},
      f.requests)
    local idx = discovery.index(list)
    assert.are.equal("v2", discovery.lookup(idx, "hpa").version)
    assert.are.equal("v1", discovery.lookup(idx, "hpa.v1.autoscaling").version)
    local d = discovery.lookup(idx, "deploy")
    assert.are.same({"all"}, d.categories)
    assert.are.equal("Scale", d.subresources.scale.kind)
    assert.are.equal("autoscaling", d.subresources.scale.group)
    assert.truthy(discovery.lookup(idx, "po").subresources.log)
  end)

  it("builds paths for namespaced, cluster-scoped and subresource URLs", function()
    local idx = discovery.index((discovery.fetch(fake("aggregated"))))
    local L = function(n) return discovery.lookup(idx, n) end
    assert.are.equal("/api/v1/namespaces/prod/pods/web-0/log", discovery.path(L("po"), "prod", "web-0", "log"))
    assert.are.equal("/api/v1/pods", discovery.path(L("po"), nil))
    assert.are.equal("/api/v1/nodes/n1", discovery.path(L("nodes"), "prod", "n1"))
    assert.are.equal("/apis/apps/v1/namespaces/p/deployments/web/scale", discovery.path(L("deploy"), "p", "web", "scale"))
  end)

  it("caches on disk for the TTL, and an unknown name refreshes a cached discovery once", function()
    local dir = fs.tmpdir("opsh-k8s-disco")
    local c = client.new{server = "https://127.0.0.1:6443", cache_dir = dir}
    local f = fake("aggregated")
    rawset(c, "http", f)
    assert.are.equal("Pod", c:resource("po").kind)
    assert.are.equal(2, #f.requests)
    local path = discovery.cache_path(dir, "https://127.0.0.1:6443")
    assert.are.equal(dir .. "/127.0.0.1_6443.json", path)
    assert.truthy(fs.exists(path))
    -- a new client reads the cache: no request
    local c2 = client.new{server = "https://127.0.0.1:6443", cache_dir = dir}
    local f2 = fake("aggregated")
    rawset(c2, "http", f2)
    assert.are.equal("Deployment", c2:resource("deploy").kind)
    assert.are.equal(0, #f2.requests)
    -- a name the cache lacks: discovery again, once, then the error
    local err = select(2, pcall(c2.resource, c2, "widgets"))
    assert.are.equal("k8s", err.kind)
    assert.are.equal("NotFound", err.reason)
    assert.are.equal('the server doesn\'t have a resource type "widgets"', err.message)
    assert.are.equal(2, #f2.requests)
    -- past the TTL the cache is not used
    local c3 = client.new{server = "https://127.0.0.1:6443", cache_dir = dir, discovery_ttl = -1}
    local f3 = fake("aggregated")
    rawset(c3, "http", f3)
    c3:resource("po")
    assert.are.equal(2, #f3.requests)
    fs.rmtree(dir)
  end)

  it("parses quantities and prints kubectl's ages", function()
    assert.are.equal(0.25, top.quantity("250m"))
    assert.are.equal(1024, top.quantity("1Ki"))
    assert.are.equal(1.5 * 2^30, top.quantity("1.5Gi"))
    assert.are.equal(2000, top.quantity("2e3"))
    assert.are.equal(2, top.quantity("2"))
    assert.is_true(math.abs(top.quantity("1000n") - 1e-6) < 1e-15)
    assert.is_nil(top.quantity("lots"))
    local now = 1700000000
    local ts = function(ago) return require("opsh.time").format(now - ago) end
    assert.are.equal("45s", helpers.age(ts(45), now))
    assert.are.equal("5m10s", helpers.age(ts(310), now))
    assert.are.equal("3h", helpers.age(ts(3 * 3600 + 100), now))
    assert.are.equal("3d2h", helpers.age(ts(74 * 3600), now))
    assert.are.equal("40d", helpers.age(ts(40 * 86400), now))
    assert.are.equal("<unknown>", helpers.age(json.null, now))
  end)

  it("summarises pods as kubectl's STATUS column does, with every reason and restarts", function()
    local s = helpers.pod_summary({metadata = {name = "ai-0", namespace = "production"},
      spec = {containers = {{name = "main"}, {name = "side"}}},
      status = {phase = "Running", containerStatuses = {
        {name = "main", ready = false, restartCount = 7, state = {waiting = {reason = "CrashLoopBackOff"}},
          lastState = {terminated = {reason = "OOMKilled"}}},
        {name = "side", ready = true, restartCount = 1, state = {running = {}}}}}})
    assert.are.equal("CrashLoopBackOff", s.status)
    assert.are.equal("1/2", s.ready)
    assert.are.equal(8, s.restarts)
    assert.are.same({"CrashLoopBackOff", "OOMKilled"}, s.reasons)
    s = helpers.pod_summary({metadata = {name = "x"}, status = {phase = "Failed", reason = "Evicted"}})
    assert.are.equal("Evicted", s.status)
  end)
end)
