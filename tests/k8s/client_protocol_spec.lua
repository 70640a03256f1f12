-- opsh.k8s against a small scripted API server (opsh.server, HTTPS on 127.0.0.1) for what a twin
-- does not do on cue: an exec plugin's credential refused (401) and the plugin run again, list
-- chunking, a watch dropped then expired (410) and relisted, 409 on the scale subresource retried,
-- 429 with Retry-After on PATCH, Status errors, dry-run's dryRun=All and its record.
local opsh = require("opsh")
local fs = require("opsh.fs")
local json = require("opsh.json")
local server = require("opsh.server")
local dryrun = require("opsh.dryrun")
local k8s = require("opsh.k8s")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/k8s"
local S = dofile(here .. "/../support/helpers.lua")

local AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

local function res(name, kind, group, version, extra)
  local r = {resource = name, responseKind = {group = group, version = version, kind = kind}, scope = "Namespaced",
    singularResource = kind:lower(), verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}}
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function status(code, reason, message)
  return {status = code, json = {kind = "Status", apiVersion = "v1", status = "Failure", code = code, reason = reason,
    message = message, details = {name = "x"}}}
end

describe("opsh.k8s protocol", function()
  local tmp, srv, kc, log, state

  local function fresh_state()
    state = {pods = {}, watch_calls = 0, scale_puts = 0, patch_calls = 0, rv = 100}
    for i = 1, 7 do
      state.pods[i] = {metadata = {name = string.format("web-%d", i), namespace = "prod", resourceVersion = tostring(i)}}
    end
    state.pods[3].status = {phase = "Running", containerStatuses = {{name = "main", ready = true, restartCount = 4,
      state = {running = {}}, lastState = {terminated = {reason = "OOMKilled"}}}}}
    state.pods[5].status = {phase = "Pending", containerStatuses = {{name = "main", ready = false, restartCount = 0,
      state = {waiting = {reason = "ImagePullBackOff"}}}}}
  end

  lazy_setup(function()
    tmp = fs.tmpdir("opsh-k8s-proto")
    local certs = S.server_certs(tmp)
    srv = server.listen{tls = {cert = certs.cert, key = certs.key}}
    log = {}
    fresh_state()
    local function authed(req)
      log[#log + 1] = {method = req.method, path = req.path, query = req.query, auth = req.headers.authorization,
        ct = req.headers["content-type"], body = req.body}
      return req.headers.authorization == "Bearer tok-2" or req.headers.authorization == "Bearer static"
    end
    srv:handle(function(req)
      if not authed(req) then return status(401, "Unauthorized", "Unauthorized") end
      local p, q = req.path, req.query
      if p == "/api" then
        return {status = 200, headers = {["Content-Type"] = AGG}, body = json.encode({kind = "APIGroupDiscoveryList",
          items = {{metadata = {name = ""}, versions = {{version = "v1", resources = {
            res("pods", "Pod", "", "v1", {shortNames = {"po"}}), res("configmaps", "ConfigMap", "", "v1", {shortNames = {"cm"}}),
            res("nodes", "Node", "", "v1", {scope = "Cluster", shortNames = {"no"}}), res("secrets", "Secret", "", "v1"),
            res("events", "Event", "", "v1", {shortNames = {"ev"}})}}}}}})}
      elseif p == "/apis" then
        return {status = 200, headers = {["Content-Type"] = AGG}, body = json.encode({kind = "APIGroupDiscoveryList",
          items = {{metadata = {name = "apps"}, versions = {{version = "v1", resources = {
            res("deployments", "Deployment", "apps", "v1", {shortNames = {"deploy"}, subresources = {{subresource = "scale",
              responseKind = {group = "autoscaling", version = "v1", kind = "Scale"}, verbs = {"get", "update"}}}})}}}},
            -- an older server: autoscaling/v1 only
            {metadata = {name = "autoscaling"}, versions = {{version = "v1", resources = {
              res("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v1", {shortNames = {"hpa"}})}}}},
            {metadata = {name = "metrics.k8s.io"}, versions = {{version = "v1beta1", resources = {
              res("pods", "PodMetrics", "metrics.k8s.io", "v1beta1"),
              res("nodes", "NodeMetrics", "metrics.k8s.io", "v1beta1", {scope = "Cluster"})}}}},
            {metadata = {name = "cert-manager.io"}, versions = {{version = "v1", resources = {
              res("certificates", "Certificate", "cert-manager.io", "v1", {shortNames = {"cert"}})}}}}}})}
      elseif p == "/api/v1/nodes" then
        local function node(name, ready, mem)
          return {metadata = {name = name}, status = {allocatable = {cpu = "4", memory = "16Gi"},
            nodeInfo = {kubeletVersion = "v1.32.4"}, conditions = {{type = "Ready", status = ready},
              {type = "MemoryPressure", status = mem, reason = mem == "True" and "KubeletHasInsufficientMemory" or nil},
              {type = "DiskPressure", status = "False"}}}}
        end
        return {kind = "NodeList", metadata = {}, items = {node("n1", "True", "False"), node("n2", "False", "True")}}
      elseif p == "/apis/metrics.k8s.io/v1beta1/nodes" then
        return {kind = "NodeMetricsList", items = {{metadata = {name = "n1"}, usage = {cpu = "500m", memory = "1Gi"}},
          {metadata = {name = "n2"}, usage = {cpu = "2", memory = "8Gi"}}}}
      elseif p == "/apis/cert-manager.io/v1/namespaces/prod/certificates" then
        local function cert(name, days, ready)
          return {metadata = {name = name, namespace = "prod"}, spec = {secretName = name .. "-tls"},
            status = {notAfter = require("opsh.time").format(os.time() + days * 86400 + 3600),
              conditions = {{type = "Ready", status = ready, message = "ok"}}}}
        end
        return {kind = "CertificateList", metadata = {}, items = {cert("healthy", 80, "True"), cert("soon", 5, "True"),
          cert("broken", 60, "False")}}
      elseif p == "/api/v1/namespaces/prod/events" then
        state.events_query = q
        return {kind = "EventList", metadata = {}, items = {
          {metadata = {namespace = "prod"}, type = "Warning", reason = "BackOff", message = "back-off restarting",
            lastTimestamp = "2026-12-01T10:05:00Z", count = 3, involvedObject = {kind = "Pod", name = "web-3"}},
          {metadata = {namespace = "prod"}, type = "Normal", reason = "Pulled", message = "pulled",
            lastTimestamp = "2026-12-01T10:00:00Z", involvedObject = {kind = "Pod", name = "web-3"}}}}
      elseif p == "/apis/apps/v1/namespaces/prod/deployments/web" then
        if req.method == "PATCH" then state.restart = {ct = req.headers["content-type"], body = req:json(), q = q} end
        return {metadata = {name = "web", generation = 2, resourceVersion = "50"}, spec = {replicas = 2},
          status = {observedGeneration = 1}}
      elseif p == "/apis/apps/v1/namespaces/prod/deployments" and q.watch == "true" then
        state.rollout_watch = q
        local out = req:stream(200, {["Content-Type"] = "application/json"})
        local function ev(st, rv)
          out:write(json.encode({type = "MODIFIED", object = {metadata = {name = "web", generation = 2, resourceVersion = rv},
            spec = {replicas = 2}, status = st}}) .. "\n")
        end
        ev({observedGeneration = 2, updatedReplicas = 1, replicas = 3, availableReplicas = 2}, "51")
        ev({observedGeneration = 2, updatedReplicas = 2, replicas = 3, availableReplicas = 2}, "52")
        ev({observedGeneration = 2, updatedReplicas = 2, replicas = 2, availableReplicas = 1}, "53")
        ev({observedGeneration = 2, updatedReplicas = 2, replicas = 2, availableReplicas = 2}, "54")
        opsh.sleep(5)
        out:close()
        return
      elseif p:match("^/api/v1/namespaces/[^/]+/configmaps/applied") and req.method == "PATCH" then
        state.applied = state.applied or {}
        state.applied[#state.applied + 1] = {path = p, ct = req.headers["content-type"], q = q, body = req:json()}
        return req:json()
      elseif p == "/apis/autoscaling/v1/namespaces/prod/horizontalpodautoscalers/web-hpa" then
        state.hpa = state.hpa or {apiVersion = "autoscaling/v1", kind = "HorizontalPodAutoscaler",
          metadata = {name = "web-hpa", resourceVersion = "5"}, spec = {minReplicas = 2, maxReplicas = 6,
          targetCPUUtilizationPercentage = 80}}
        if req.method == "PATCH" then
          state.hpa_patch = req:json()
          for k, v in pairs(state.hpa_patch.spec) do state.hpa.spec[k] = v end
        end
        return state.hpa
      elseif p == "/apis/metrics.k8s.io/v1beta1/namespaces/prod/pods" then
        local function pm(name, cpu, mem) return {metadata = {name = name, namespace = "prod"},
          containers = {{name = "main", usage = {cpu = cpu, memory = mem}}, {name = "side", usage = {cpu = "1m", memory = "1Mi"}}}} end
        return {kind = "PodMetricsList", items = {pm("a", "250m", "100Mi"), pm("b", "1200000n", "2Gi"), pm("c", "1", "512Ki")}}
      elseif p == "/api/v1/namespaces/prod/pods/web-1/log" then
        state.log_query = q
        return {status = 200, headers = {["Content-Type"] = "text/plain"}, body = "line one\nline two\n"}
      elseif p == "/api/v1/namespaces/prod/pods/web-1/eviction" then
        state.eviction = req:json()
        return {status = 201, json = {kind = "Status", status = "Success", code = 201}}
      elseif p == "/api/v1/namespaces/prod/pods" and q.watch == "true" then
        state.watch_calls = state.watch_calls + 1
        local n = state.watch_calls
        local out = req:stream(200, {["Content-Type"] = "application/json"})
        if n == 1 then
          out:write(json.encode({type = "ADDED", object = {metadata = {name = "web-8", resourceVersion = "11"}}}) .. "\n")
          error("dropped on purpose")       -- the connection breaks mid-stream
        elseif n == 2 then
          state.resumed_from = q.resourceVersion
          out:write(json.encode({type = "ERROR", object = {kind = "Status", code = 410, reason = "Expired",
            message = "too old resource version"}}) .. "\n")
        else
          state.after_relist = q.resourceVersion
          out:write(json.encode({type = "MODIFIED", object = {metadata = {name = "web-1", resourceVersion = "201"}}}) .. "\n")
          opsh.sleep(5)
        end
        out:close()
        return
      elseif (p == "/api/v1/namespaces/prod/pods" or p == "/api/v1/pods") and req.method == "GET" then
        local limit, start = tonumber(q.limit) or 1000, tonumber(q.continue) or 1
        local items = {}
        for i = start, math.min(#state.pods, start + limit - 1) do items[#items + 1] = state.pods[i] end
        local nxt = start + limit <= #state.pods and tostring(start + limit) or nil
        state.rv = state.rv + 100
        return {kind = "PodList", apiVersion = "v1", metadata = {resourceVersion = tostring(state.rv), continue = nxt},
          items = json.array(items)}
      elseif p == "/apis/apps/v1/namespaces/prod/deployments/web/scale" then
        if req.method == "GET" then
          return {kind = "Scale", apiVersion = "autoscaling/v1", metadata = {name = "web", resourceVersion =
            tostring(10 + state.scale_puts)}, spec = {replicas = 2}, status = {replicas = 2}}
        end
        state.scale_puts = state.scale_puts + 1
        if state.scale_puts == 1 then
          return status(409, "Conflict", 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified')
        end
        return req:json()
      elseif p == "/api/v1/namespaces/prod/configmaps/old" and q.dryRun then
        return status(400, "BadRequest", "the dryRun feature is disabled")
      elseif p == "/api/v1/namespaces/prod/configmaps/x" and req.method == "PATCH" then
        state.patch_calls = state.patch_calls + 1
        if state.patch_calls == 1 then
          return {status = 429, headers = {["Retry-After"] = "0"}, body = "Too many requests, please try again later."}
        end
        return {kind = "ConfigMap", metadata = {name = "x"}, data = req:json().data}
      elseif p == "/apis/apps/v1/namespaces/prod/deployments/nope" then
        return status(404, "NotFound", 'deployments.apps "nope" not found')
      elseif (p == "/api/v1/namespaces/prod/configmaps" or p == "/api/v1/namespaces/prod/secrets") and req.method == "POST" then
        return {status = 201, json = req:json()}
      end
      return status(404, "NotFound", "the server could not find the requested resource")
    end)
    kc = function(user)
      return string.format([[
apiVersion: v1
kind: Config
current-context: t
clusters:
- name: t
  cluster: {server: "%s", certificate-authority-data: %s}
contexts:
- name: t
  context: {cluster: t, user: u, namespace: prod}
users:
- name: u
  user:
%s
]], srv.url:gsub("127%.0%.0%.1", "localhost"), require("opsh.crypto").base64_encode(fs.read(certs.ca)), user)
    end
  end)

  lazy_teardown(function()
    srv:close()
    fs.rmtree(tmp)
  end)

  before_each(function()
    fresh_state()
    for i = #log, 1, -1 do log[i] = nil end
  end)

  local function client()
    return k8s.from_kubeconfig(kc("    token: static"), {cache_dir = false})
  end

  it("runs the exec plugin again when its credential is refused, once", function()
    local plugin = tmp .. "/plugin.sh"
    fs.write(plugin, '#!/bin/sh\nn=$(cat "$D/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$D/n"\n'
      .. [[printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"tok-%s"}}' $n]] .. "\n")
    fs.chmod(plugin, tonumber("755", 8))
    local c = k8s.from_kubeconfig(kc(string.format([=[
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: %s
      env: [{name: D, value: %s}]]=], plugin, tmp)), {cache_dir = false})
    local pods = opsh.parallel({1, 2, 3}, function() return #c:list("pods").items end)
    assert.are.same({7, 7, 7}, pods)
    assert.are.equal("2", fs.read(tmp .. "/n"):match("%d+"))
    assert.are.equal("Bearer tok-1", log[1].auth)
  end)

  it("lists in chunks and iterates a page at a time", function()
    local c = client()
    local l = c:list("po", {limit = 3})
    assert.are.equal(7, #l.items)
    assert.are.equal("web-7", l.items[7].metadata.name)
    local pages = {}
    for _, r in ipairs(log) do
      if r.path == "/api/v1/namespaces/prod/pods" then pages[#pages + 1] = (r.query.continue or "-") .. "/" .. r.query.limit end
    end
    assert.are.same({"-/3", "4/3", "7/3"}, pages)
    local names = {}
    for p in c:iter("pods", {limit = 2, label_selector = {app = "web"}}) do names[#names + 1] = p.metadata.name end
    assert.are.equal(7, #names)
    assert.are.equal("Pod", (c:iter("pods", {limit = 2})()).kind)
    assert.are.equal("app=web", log[#log - 1].query.labelSelector)
  end)

  it("prints lists at the REPL as kubectl tables, and keeps their JSON the API's", function()
    local c = client()
    local l = c:list("pods")
    local text = require("opsh.repl.pretty").pretty(l)
    assert.matches("^NAME%s+READY%s+STATUS%s+RESTARTS%s+AGE\nweb%-1%s+0/0%s+Unknown%s+0%s+<unknown>", text)
    local doc = json.decode(json.encode(l))
    assert.are.same({"apiVersion", "items", "kind", "metadata"}, (function()
      local keys = {}
      for k in pairs(doc) do keys[#keys + 1] = k end
      table.sort(keys)
      return keys
    end)())
    local all = require("opsh.repl.pretty").pretty(c:list("pods", {all_namespaces = true}))
    assert.matches("^NAMESPACE%s+NAME", all)
  end)

  it("resumes a dropped watch from the last resourceVersion, and relists on 410", function()
    local c = client()
    local events = {}
    local got = c:watch("pods", {resource_version = "10"}, function(ev)
      events[#events + 1] = ev.type .. ":" .. (ev.object and ev.object.metadata.name or #ev.items)
      if ev.type == "MODIFIED" then return "stopped" end
    end)
    assert.are.equal("stopped", got)
    assert.are.same({"ADDED:web-8", "RELIST:7", "MODIFIED:web-1"}, events)
    assert.are.equal("11", state.resumed_from)
    assert.are.equal(tostring(state.rv), state.after_relist)
    assert.are.equal(3, state.watch_calls)
  end)

  it("retries the scale update after a 409 Conflict, re-reading the Scale", function()
    local c = client()
    local s = c:scale("deploy", "web", 5)
    assert.are.equal(5, s.spec.replicas)
    assert.are.equal(2, state.scale_puts)
    local puts = {}
    for _, r in ipairs(log) do if r.method == "PUT" then puts[#puts + 1] = json.decode(r.body).metadata.resourceVersion end end
    assert.are.same({"10", "11"}, puts)
  end)

  it("sends a PATCH again after 429 with Retry-After, with its content type", function()
    local c = client()
    local cm = c:patch("cm", "x", {data = {a = "1"}})
    assert.are.same({a = "1"}, cm.data)
    assert.are.equal(2, state.patch_calls)
    assert.are.equal("application/merge-patch+json", log[#log].ct)
    c:patch("cm", "x", {{op = "add", path = "/data/b", value = "2"}}, {type = "json"})
    assert.are.equal("application/json-patch+json", log[#log].ct)
    c:patch("cm", "x", {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "x"}}, {type = "apply"})
    assert.are.equal("application/apply-patch+yaml", log[#log].ct)
    assert.are.equal("opsh", log[#log].query.fieldManager)
    assert.are.equal("true", log[#log].query.force)
  end)

  it("patches an HPA through autoscaling/v1 when the server has no v2", function()
    local c = client()
    local h = c:set_hpa("web-hpa", {min = 3, max = 9, cpu = 70})
    assert.are.same({minReplicas = 3, maxReplicas = 9, targetCPUUtilizationPercentage = 70}, state.hpa_patch.spec)
    assert.are.equal("5", state.hpa_patch.metadata.resourceVersion)
    assert.are.equal(9, h.spec.maxReplicas)
  end)

  it("tops pods in kubectl's units and order; reads logs with kubectl's query; evicts", function()
    local c = client()
    local rows = c:top_pods{sort_by = "cpu"}
    local got = {}
    for i, r in ipairs(rows) do got[i] = r.name .. " " .. r.cpu_cores .. " " .. r.memory_bytes end
    assert.are.same({"c 1001m 1Mi", "a 251m 101Mi", "b 3m 2049Mi"}, got)
    rows = c:top_pods{sort_by = "memory"}
    assert.are.same({"b", "a", "c"}, {rows[1].name, rows[2].name, rows[3].name})
    assert.are.same({"name", "cpu_cores", "memory_bytes"}, rows.columns)
    assert.are.equal("line one\nline two\n", c:log("web-1", {tail = 5, since = "10m", timestamps = true,
      container = "main", previous = true}))
    assert.are.same({tailLines = "5", sinceSeconds = "600", timestamps = "true", container = "main", previous = "true"},
      state.log_query)
    local lines = {}
    c:log("web-1", {on_line = function(l) lines[#lines + 1] = l end})
    assert.are.same({"line one", "line two"}, lines)
    c:evict("web-1")
    assert.are.same({apiVersion = "policy/v1", kind = "Eviction", metadata = {name = "web-1", namespace = "prod"}},
      state.eviction)
  end)

  it("finds pods by reason with restarts, and phase as a field selector", function()
    local c = client()
    local oom = c:pods{reason = "OOMKilled"}
    assert.are.equal(1, #oom)
    assert.are.equal("web-3", oom[1].name)
    assert.are.equal(4, oom[1].restarts)
    assert.are.equal("Running", oom[1].status)
    assert.are.equal("ImagePullBackOff", c:pods{reason = "ImagePullBackOff"}[1].status)
    c:pods{phase = "Failed"}
    assert.are.equal("status.phase=Failed", log[#log].query.fieldSelector)
  end)

  it("restarts a rollout as kubectl does and follows its status to the end", function()
    local c = client()
    c:rollout_restart("web")
    assert.are.equal("application/strategic-merge-patch+json", state.restart.ct)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$",
      state.restart.body.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"])
    local progress = {}
    local r = c:rollout_status("web", {timeout = 30, on_progress = function(m) progress[#progress + 1] = m end})
    assert.are.same({done = true, message = 'deployment "web" successfully rolled out'}, r)
    assert.are.same({"Waiting for deployment spec update to be observed...",
      'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...',
      'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
      'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...',
      'deployment "web" successfully rolled out'}, progress)
    assert.are.equal("metadata.name=web", state.rollout_watch.fieldSelector)
    assert.are.equal("50", state.rollout_watch.resourceVersion)
  end)

  it("applies multi-document YAML server-side, checking every document before sending any", function()
    local c = client()
    local rows = c:apply([[
apiVersion: v1
kind: ConfigMap
metadata: {name: applied-1}
data: {a: "1"}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: applied-2, namespace: other}
]])
    assert.are.same({"applied-1", "applied-2"}, {rows[1].name, rows[2].name})
    assert.are.equal("/api/v1/namespaces/prod/configmaps/applied-1", state.applied[1].path)
    assert.are.equal("/api/v1/namespaces/other/configmaps/applied-2", state.applied[2].path)
    assert.are.equal("application/apply-patch+yaml", state.applied[1].ct)
    assert.are.same({fieldManager = "opsh", force = "true"}, state.applied[1].q)
    assert.are.equal("prod", state.applied[1].body.metadata.namespace)
    local err = S.catch(c.apply, c, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied-3}\n---\nkind: ConfigMap\n")
    assert.are.equal("usage", err.kind)
    assert.matches("lacks apiVersion, kind or metadata.name", err.message)
    assert.are.equal(2, #state.applied)
  end)

  it("tops nodes against their allocatable; node conditions; certificates; events of an object", function()
    local c = client()
    local nodes = c:top_nodes{sort_by = "cpu"}
    assert.are.same({name = "n2", cpu = 2, memory = 8 * 2^30, cpu_cores = "2000m", cpu_percent = "50%",
      memory_bytes = "8192Mi", memory_percent = "50%"}, nodes[1])
    assert.are.equal("12%", nodes[2].cpu_percent)
    local conds = c:node_conditions()
    assert.are.equal("True", conds[1].ready)
    assert.are.equal("", conds[1].problems)
    assert.are.equal("Ready=False, MemoryPressure=True (KubeletHasInsufficientMemory)", conds[2].problems)
    local certs = c:certificates()
    assert.are.equal(3, #certs)
    local soon = c:certificates{within = 30}
    assert.are.same({"soon", "broken"}, {soon[1].name, soon[2].name})
    assert.are.equal(5, soon[1].days_left)
    local ev = c:events("pod", "web-3", {type = "Warning"})
    assert.are.equal("involvedObject.name=web-3,involvedObject.kind=Pod,type=Warning", state.events_query.fieldSelector)
    assert.are.same({"Pulled", "BackOff"}, {ev[1].reason, ev[2].reason})
    assert.are.equal("pod/web-3", ev[1].object)
  end)

  it("raises Status errors as kind k8s with reason and code; missing_ok gives nil", function()
    local c = client()
    local err = S.catch(c.get, c, "deploy", "nope")
    assert.are.equal("k8s", err.kind)
    assert.are.equal("NotFound", err.reason)
    assert.are.equal(404, err.code)
    assert.matches('deployments.apps "nope" not found', err.message)
    assert.is_true(k8s.is(err, "NotFound"))
    assert.is_nil(c:get("deployments", "nope", {missing_ok = true}))
    err = S.catch(c.get, c, "widgets")
    assert.are.equal("NotFound", err.reason)
  end)

  it("sends mutations with dryRun=All in a dry-run and records them", function()
    local c = client()
    local records, created = dryrun.with(function()
      return c:create({apiVersion = "v1", kind = "ConfigMap", metadata = {name = "new"}, data = {k = "v"}})
    end)
    assert.are.equal("new", created.metadata.name)
    assert.are.equal("All", log[#log].query.dryRun)
    assert.are.equal(1, #records)
    assert.are.equal("k8s", records[1].kind)
    assert.are.equal("POST configmaps -n prod (dryRun=All)", records[1].action)
    assert.are.equal(201, records[1].request.server_status)
    -- a server that cannot dry-run: recorded, not sent again
    local calls = #log
    local recs, r = dryrun.with(function() return c:patch("cm", "old", {data = {a = "b"}}) end)
    assert.is_nil(r)
    assert.are.equal(calls + 1, #log)
    assert.are.equal("PATCH configmaps/old -n prod (not sent: the server has no dryRun)", recs[1].action)
    assert.are.same({data = {a = "b"}}, recs[1].request.body)
    -- a Secret's values stay out of the record
    recs = dryrun.with(function()
      c:create({apiVersion = "v1", kind = "Secret", metadata = {name = "db"}, data = {password = "c2VjcmV0LXB3"}})
    end)
    assert.are.same({password = "<redacted>"}, recs[1].request.body.data)
    dryrun.reset()
    c:list("pods")
    assert.is_nil(log[#log].query.dryRun)
  end)
end)
