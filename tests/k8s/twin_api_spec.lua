-- The Kubernetes twin's API semantics, through raw HTTPS calls (opsh.http): discovery, Status errors
-- (404, 409, 415, 422), dryRun=All, the patch types, selectors, limit/continue chunking, watch events
-- (ADDED/MODIFIED/DELETED/BOOKMARK, 410 for a version older than the history), deletecollection,
-- pod logs, eviction, Tables, the failure and size knobs, and authentication.
local opsh = require("opsh")
local fs = require("opsh.fs")
local http = require("opsh.http")
local json = require("opsh.json")
local twin = require("opsh.twin")
local yaml = require("opsh.yaml")

local NS = "production"

describe("the Kubernetes twin's API", function()
  local dir, server, token, ca, client

  local function call(method, path, opts)
    opts = opts or {}
    local headers = opts.headers or {}
    if not opts.anonymous then headers.Authorization = "Bearer " .. token end
    headers.Accept = headers.Accept or "application/json"
    return http.request({method = method, url = server .. path, ca = ca, headers = headers, body = opts.body,
      query = opts.query, raise_for_status = false, retries = 0, timeout = 60, on_line = opts.on_line})
  end

  local function get(path, query) return call("GET", path, {query = query}) end

  setup(function()
    dir = fs.tmpdir("opsh-k8s-api-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    ca = dir .. "/ca/ca.pem"
    local cfg = yaml.decode(fs.read(dir .. "/api/k8s/kubeconfig"))
    server = cfg.clusters[1].cluster.server
    token = cfg.users[2].user.token
    client = twin.client(dir)
    client:put("k8s.knobs", "all", {pod_start_seconds = 0.3, bookmark_seconds = 0.3})
  end)

  teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("answers 401 without credentials, and /version as 1.32", function()
    local r = call("GET", "/api/v1/namespaces", {anonymous = true})
    assert.are.equal(401, r.status)
    assert.are.equal("Unauthorized", r:json().reason)
    local v = get("/version"):json()
    assert.are.equal("1", v.major)
    assert.are.equal("32", v.minor)
    local cert = http.get(server .. "/api/v1/namespaces", {ca = ca, cert = dir .. "/api/k8s/admin.pem", key = dir .. "/api/k8s/admin.key"})
    assert.are.equal("NamespaceList", cert:json().kind)
  end)

  it("serves aggregated discovery with its content type, and the legacy documents", function()
    local r = call("GET", "/apis", {headers = {Accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"}})
    assert.are.equal("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", r.headers["content-type"])
    local groups = {}
    for _, g in ipairs(r:json().items) do groups[g.metadata.name] = g end
    for _, g in ipairs({"apps", "autoscaling", "cert-manager.io", "metrics.k8s.io"}) do assert.truthy(groups[g], g) end
    assert.are.equal("v2", groups.autoscaling.versions[1].version)
    assert.are.equal("APIGroupList", get("/apis"):json().kind)
    local apps = get("/apis/apps/v1"):json()
    local scale
    for _, res in ipairs(apps.resources) do if res.name == "deployments/scale" then scale = res end end
    assert.are.same({"autoscaling", "v1", "Scale"}, {scale.group, scale.version, scale.kind})
    local root = get("/openapi/v3"):json()
    assert.truthy(root.paths["apis/apps/v1"].serverRelativeURL:find("^/openapi/v3/apis/apps/v1%?hash="))
  end)

  it("gives Status bodies: 404, 409 AlreadyExists and Conflict, 415, 422", function()
    local r = get("/apis/apps/v1/namespaces/production/deployments/nope")
    assert.are.equal(404, r.status)
    local st = r:json()
    assert.are.same({"Status", "NotFound", 'deployments.apps "nope" not found'}, {st.kind, st.reason, st.message})
    local cm = json.encode({apiVersion = "v1", kind = "ConfigMap", metadata = {name = "dup"}, data = {a = "1"}})
    assert.are.equal(201, call("POST", "/api/v1/namespaces/production/configmaps", {body = cm, headers = {["Content-Type"] = "application/json"}}).status)
    r = call("POST", "/api/v1/namespaces/production/configmaps", {body = cm, headers = {["Content-Type"] = "application/json"}})
    assert.are.equal(409, r.status)
    assert.are.equal("AlreadyExists", r:json().reason)
    local cur = get("/api/v1/namespaces/production/configmaps/dup"):json()
    cur.data.a = "2"
    local stale = json.decode(json.encode(cur))
    assert.are.equal(200, call("PUT", "/api/v1/namespaces/production/configmaps/dup", {body = json.encode(cur)}).status)
    stale.data.a = "3"
    r = call("PUT", "/api/v1/namespaces/production/configmaps/dup", {body = json.encode(stale)})
    assert.are.equal(409, r.status)
    assert.are.equal("Conflict", r:json().reason)
    r = call("PATCH", "/apis/cert-manager.io/v1/namespaces/production/certificates/legal-platform-tls",
      {body = '{"spec":{"renewBefore":"720h"}}', headers = {["Content-Type"] = "application/strategic-merge-patch+json"}})
    assert.are.equal(415, r.status)
    r = call("POST", "/api/v1/namespaces", {body = "k8s\0\n\x0c\n\x02v1", headers = {["Content-Type"] = "application/vnd.kubernetes.protobuf"}})
    assert.are.equal(415, r.status)
    assert.are.equal("UnsupportedMediaType", r:json().reason)
    r = call("PATCH", "/apis/apps/v1/namespaces/production/deployments/web/scale",
      {body = '{"spec":{"replicas":-1}}', headers = {["Content-Type"] = "application/merge-patch+json"}})
    assert.are.equal(422, r.status)
    assert.are.equal("Invalid", r:json().reason)
    r = call("POST", "/apis/apps/v1/namespaces/production/deployments", {body = json.encode({apiVersion = "apps/v1",
      kind = "Deployment", metadata = {name = "empty"}, spec = {selector = {matchLabels = {app = "x"}}}})})
    assert.are.equal(422, r.status)
    assert.are.equal("spec.template.spec.containers", r:json().details.causes[1].field)
  end)

  it("validates dryRun=All without persisting, and applies JSON, merge and server-side apply patches", function()
    local body = json.encode({apiVersion = "v1", kind = "ConfigMap", metadata = {name = "dry"}, data = {x = "1"}})
    assert.are.equal(201, call("POST", "/api/v1/namespaces/production/configmaps", {query = {dryRun = "All"}, body = body}).status)
    assert.are.equal(404, get("/api/v1/namespaces/production/configmaps/dry").status)
    local r = call("PATCH", "/api/v1/namespaces/production/configmaps/app-config", {body = '[{"op":"replace","path":"/data/LOG_LEVEL","value":"warn"},{"op":"remove","path":"/data/REDIS_TLS"}]',
      headers = {["Content-Type"] = "application/json-patch+json"}})
    assert.are.equal(200, r.status)
    local cm = client:get("k8s.production.configmaps", NS .. "/app-config")
    assert.are.equal("warn", cm.data.LOG_LEVEL)
    assert.is_nil(cm.data.REDIS_TLS)
    r = call("PATCH", "/api/v1/namespaces/production/configmaps/app-config", {body = '[{"op":"test","path":"/data/LOG_LEVEL","value":"info"}]',
      headers = {["Content-Type"] = "application/json-patch+json"}})
    assert.are.equal(422, r.status)
    r = call("PATCH", "/api/v1/namespaces/production/services/search", {query = {fieldManager = "ops"},
      body = json.encode({apiVersion = "v1", kind = "Service", metadata = {name = "search"}, spec = {selector = {app = "web"}, ports = {{port = 80}}}}),
      headers = {["Content-Type"] = "application/apply-patch+yaml"}})
    assert.are.equal(201, r.status)
    r = call("PATCH", "/api/v1/namespaces/production/services/search", {query = {fieldManager = "other"},
      body = json.encode({apiVersion = "v1", kind = "Service", metadata = {name = "search"}, spec = {selector = {app = "gateway"}}}),
      headers = {["Content-Type"] = "application/apply-patch+yaml"}})
    assert.are.equal(409, r.status)
    r = call("PATCH", "/api/v1/namespaces/production/services/search", {query = {fieldManager = "other", force = "true"},
      body = json.encode({apiVersion = "v1", kind = "Service", metadata = {name = "search"}, spec = {selector = {app = "gateway"}}}),
      headers = {["Content-Type"] = "application/apply-patch+yaml"}})
    assert.are.equal(200, r.status)
    assert.are.equal("gateway", client:get("k8s.production.services", NS .. "/search").spec.selector.app)
  end)

  it("selects by label and field, and pages with limit/continue at one resourceVersion", function()
    local items = get("/api/v1/namespaces/production/pods", {labelSelector = "app in (web,gateway)"}):json().items
    assert.are.equal(6, #items)
    local failed = get("/api/v1/namespaces/production/pods", {fieldSelector = "status.phase=Failed"}):json().items
    assert.are.equal(2, #failed)
    assert.are.equal(400, get("/api/v1/namespaces/production/pods", {fieldSelector = "spec.image=x"}).status)
    local all = get("/api/v1/namespaces/production/pods"):json()
    local seen, pages, tok, rv = {}, 0, nil, nil
    repeat
      local page = get("/api/v1/namespaces/production/pods", {limit = 4, continue = tok}):json()
      pages = pages + 1
      rv = rv or page.metadata.resourceVersion
      assert.are.equal(rv, page.metadata.resourceVersion)
      for _, p in ipairs(page.items) do seen[#seen + 1] = p.metadata.name end
      tok = page.metadata.continue
    until not tok or tok == ""
    assert.are.equal(#all.items, #seen)
    assert.are.equal(math.ceil(#all.items / 4), pages)
    local tbl = call("GET", "/api/v1/namespaces/production/pods", {headers = {Accept = "application/json;as=Table;v=v1;g=meta.k8s.io"}}):json()
    assert.are.equal("Table", tbl.kind)
    assert.are.equal("Ready", tbl.columnDefinitions[2].name)
  end)

  it("streams watch events from a list's resourceVersion, with bookmarks, and 410 for a too old one", function()
    local list = get("/api/v1/namespaces/production/configmaps"):json()
    local events = {}
    local watcher = opsh.spawn(function()
      call("GET", "/api/v1/namespaces/production/configmaps", {query = {watch = "true", resourceVersion = list.metadata.resourceVersion,
        allowWatchBookmarks = "true", timeoutSeconds = 20}, on_line = function(line)
          local ev = json.decode(line)
          events[#events + 1] = ev.type .. " " .. (ev.object.metadata.name or "")
          if ev.type == "BOOKMARK" and events[#events - 1] == "DELETED w1" then return false end
        end})
    end)
    opsh.sleep(0.5)
    call("POST", "/api/v1/namespaces/production/configmaps", {body = json.encode({apiVersion = "v1", kind = "ConfigMap", metadata = {name = "w1"}})})
    call("PATCH", "/api/v1/namespaces/production/configmaps/w1", {body = '{"data":{"k":"v"}}', headers = {["Content-Type"] = "application/merge-patch+json"}})
    call("DELETE", "/api/v1/namespaces/production/configmaps/w1")
    watcher:wait(30)
    local kinds_seen = {}
    for _, e in ipairs(events) do if not e:find("^BOOKMARK") then kinds_seen[#kinds_seen + 1] = e end end
    assert.are.same({"ADDED w1", "MODIFIED w1", "DELETED w1"}, kinds_seen)
    assert.truthy(events[#events]:find("^BOOKMARK"), table.concat(events, ","))
    -- more than the store's history (1,000 events) later, the first version is gone
    client:put("k8s.knobs", "production", {extra_pods = 1200})
    local deadline = require("opsh.time").monotonic() + 60
    while #get("/api/v1/namespaces/production/pods", {labelSelector = "app=load"}):json().items < 1200 do
      assert(require("opsh.time").monotonic() < deadline, "extra pods not seeded")
      opsh.sleep(0.2)
    end
    local r = get("/api/v1/namespaces/production/pods", {watch = "true", resourceVersion = "2"})
    assert.are.equal(410, r.status)
    assert.are.equal("Expired", r:json().reason)
  end)

  it("deletes collections, evicts pods and serves logs with tail and timestamps", function()
    for i = 1, 3 do
      call("POST", "/api/v1/namespaces/production/configmaps", {body = json.encode({apiVersion = "v1", kind = "ConfigMap",
        metadata = {name = "batch-" .. i, labels = {batch = "yes"}}})})
    end
    local r = call("DELETE", "/api/v1/namespaces/production/configmaps", {query = {labelSelector = "batch=yes"}})
    assert.are.equal(200, r.status)
    assert.are.equal(3, #r:json().items)
    assert.are.equal(0, #get("/api/v1/namespaces/production/configmaps", {labelSelector = "batch=yes"}):json().items)
    assert.are.equal(200, get("/api/v1/namespaces/production/configmaps/app-config").status)
    -- lowering extra_pods removes them
    client:put("k8s.knobs", "production", {extra_pods = 0})
    local deadline = require("opsh.time").monotonic() + 60
    while #get("/api/v1/namespaces/production/pods", {labelSelector = "app=load"}):json().items > 0 do
      assert(require("opsh.time").monotonic() < deadline, "extra pods not removed")
      opsh.sleep(0.2)
    end
    local pod = get("/api/v1/namespaces/production/pods", {labelSelector = "app=task-service"}):json().items[1]
    local log = get("/api/v1/namespaces/production/pods/" .. pod.metadata.name .. "/log", {tailLines = 3, timestamps = "true"})
    assert.are.equal(200, log.status)
    local n = 0
    for l in log.body:gmatch("[^\n]+") do n = n + 1; assert.truthy(l:find("^%d%d%d%d%-%d%d%-%d%dT.-Z level=")) end
    assert.are.equal(3, n)
    assert.are.equal(log.body, get("/api/v1/namespaces/production/pods/" .. pod.metadata.name .. "/log", {tailLines = 3, timestamps = "true"}).body)
    r = call("POST", "/api/v1/namespaces/production/pods/" .. pod.metadata.name .. "/eviction", {body = json.encode({apiVersion = "policy/v1",
      kind = "Eviction", metadata = {name = pod.metadata.name, namespace = NS}})})
    assert.are.equal(201, r.status)
    assert.are.equal(404, get("/api/v1/namespaces/production/pods/" .. pod.metadata.name).status)
  end)

  it("injects 429 and 5xx at a rate, and seeds 10,000 extra pods that list whole or in chunks", function()
    client:put("k8s.knobs", "production", {fail_rate = 1, fail_status = 429, retry_after = 2, fail_match = "/configmaps"})
    local r = get("/api/v1/namespaces/production/configmaps")
    assert.are.equal(429, r.status)
    assert.are.equal("2", r.headers["retry-after"])
    assert.truthy(r.body:find("Too many requests", 1, true))
    assert.are.equal(200, get("/api/v1/namespaces/production/secrets").status)
    client:put("k8s.knobs", "production", {fail_rate = 1, fail_status = 503, fail_match = "/configmaps"})
    r = get("/api/v1/namespaces/production/configmaps")
    assert.are.equal(503, r.status)
    assert.are.equal("ServiceUnavailable", r:json().reason)
    client:put("k8s.knobs", "production", {extra_pods = 10000})
    local deadline = require("opsh.time").monotonic() + 120
    local items
    repeat
      opsh.sleep(0.5)
      items = get("/api/v1/namespaces/production/pods", {labelSelector = "app=load"}):json().items
      assert(require("opsh.time").monotonic() < deadline, "10,000 pods not seeded")
    until #items == 10000
    local whole = get("/api/v1/pods"):json()
    local chunks, tok = 0, nil
    repeat
      local page = get("/api/v1/pods", {limit = 500, continue = tok}):json()
      chunks = chunks + #page.items
      tok = page.metadata.continue
    until not tok or tok == ""
    assert.are.equal(#whole.items, chunks)
    assert.is_true(#whole.items > 10000)
    client:put("k8s.knobs", "production", {extra_pods = 0})
  end)

  it("folds a Secret's stringData into data, as the apiserver does, on create and on update", function()
    local path = "/api/v1/namespaces/" .. NS .. "/secrets"
    local res = call("POST", path, {headers = {["Content-Type"] = "application/json"}, body = json.encode({
      apiVersion = "v1", kind = "Secret", metadata = {name = "folded"}, data = {a = "eA==", b = "eQ=="},
      stringData = {b = "two", c = "three"}})})
    assert.are.equal(201, res.status)
    local s = get(path .. "/folded"):json()
    assert.is_nil(s.stringData)
    assert.are.same({a = "eA==", b = "dHdv", c = "dGhyZWU="}, s.data)
    res = call("PATCH", path .. "/folded", {headers = {["Content-Type"] = "application/merge-patch+json"},
      body = json.encode({stringData = {a = "one"}})})
    assert.are.equal(200, res.status)
    s = get(path .. "/folded"):json()
    assert.is_nil(s.stringData)
    assert.are.equal("b25l", s.data.a)
  end)

  it("makes the secondary a cluster of its own under /clusters/secondary", function()
    local nodes = get("/clusters/secondary/api/v1/nodes"):json().items
    assert.are.equal(4, #nodes)
    assert.are.equal(6, #get("/api/v1/nodes"):json().items)
  end)
end)
