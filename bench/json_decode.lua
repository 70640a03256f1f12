-- bench/json_decode.lua: decode a ~50 MB Kubernetes PodList (kubectl -o json layout) with
-- opsh.json; MB/s and peak RSS, against Python's json.load on the same file in the same run.
-- Run: ./build/opsh bench/json_decode.lua [target_mb]
local json = require("opsh.json")
local core = require("opsh._core")

local target_mb = tonumber(arg and arg[1]) or 50
local runs = 3

math.randomseed(42)
local function hex(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(t)
end
local function uid() return hex(8) .. "-" .. hex(4) .. "-" .. hex(4) .. "-" .. hex(4) .. "-" .. hex(12) end
local function ts(s) return os.date("!%Y-%m-%dT%H:%M:%SZ", 1700000000 + s) end

local apps = {"api", "web", "worker", "scheduler", "ingest", "billing", "search", "notifier"}

local function container(app, i)
  return {
    name = app .. (i > 1 and "-sidecar" or ""),
    image = "contoso.azurecr.io/" .. app .. ":1." .. math.random(0, 40) .. "." .. math.random(0, 9),
    imagePullPolicy = "IfNotPresent",
    command = {"/bin/" .. app}, args = {"--port=8080", "--log-level=info", "--config=/etc/" .. app .. "/config.yaml"},
    ports = {{name = "http", containerPort = 8080, protocol = "TCP"}, {name = "metrics", containerPort = 9090, protocol = "TCP"}},
    env = {
      {name = "ASPNETCORE_ENVIRONMENT", value = "Production"},
      {name = "POD_NAME", valueFrom = {fieldRef = {apiVersion = "v1", fieldPath = "metadata.name"}}},
      {name = "DB_PASSWORD", valueFrom = {secretKeyRef = {name = app .. "-db", key = "password"}}},
      {name = "CPU_LIMIT", valueFrom = {resourceFieldRef = {resource = "limits.cpu", divisor = "1"}}},
    },
    resources = {limits = {cpu = "2", memory = "2Gi"}, requests = {cpu = "250m", memory = "512Mi"}},
    livenessProbe = {httpGet = {path = "/healthz", port = 8080, scheme = "HTTP"}, initialDelaySeconds = 10,
      timeoutSeconds = 1, periodSeconds = 10, successThreshold = 1, failureThreshold = 3},
    readinessProbe = {httpGet = {path = "/ready", port = 8080, scheme = "HTTP"}, timeoutSeconds = 1,
      periodSeconds = 5, successThreshold = 1, failureThreshold = 3},
    volumeMounts = {{name = "config", mountPath = "/etc/" .. app, readOnly = true},
      {name = "kube-api-access-" .. hex(5), mountPath = "/var/run/secrets/kubernetes.io/serviceaccount", readOnly = true}},
    terminationMessagePath = "/dev/termination-log", terminationMessagePolicy = "File",
    securityContext = {runAsNonRoot = true, runAsUser = 1000, allowPrivilegeEscalation = false,
      capabilities = {drop = {"ALL"}}, readOnlyRootFilesystem = true},
  }
end

local function pod(n)
  local app = apps[n % #apps + 1]
  local rs = app .. "-" .. hex(10)
  local name = rs .. "-" .. hex(5)
  local t0 = math.random(0, 86400 * 30)
  local ncont = n % 3 == 0 and 2 or 1
  local containers, statuses = {}, {}
  for i = 1, ncont do
    containers[i] = container(app, i)
    statuses[i] = {name = containers[i].name, ready = true, restartCount = math.random(0, 3), started = true,
      image = containers[i].image, imageID = containers[i].image .. "@sha256:" .. hex(64),
      containerID = "containerd://" .. hex(64), state = {running = {startedAt = ts(t0 + 20)}},
      lastState = {} }
  end
  return {
    apiVersion = "v1", kind = "Pod",
    metadata = {
      name = name, generateName = rs .. "-", namespace = "production", uid = uid(),
      resourceVersion = tostring(math.random(10000000, 99999999)), creationTimestamp = ts(t0),
      labels = {app = app, ["app.kubernetes.io/name"] = app, ["app.kubernetes.io/part-of"] = "contoso",
        ["pod-template-hash"] = hex(10), version = "1." .. math.random(0, 40)},
      annotations = {["kubectl.kubernetes.io/restartedAt"] = ts(t0 - 3600),
        ["prometheus.io/scrape"] = "true", ["prometheus.io/port"] = "9090",
        ["checksum/config"] = hex(64)},
      ownerReferences = {{apiVersion = "apps/v1", kind = "ReplicaSet", name = rs, uid = uid(),
        controller = true, blockOwnerDeletion = true}},
    },
    spec = {
      containers = containers,
      volumes = {{name = "config", configMap = {name = app .. "-config", defaultMode = 420}},
        {name = "kube-api-access", projected = {defaultMode = 420, sources = {
          {serviceAccountToken = {expirationSeconds = 3607, path = "token"}},
          {configMap = {name = "kube-root-ca.crt", items = {{key = "ca.crt", path = "ca.crt"}}}}}}}},
      restartPolicy = "Always", terminationGracePeriodSeconds = 30, dnsPolicy = "ClusterFirst",
      serviceAccountName = app, serviceAccount = app, nodeName = "aks-nodepool1-" .. math.random(10000000, 99999999) .. "-vmss00000" .. n % 10,
      securityContext = {fsGroup = 2000}, schedulerName = "default-scheduler",
      tolerations = {{key = "node.kubernetes.io/not-ready", operator = "Exists", effect = "NoExecute", tolerationSeconds = 300},
        {key = "node.kubernetes.io/unreachable", operator = "Exists", effect = "NoExecute", tolerationSeconds = 300}},
      priority = 0, enableServiceLinks = true, preemptionPolicy = "PreemptLowerPriority",
    },
    status = {
      phase = "Running", qosClass = "Burstable",
      conditions = {
        {type = "Initialized", status = "True", lastProbeTime = json.null, lastTransitionTime = ts(t0 + 1)},
        {type = "Ready", status = "True", lastProbeTime = json.null, lastTransitionTime = ts(t0 + 30)},
        {type = "ContainersReady", status = "True", lastProbeTime = json.null, lastTransitionTime = ts(t0 + 30)},
        {type = "PodScheduled", status = "True", lastProbeTime = json.null, lastTransitionTime = ts(t0)},
      },
      hostIP = "198.51.100." .. math.random(4, 250), podIP = "203.0.113." .. math.random(2, 250),
      podIPs = {{ip = "203.0.113." .. math.random(2, 250)}}, startTime = ts(t0), containerStatuses = statuses,
      cpuUsageRatio = math.random() * 0.8,
    },
  }
end

local function vmhwm_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
local function reset_hwm()
  local f = io.open("/proc/self/clear_refs", "w")
  if f then f:write("5"); f:close() end
end

-- generate the file (kubectl writes -o json with 4-space indentation)
local dir = os.getenv("TMPDIR") or "/tmp"
local path = string.format("%s/opsh-bench-podlist-%d.json", dir, os.time())
local items = {}
local t0 = core.hrtime()
for i = 1, 64 do items[i] = pod(i) end
local per_pod = #json.encode({items = items}, {pretty = true, indent = 4}) / 64
local n = math.ceil(target_mb * 1e6 / per_pod)
for i = 65, n do items[i] = pod(i) end
local doc = {apiVersion = "v1", kind = "List", metadata = {resourceVersion = ""}, items = items}
local te = core.hrtime()
local text = json.encode(doc, {pretty = true, indent = 4})
local encode_s = core.hrtime() - te
local f = assert(io.open(path, "wb"))
f:write(text)
f:close()
local mb = #text / 1e6
items, doc, text = nil, nil, nil
collectgarbage()
collectgarbage()
io.write(string.format("PodList: %d pods, %.1f MB (generated in %.1f s; opsh.json pretty encode %.0f MB/s)\n",
  n, mb, core.hrtime() - t0, mb / encode_s))

-- opsh: read once, decode `runs` times, best time; peak RSS across read + decode
reset_hwm()
local base_kb = vmhwm_kb()
local fh = assert(io.open(path, "rb"))
local input = fh:read("a")
fh:close()
local best = math.huge
for _ = 1, runs do
  collectgarbage()
  local t = core.hrtime()
  local v = json.decode(input)
  local dt = core.hrtime() - t
  assert(#v.items == n)
  if dt < best then best = dt end
  v = nil -- luacheck: ignore
end
local opsh_rss = vmhwm_kb()
local opsh_mbs = mb / best

-- Python's json.load on the same file, best of `runs`, its own peak RSS
local py = io.popen(string.format([[python3 -c '
import json, resource, sys, time
best = 1e9
for _ in range(%d):
    with open(sys.argv[1], "rb") as f:
        t = time.perf_counter(); v = json.load(f); dt = time.perf_counter() - t
    assert len(v["items"]) == %d
    best = min(best, dt); v = None
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as f: v = json.load(f)
enc = 1e9
for _ in range(%d):
    t = time.perf_counter(); out = json.dumps(v, indent=4, sort_keys=True); enc = min(enc, time.perf_counter() - t)
print(best, rss, enc, len(out))' %s]], runs, n, runs, path))
local py_out = py:read("a")
py:close()
os.remove(path)
local py_s, py_rss, py_enc, py_len = py_out:match("^(%S+)%s+(%d+)%s+(%S+)%s+(%d+)")
py_s, py_rss, py_enc, py_len = tonumber(py_s), tonumber(py_rss), tonumber(py_enc), tonumber(py_len)

io.write(string.format("opsh.json.decode   %7.0f MB/s  (best of %d: %.3f s)  peak RSS %4.0f MB (%.0f MB before reading)\n",
  opsh_mbs, runs, best, opsh_rss / 1024, base_kb / 1024))
if py_s then
  local py_mbs = mb / py_s
  io.write(string.format("python3 json.load  %7.0f MB/s  (best of %d: %.3f s)  peak RSS %4.0f MB\n",
    py_mbs, runs, py_s, py_rss / 1024))
  io.write(string.format("ratio opsh/python  %7.2fx\n", opsh_mbs / py_mbs))
  local py_enc_mbs = py_len / 1e6 / py_enc
  io.write(string.format("pretty encode: opsh.json %.0f MB/s, python3 json.dumps(indent=4, sort_keys) %.0f MB/s, "
    .. "ratio %.2fx\n", mb / encode_s, py_enc_mbs, mb / encode_s / py_enc_mbs))
else
  io.write("python3 json.load  (not available)\n")
end
io.write(string.format("target >= 200 MB/s: %s\n", opsh_mbs >= 200 and "met" or "NOT met"))
