-- opsh.twin.k8s.tables: `Table` answers (Accept: application/json;as=Table;v=v1;g=meta.k8s.io) with the
-- columns kube-apiserver's printers give, so `kubectl get` (and -o wide) prints what a real cluster prints.
local json = require("opsh.json")
local time = require("opsh.time")

local M = {}

--- human(seconds) -> "5m", "3d4h" (apimachinery's HumanDuration)
function M.human(s)
  s = math.floor(s)
  if s < -1 then return "<invalid>" end
  if s < 0 then return "0s" end
  if s < 120 then return s .. "s" end
  local m = s // 60
  if m < 10 then
    local r = s % 60
    return r == 0 and (m .. "m") or string.format("%dm%ds", m, r)
  end
  if m < 180 then return m .. "m" end
  local h = s // 3600
  if h < 8 then
    local r = m % 60
    return r == 0 and (h .. "h") or string.format("%dh%dm", h, r)
  end
  if h < 48 then return h .. "h" end
  if h < 24 * 8 then
    local r = h % 24
    return r == 0 and ((h // 24) .. "d") or string.format("%dd%dh", h // 24, r)
  end
  if h < 24 * 365 * 2 then return (h // 24) .. "d" end
  if h < 24 * 365 * 8 then
    local d = (h // 24) % 365
    return d == 0 and ((h // 24 // 365) .. "y") or string.format("%dy%dd", h // 24 // 365, d)
  end
  return (h // 24 // 365) .. "y"
end

local function age(ts, now)
  if type(ts) ~= "string" then return "<unknown>" end
  local ok, t = pcall(time.parse, ts)
  if not ok then return "<unknown>" end
  return M.human(now - t)
end
M.age = age

local function col(name, typ, priority, format, desc)
  return {name = name, type = typ or "string", format = format or "", description = desc or name, priority = priority or 0}
end

local NAME = col("Name", "string", 0, "name", "Name must be unique within a namespace.")
local AGE = col("Age", "string", 0, "", "CreationTimestamp is a timestamp representing the server time when this object was created.")

local function join(list, sep) return #list > 0 and table.concat(list, sep or ",") or "<none>" end

local function selector_string(sel)
  if type(sel) ~= "table" then return "<none>" end
  local parts = {}
  for k, v in pairs(sel.matchLabels or sel) do if type(v) == "string" then parts[#parts + 1] = k .. "=" .. v end end
  table.sort(parts)
  return join(parts)
end
M.selector_string = selector_string

local function containers(o)
  local names, images = {}, {}
  local spec = o.spec and o.spec.template and o.spec.template.spec or {}
  for _, c in ipairs(spec.containers or {}) do names[#names + 1] = c.name; images[#images + 1] = c.image end
  return join(names), join(images)
end

-- pod STATUS as kubectl's printer computes it (reason of a waiting/terminated container wins)
function M.pod_status(o)
  local st = o.status or {}
  local reason = st.reason or st.phase or "Unknown"
  for _, cs in ipairs(st.containerStatuses or {}) do
    local s = cs.state or {}
    if s.waiting and s.waiting.reason and s.waiting.reason ~= "" then reason = s.waiting.reason
    elseif s.terminated and s.terminated.reason and s.terminated.reason ~= "" then reason = s.terminated.reason
    elseif s.terminated then reason = s.terminated.signal and ("Signal:" .. s.terminated.signal) or ("ExitCode:" .. tostring(s.terminated.exitCode)) end
  end
  if o.metadata.deletionTimestamp then reason = "Terminating" end
  return reason
end

local printers = {}

printers.Pod = {
  columns = {NAME, col("Ready", "string", 0, "", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", 0, "", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", 0, "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE, col("IP", "string", 1, "", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    col("Node", "string", 1, "", "Name of the node this pod is scheduled on."),
    col("Nominated Node", "string", 1, "", "Name of the node where this pod was nominated."),
    col("Readiness Gates", "string", 1, "", "Readiness gates of the pod.")},
  cells = function(o, now)
    local st = o.status or {}
    local total = #((o.spec or {}).containers or {})
    local ready, restarts, last = 0, 0, nil
    for _, cs in ipairs(st.containerStatuses or {}) do
      if cs.ready then ready = ready + 1 end
      restarts = restarts + (cs.restartCount or 0)
      local t = cs.lastState and cs.lastState.terminated and cs.lastState.terminated.finishedAt
      if t and (not last or t > last) then last = t end
    end
    local r = tostring(restarts)
    if restarts > 0 and last then r = string.format("%d (%s ago)", restarts, age(last, now)) end
    return {o.metadata.name, string.format("%d/%d", ready, total), M.pod_status(o), r,
      age(o.metadata.creationTimestamp, now), st.podIP or "<none>", (o.spec or {}).nodeName or "<none>", "<none>", "<none>"}
  end,
}

printers.Deployment = {
  columns = {NAME, col("Ready", "string", 0, "", "Number of the pod with ready state"),
    col("Up-to-date", "integer", 0, "", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "integer", 0, "", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE, col("Containers", "string", 1, "", "Names of each container in the template."),
    col("Images", "string", 1, "", "Images referenced by each container in the template."),
    col("Selector", "string", 1, "", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.")},
  cells = function(o, now)
    local st = o.status or {}
    local c, i = containers(o)
    return {o.metadata.name, string.format("%d/%d", st.readyReplicas or 0, (o.spec or {}).replicas or 0),
      st.updatedReplicas or 0, st.availableReplicas or 0, age(o.metadata.creationTimestamp, now), c, i,
      selector_string((o.spec or {}).selector)}
  end,
}

printers.ReplicaSet = {
  columns = {NAME, col("Desired", "integer", 0, "", "Number of desired pods."),
    col("Current", "integer", 0, "", "Number of actual pods."), col("Ready", "integer", 0, "", "Number of pods ready."),
    AGE, col("Containers", "string", 1, "", "Names of each container in the template."),
    col("Images", "string", 1, "", "Images referenced by each container in the template."),
    col("Selector", "string", 1, "", "Label selector for pods.")},
  cells = function(o, now)
    local st = o.status or {}
    local c, i = containers(o)
    return {o.metadata.name, (o.spec or {}).replicas or 0, st.replicas or 0, st.readyReplicas or 0,
      age(o.metadata.creationTimestamp, now), c, i, selector_string((o.spec or {}).selector)}
  end,
}

local function hpa_targets(o)
  local parts = {}
  local current = {}
  for _, m in ipairs((o.status or {}).currentMetrics or {}) do
    if m.type == "Resource" and m.resource then current[m.resource.name] = m.resource.current end
  end
  for _, m in ipairs((o.spec or {}).metrics or {}) do
    if m.type == "Resource" and m.resource then
      local t = m.resource.target or {}
      local cur = current[m.resource.name]
      local curs = cur and cur.averageUtilization and (cur.averageUtilization .. "%") or "<unknown>"
      if t.averageUtilization then
        parts[#parts + 1] = string.format("%s: %s/%d%%", m.resource.name, curs, t.averageUtilization)
      else
        parts[#parts + 1] = string.format("%s: %s/%s", m.resource.name, cur and cur.averageValue or "<unknown>",
          tostring(t.averageValue or t.value))
      end
    end
  end
  return #parts > 0 and table.concat(parts, ", ") or "<none>"
end

printers.HorizontalPodAutoscaler = {
  columns = {NAME, col("Reference", "string", 0, "", "Reference to target resource"),
    col("Targets", "string", 0, "", "Current and target metrics"),
    col("MinPods", "string", 0, "", "Minimum number of replicas"), col("MaxPods", "integer", 0, "", "Maximum number of replicas"),
    col("Replicas", "integer", 0, "", "Current number of replicas"), AGE},
  cells = function(o, now)
    local ref = (o.spec or {}).scaleTargetRef or {}
    return {o.metadata.name, (ref.kind or "") .. "/" .. (ref.name or ""), hpa_targets(o),
      tostring((o.spec or {}).minReplicas or 1), (o.spec or {}).maxReplicas or 0,
      (o.status or {}).currentReplicas or 0, age(o.metadata.creationTimestamp, now)}
  end,
}

printers.Node = {
  columns = {NAME, col("Status", "string", 0, "", "The status of the node"),
    col("Roles", "string", 0, "", "The roles of the node"), AGE,
    col("Version", "string", 0, "", "Kubelet Version reported by the node."),
    col("Internal-IP", "string", 1, "", "List of addresses reachable to the node."),
    col("External-IP", "string", 1, "", "List of addresses reachable to the node."),
    col("OS-Image", "string", 1, "", "OS image reported by the node."),
    col("Kernel-Version", "string", 1, "", "Kernel version reported by the node."),
    col("Container-Runtime", "string", 1, "", "Container runtime version reported by the node.")},
  cells = function(o, now)
    local st = o.status or {}
    local ready = "Unknown"
    for _, c in ipairs(st.conditions or {}) do
      if c.type == "Ready" then ready = c.status == "True" and "Ready" or "NotReady" end
    end
    if (o.spec or {}).unschedulable then ready = ready .. ",SchedulingDisabled" end
    local roles = {}
    for k in pairs(o.metadata.labels or {}) do
      local role = k:match("^node%-role%.kubernetes%.io/(.+)$")
      if role then roles[#roles + 1] = role end
    end
    table.sort(roles)
    local ip = "<none>"
    for _, a in ipairs(st.addresses or {}) do if a.type == "InternalIP" then ip = a.address end end
    local info = st.nodeInfo or {}
    return {o.metadata.name, ready, join(roles), age(o.metadata.creationTimestamp, now), info.kubeletVersion or "",
      ip, "<none>", info.osImage or "", info.kernelVersion or "", info.containerRuntimeVersion or ""}
  end,
}

printers.Service = {
  columns = {NAME, col("Type", "string", 0, "", "The type of service."),
    col("Cluster-IP", "string", 0, "", "The cluster IP."), col("External-IP", "string", 0, "", "The external IP."),
    col("Port(s)", "string", 0, "", "The ports of the service."), AGE,
    col("Selector", "string", 1, "", "The selector of the service.")},
  cells = function(o, now)
    local spec = o.spec or {}
    local ports = {}
    for _, p in ipairs(spec.ports or {}) do ports[#ports + 1] = string.format("%d/%s", p.port, p.protocol or "TCP") end
    local ext = "<none>"
    local ing = o.status and o.status.loadBalancer and o.status.loadBalancer.ingress
    if ing and ing[1] then ext = ing[1].ip or ing[1].hostname elseif spec.type == "LoadBalancer" then ext = "<pending>" end
    return {o.metadata.name, spec.type or "ClusterIP", spec.clusterIP or "<none>", ext, join(ports),
      age(o.metadata.creationTimestamp, now), selector_string(spec.selector)}
  end,
}

local function count(t) local n = 0; for _ in pairs(t or {}) do n = n + 1 end; return n end

printers.ConfigMap = {
  columns = {NAME, col("Data", "integer", 0, "", "Number of data entries"), AGE},
  cells = function(o, now) return {o.metadata.name, count(o.data) + count(o.binaryData), age(o.metadata.creationTimestamp, now)} end,
}

printers.Secret = {
  columns = {NAME, col("Type", "string", 0, "", "The type of the secret"), col("Data", "integer", 0, "", "Number of data entries"), AGE},
  cells = function(o, now) return {o.metadata.name, o.type or "Opaque", count(o.data), age(o.metadata.creationTimestamp, now)} end,
}

printers.Namespace = {
  columns = {NAME, col("Status", "string", 0, "", "The status of the namespace"), AGE},
  cells = function(o, now) return {o.metadata.name, (o.status or {}).phase or "Active", age(o.metadata.creationTimestamp, now)} end,
}

printers.Event = {
  columns = {col("Last Seen", "string", 0, "", "Time when last event occurred"), col("Type", "string", 0, "", "Type of event"),
    col("Reason", "string", 0, "", "Reason of the event"), col("Object", "string", 0, "", "The object this event is about"),
    col("Subobject", "string", 1, "", "The subobject this event is about"), col("Source", "string", 1, "", "The source of the event"),
    col("Message", "string", 0, "", "Message of the event"), col("First Seen", "string", 1, "", "Time when first event occurred"),
    col("Count", "string", 1, "", "Number of times the event occurred"), col("Name", "string", 1, "name", "Name of the event")},
  cells = function(o, now)
    local io_ = o.involvedObject or {}
    local last = o.lastTimestamp or o.eventTime or o.metadata.creationTimestamp
    local src = o.source and o.source.component or ""
    if o.source and o.source.host then src = src .. ", " .. o.source.host end
    return {age(last, now), o.type or "", o.reason or "", (io_.kind or ""):lower() .. "/" .. (io_.name or ""),
      io_.fieldPath or "", src, o.message or "", age(o.firstTimestamp or last, now), tostring(o.count or 1), o.metadata.name}
  end,
}

printers.Certificate = {
  columns = {NAME, col("Ready", "string", 0, "", ""), col("Secret", "string", 0, "", ""),
    col("Issuer", "string", 1, "", ""), col("Status", "string", 1, "", ""), AGE},
  cells = function(o, now)
    local ready, msg = "", ""
    for _, c in ipairs((o.status or {}).conditions or {}) do
      if c.type == "Ready" then ready, msg = c.status or "", c.message or "" end
    end
    local spec = o.spec or {}
    return {o.metadata.name, ready, spec.secretName or "", spec.issuerRef and spec.issuerRef.name or "", msg,
      age(o.metadata.creationTimestamp, now)}
  end,
}

local default = {
  columns = {NAME, col("Created At", "date", 0, "", "CreationTimestamp is a timestamp representing the server time when this object was created.")},
  cells = function(o) return {o.metadata.name, o.metadata.creationTimestamp or json.null} end,
}

local function partial(o)
  local md = o.metadata
  local pm = {name = md.name, namespace = md.namespace, uid = md.uid, resourceVersion = md.resourceVersion,
    creationTimestamp = md.creationTimestamp, labels = md.labels, annotations = md.annotations,
    generation = md.generation, ownerReferences = md.ownerReferences, deletionTimestamp = md.deletionTimestamp}
  return {kind = "PartialObjectMetadata", apiVersion = "meta.k8s.io/v1", metadata = pm}
end

--- wants(req) -> true when the client asked for a Table
function M.wants(req)
  local a = req.headers.accept
  return a ~= nil and a:find("as=Table", 1, true) ~= nil
end

--- table(kind, objects, list_meta, include) -> a Table (include: "None" | "Metadata" | "Object")
function M.table(kind, objects, list_meta, include)
  local p = printers[kind] or default
  local now = time.now()
  local rows = json.array()
  for i, o in ipairs(objects) do
    local row = {cells = json.array(p.cells(o, now))}
    if include == "Object" then row.object = o
    elseif include ~= "None" then row.object = partial(o) end
    rows[i] = row
  end
  return {kind = "Table", apiVersion = "meta.k8s.io/v1", metadata = list_meta or {},
    columnDefinitions = json.array(p.columns), rows = rows}
end

return M
