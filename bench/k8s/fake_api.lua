-- bench/k8s/fake_api.lua DIR COUNT: a minimal Kubernetes API on opsh.server for bench/k8s_list.sh
-- when the Kubernetes twin is not there: HTTPS with a bearer token, /version 1.32 (kubectl's
-- dispatcher picks its built-in 1.32), aggregated discovery of pods, namespace "production" with
-- COUNT pods shaped like the runbook's (about 2 KB of JSON each), lists with limit/continue, GET of
-- one pod. Writes DIR/kubeconfig and DIR/ready. Serves until killed.
local opsh = require("opsh")
local fs = require("opsh.fs")
local json = require("opsh.json")
local server = require("opsh.server")
local crypto = require("opsh.crypto")

local dir, count = arg[1], tonumber(arg[2] or "10000")
local ca = crypto.x509.create_ca{cn = "bench-ca"}
local leaf = crypto.x509.create_cert{ca_cert = ca.cert_pem, ca_key = ca.key_pem, cn = "localhost",
  sans = {"localhost", "127.0.0.1"}}
local TOKEN = "bench-token"
local AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

local names, bodies, index = {}, {}, {}
local apps = {"web", "gateway", "document-service", "ai-service", "task-service"}
for i = 1, count do
  local app = apps[(i - 1) % #apps + 1]
  local name = string.format("%s-%08x-%05d", app, i * 2654435761 % 2^32, i)
  local pod = {apiVersion = "v1", kind = "Pod",
    metadata = {name = name, namespace = "production", uid = string.format("%08x-0000-4000-8000-%012d", i, i),
      resourceVersion = tostring(1000 + i), creationTimestamp = "2026-11-20T10:00:00Z",
      labels = {app = app, ["pod-template-hash"] = "7d9c5f"},
      ownerReferences = {{apiVersion = "apps/v1", kind = "ReplicaSet", name = app .. "-7d9c5f", uid = "rs-" .. app,
        controller = true, blockOwnerDeletion = true}}},
    spec = {nodeName = string.format("aks-usernodepool-%d-vmss00000%d", 12345678, i % 6), restartPolicy = "Always",
      serviceAccountName = "default", terminationGracePeriodSeconds = 30,
      containers = {{name = app, image = "acrlegalproduction.azurecr.io/" .. app .. ":2026.11.3",
        ports = {{containerPort = 8080, protocol = "TCP"}},
        env = {{name = "ASPNETCORE_ENVIRONMENT", value = "Production"}, {name = "LOG_LEVEL", value = "info"}},
        resources = {requests = {cpu = "250m", memory = "512Mi"}, limits = {cpu = "1", memory = "1Gi"}},
        readinessProbe = {httpGet = {path = "/healthz", port = 8080}, periodSeconds = 10}}}},
    status = {phase = "Running", podIP = string.format("203.0.113.%d", i % 250),
      hostIP = "198.51.100.4", startTime = "2026-11-20T10:00:05Z",
      conditions = {{type = "Initialized", status = "True"}, {type = "Ready", status = "True"},
        {type = "ContainersReady", status = "True"}, {type = "PodScheduled", status = "True"}},
      containerStatuses = {{name = app, ready = true, restartCount = i % 3, started = true,
        image = "acrlegalproduction.azurecr.io/" .. app .. ":2026.11.3", imageID = "sha256:" .. string.rep("ab", 32),
        containerID = "containerd://" .. string.rep("cd", 32), state = {running = {startedAt = "2026-11-20T10:00:09Z"}}}}}}
  names[i], bodies[i], index[name] = name, json.encode(pod), i
end

local function status(code, reason, message)
  return {status = code, json = {kind = "Status", apiVersion = "v1", status = "Failure", code = code, reason = reason,
    message = message}}
end

local srv = server.listen{tls = {cert = leaf.cert_pem, key = leaf.key_pem}}
srv:handle(function(req)
  local p, q = req.path, req.query
  if p == "/version" then return {major = "1", minor = "32", gitVersion = "v1.32.4", platform = "linux/amd64"} end
  if req.headers.authorization ~= "Bearer " .. TOKEN then return status(401, "Unauthorized", "Unauthorized") end
  if p == "/api" then
    return {status = 200, headers = {["Content-Type"] = AGG}, body = json.encode({kind = "APIGroupDiscoveryList",
      apiVersion = "apidiscovery.k8s.io/v2", metadata = {}, items = {{metadata = {name = ""}, versions = {{version = "v1",
        freshness = "Current", resources = {{resource = "pods", responseKind = {group = "", version = "v1", kind = "Pod"},
          scope = "Namespaced", singularResource = "pod", shortNames = {"po"}, categories = {"all"},
          verbs = {"get", "list", "watch", "delete", "deletecollection", "create", "patch", "update"}}}}}}}})}
  elseif p == "/apis" then
    return {status = 200, headers = {["Content-Type"] = AGG}, body = json.encode({kind = "APIGroupDiscoveryList",
      apiVersion = "apidiscovery.k8s.io/v2", metadata = {}, items = json.array()})}
  elseif p == "/api/v1/namespaces/production/pods" then
    local limit = tonumber(q.limit) or count
    local start = tonumber(q.continue) or 1
    local stop = math.min(count, start + limit - 1)
    local md = {resourceVersion = "99999"}
    if stop < count then md.continue, md.remainingItemCount = tostring(stop + 1), count - stop end
    local parts = {}
    for i = start, stop do parts[#parts + 1] = bodies[i] end
    return {status = 200, headers = {["Content-Type"] = "application/json"},
      body = '{"kind":"PodList","apiVersion":"v1","metadata":' .. json.encode(md) .. ',"items":['
        .. table.concat(parts, ",") .. "]}"}
  else
    local name = p:match("^/api/v1/namespaces/production/pods/([^/]+)$")
    if name and index[name] then
      return {status = 200, headers = {["Content-Type"] = "application/json"}, body = bodies[index[name]]}
    end
  end
  return status(404, "NotFound", "the server could not find the requested resource")
end)

fs.write(dir .. "/kubeconfig", string.format([[
apiVersion: v1
kind: Config
current-context: bench
clusters:
- name: bench
  cluster: {server: "%s", certificate-authority-data: %s}
contexts:
- name: bench
  context: {cluster: bench, user: bench, namespace: production}
users:
- name: bench
  user: {token: %s}
]], srv.url, crypto.base64_encode(ca.cert_pem), TOKEN))
fs.write(dir .. "/ready", "ok\n")
srv:wait()
opsh.sleep(0)
