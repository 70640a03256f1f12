-- opsh.twin.k8s.defaults: what the apiserver does to an object of each kind on create and update
-- (defaulting, validation with 422 causes, generation on spec changes) and the version conversions it
-- serves (HPA autoscaling/v1 <-> v2, the autoscaling/v1 Scale of a Deployment or ReplicaSet).
local json = require("opsh.json")
local patch = require("opsh.twin.k8s.patch")
local status = require("opsh.twin.k8s.status")

local M = {}

local arr = json.array

local function pod_spec_defaults(spec)
  spec.restartPolicy = spec.restartPolicy or "Always"
  spec.dnsPolicy = spec.dnsPolicy or "ClusterFirst"
  spec.schedulerName = spec.schedulerName or "default-scheduler"
  spec.terminationGracePeriodSeconds = spec.terminationGracePeriodSeconds or 30
  spec.securityContext = spec.securityContext or {}
  for _, c in ipairs(spec.containers or {}) do
    c.imagePullPolicy = c.imagePullPolicy or "IfNotPresent"
    c.terminationMessagePath = c.terminationMessagePath or "/dev/termination-log"
    c.terminationMessagePolicy = c.terminationMessagePolicy or "File"
    c.resources = c.resources or {}
  end
end
M.pod_spec_defaults = pod_spec_defaults

local function name_ok(n)
  return type(n) == "string" and #n <= 253 and n:find("^[a-z0-9][-a-z0-9.]*$") ~= nil and n:find("[a-z0-9]$") ~= nil
end

--- validate(r, obj): 422 for what the real apiserver refuses in the forms the runbook uses
function M.validate(r, obj)
  local md = obj.metadata or {}
  local causes = {}
  local function bad(field, msg, typ) causes[#causes + 1] = {field = field, message = msg, type = typ} end
  if not name_ok(md.name) then
    if md.name == nil or md.name == "" then bad("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")
    else bad("metadata.name", string.format('Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character', tostring(md.name))) end
  end
  local spec = obj.spec or {}
  if r.kind == "Deployment" or r.kind == "ReplicaSet" then
    if math.type(spec.replicas) ~= "integer" and spec.replicas ~= nil then bad("spec.replicas", "Invalid value: must be an integer")
    elseif (spec.replicas or 0) < 0 then bad("spec.replicas", string.format("Invalid value: %d: must be greater than or equal to 0", spec.replicas)) end
    local tpl = spec.template or {}
    if not (tpl.spec and tpl.spec.containers and #tpl.spec.containers > 0) then
      bad("spec.template.spec.containers", "Required value", "FieldValueRequired")
    end
    local sel = spec.selector and spec.selector.matchLabels
    if type(sel) ~= "table" or next(sel) == nil then
      bad("spec.selector", "Required value", "FieldValueRequired")
    else
      local labels = tpl.metadata and tpl.metadata.labels or {}
      for k, v in pairs(sel) do
        if labels[k] ~= v then
          bad("spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`")
          break
        end
      end
    end
  elseif r.kind == "HorizontalPodAutoscaler" then
    local minr, maxr = spec.minReplicas or 1, spec.maxReplicas
    if math.type(maxr) ~= "integer" then bad("spec.maxReplicas", "Required value", "FieldValueRequired")
    elseif maxr < minr then bad("spec.maxReplicas", string.format("Invalid value: %d: must be greater than or equal to `minReplicas`", maxr)) end
    if math.type(minr) ~= "integer" or minr < 1 then bad("spec.minReplicas", string.format("Invalid value: %s: must be greater than or equal to 1", tostring(minr))) end
  elseif r.kind == "Pod" then
    if not (spec.containers and #spec.containers > 0) then bad("spec.containers", "Required value", "FieldValueRequired") end
  elseif r.kind == "Service" then
    for i, p in ipairs(spec.ports or {}) do
      if math.type(p.port) ~= "integer" or p.port < 1 or p.port > 65535 then
        bad(string.format("spec.ports[%d].port", i - 1), "Invalid value: must be between 1 and 65535, inclusive")
      end
    end
  end
  if #causes > 0 then status.invalid(r, md.name, causes) end
end

local cluster_ip_n = 0

-- a Secret's stringData is write-only: the apiserver base64-encodes each value into data (stringData
-- wins over data for the same key) and stores no stringData
local function fold_string_data(obj)
  if type(obj.stringData) ~= "table" then obj.stringData = nil; return end
  local b64 = require("opsh.crypto").base64_encode
  if type(obj.data) ~= "table" then obj.data = {} end
  for k, v in pairs(obj.stringData) do obj.data[k] = b64(tostring(v)) end
  obj.stringData = nil
end

--- on_create(r, obj): kind defaults
function M.on_create(r, obj)
  local spec = obj.spec
  if r.kind == "Deployment" then
    spec.replicas = spec.replicas or 1
    spec.revisionHistoryLimit = spec.revisionHistoryLimit or 10
    spec.progressDeadlineSeconds = spec.progressDeadlineSeconds or 600
    spec.strategy = spec.strategy or {type = "RollingUpdate", rollingUpdate = {maxSurge = "25%", maxUnavailable = "25%"}}
    spec.template.metadata = spec.template.metadata or {}
    spec.template.metadata.creationTimestamp = json.null
    pod_spec_defaults(spec.template.spec)
    obj.status = obj.status or {}
  elseif r.kind == "Pod" then
    pod_spec_defaults(spec)
    obj.status = obj.status or {phase = "Pending", qosClass = "BestEffort"}
  elseif r.kind == "Service" then
    spec.type = spec.type or "ClusterIP"
    if not spec.clusterIP then
      cluster_ip_n = cluster_ip_n + 1
      spec.clusterIP = string.format("192.0.2.%d", 10 + cluster_ip_n % 240)
      spec.clusterIPs = arr({spec.clusterIP})
    end
    spec.sessionAffinity = spec.sessionAffinity or "None"
    for _, p in ipairs(spec.ports or {}) do p.protocol = p.protocol or "TCP"; p.targetPort = p.targetPort or p.port end
    obj.status = obj.status or {loadBalancer = {}}
  elseif r.kind == "Secret" then
    obj.type = obj.type or "Opaque"
    fold_string_data(obj)
  elseif r.kind == "Namespace" then
    obj.spec = obj.spec or {finalizers = arr({"kubernetes"})}
    obj.status = {phase = "Active"}
    obj.metadata.labels = obj.metadata.labels or {}
    obj.metadata.labels["kubernetes.io/metadata.name"] = obj.metadata.name
  elseif r.kind == "HorizontalPodAutoscaler" then
    spec.minReplicas = spec.minReplicas or 1
    if not spec.metrics then
      spec.metrics = arr({{type = "Resource", resource = {name = "cpu", target = {type = "Utilization", averageUtilization = 80}}}})
    end
  end
end

--- on_update(r, old, new): generation advances when the spec changes; status and metadata the
-- server owns are kept.
function M.on_update(r, old, new, subresource)
  local md, omd = new.metadata, old.metadata
  md.uid, md.creationTimestamp, md.namespace, md.name = omd.uid, omd.creationTimestamp, omd.namespace, omd.name
  md.generation = omd.generation or 1
  if subresource == "status" then
    new.spec = old.spec
    return
  end
  if r.kind ~= "Pod" and r.kind ~= "Node" and r.kind ~= "Namespace" and old.status ~= nil and subresource == nil then
    new.status = old.status
  end
  if new.spec ~= nil and not patch.equal(old.spec, new.spec) then md.generation = (omd.generation or 1) + 1 end
  if r.kind == "Secret" then fold_string_data(new) end
  if r.kind == "Deployment" and new.spec.template then
    new.spec.template.metadata = new.spec.template.metadata or {}
    if new.spec.template.metadata.creationTimestamp == nil then new.spec.template.metadata.creationTimestamp = json.null end
  end
end

-- ---- HPA: stored as autoscaling/v2 ----

function M.hpa_to_v1(o)
  local v1 = patch.deepcopy(o)
  v1.apiVersion = "autoscaling/v1"
  local spec = {scaleTargetRef = o.spec.scaleTargetRef, minReplicas = o.spec.minReplicas, maxReplicas = o.spec.maxReplicas}
  local others = arr()
  for _, m in ipairs(o.spec.metrics or {}) do
    if m.type == "Resource" and m.resource and m.resource.name == "cpu" and m.resource.target
        and m.resource.target.type == "Utilization" then
      spec.targetCPUUtilizationPercentage = m.resource.target.averageUtilization
    else
      others[#others + 1] = m
    end
  end
  v1.spec = spec
  local st = o.status or {}
  v1.status = {currentReplicas = st.currentReplicas or 0, desiredReplicas = st.desiredReplicas or 0,
    lastScaleTime = st.lastScaleTime, observedGeneration = st.observedGeneration}
  for _, m in ipairs(st.currentMetrics or {}) do
    if m.type == "Resource" and m.resource and m.resource.name == "cpu" and m.resource.current then
      v1.status.currentCPUUtilizationPercentage = m.resource.current.averageUtilization
    end
  end
  v1.metadata.annotations = v1.metadata.annotations or {}
  if #others > 0 then v1.metadata.annotations["autoscaling.alpha.kubernetes.io/metrics"] = json.encode(others) end
  if st.conditions then v1.metadata.annotations["autoscaling.alpha.kubernetes.io/conditions"] = json.encode(st.conditions) end
  if next(v1.metadata.annotations) == nil then v1.metadata.annotations = nil end
  return v1
end

function M.hpa_from_v1(v1, current)
  local o = current and patch.deepcopy(current) or {}
  o.apiVersion = "autoscaling/v2"
  o.kind = "HorizontalPodAutoscaler"
  o.metadata = v1.metadata
  if o.metadata.annotations then
    o.metadata.annotations["autoscaling.alpha.kubernetes.io/metrics"] = nil
    o.metadata.annotations["autoscaling.alpha.kubernetes.io/conditions"] = nil
    if next(o.metadata.annotations) == nil then o.metadata.annotations = nil end
  end
  local s = v1.spec or {}
  o.spec = o.spec or {}
  o.spec.scaleTargetRef, o.spec.minReplicas, o.spec.maxReplicas = s.scaleTargetRef, s.minReplicas, s.maxReplicas
  local metrics = arr()
  for _, m in ipairs(o.spec.metrics or {}) do
    if not (m.type == "Resource" and m.resource and m.resource.name == "cpu") then metrics[#metrics + 1] = m end
  end
  table.insert(metrics, 1, {type = "Resource", resource = {name = "cpu",
    target = {type = "Utilization", averageUtilization = s.targetCPUUtilizationPercentage or 80}}})
  o.spec.metrics = metrics
  return o
end

-- ---- Scale ----

function M.scale_of(o)
  local sel = o.spec.selector and o.spec.selector.matchLabels
  local parts = {}
  for k, v in pairs(sel or {}) do parts[#parts + 1] = k .. "=" .. v end
  table.sort(parts)
  return {kind = "Scale", apiVersion = "autoscaling/v1",
    metadata = {name = o.metadata.name, namespace = o.metadata.namespace, uid = o.metadata.uid,
      resourceVersion = o.metadata.resourceVersion, creationTimestamp = o.metadata.creationTimestamp},
    spec = {replicas = o.spec.replicas or 0}, status = {replicas = (o.status or {}).replicas or 0,
      selector = table.concat(parts, ",")}}
end

return M
