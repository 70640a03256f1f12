-- Kubesec-style security rules for Kubernetes workloads, scored natively (no kubesec binary).
-- Critical rules subtract points when any container (or the pod) matches; advice rules add points
-- when every container satisfies them. score = sum of the points of the rules that matched.
local json = require("opsh.json")
local yaml = require("opsh.yaml")
local fs = require("opsh.fs")

local M = {}

local function containers(spec)
  local list = {}
  for _, field in ipairs({"initContainers", "containers", "ephemeralContainers"}) do
    for _, c in ipairs(spec[field] or {}) do list[#list + 1] = c end
  end
  return list
end

local function sc(c) return c.securityContext or {} end

-- the container's value of a field that may also be set on the pod's securityContext
local function effective(spec, c, field)
  local v = sc(c)[field]
  if v == nil then v = (spec.securityContext or {})[field] end
  return v
end

local function any(spec, pred)
  for _, c in ipairs(containers(spec)) do if pred(c) then return true end end
  return false
end

local function all(spec, pred)
  local list = containers(spec)
  if #list == 0 then return false end
  for _, c in ipairs(list) do if not pred(c) then return false end end
  return true
end

local function caps(c, which)
  local set = {}
  for _, cap in ipairs(((sc(c).capabilities or {})[which]) or {}) do
    set[tostring(cap):upper():gsub("^CAP_", "")] = true
  end
  return set
end

local function resource(c, kind, name)
  local r = (c.resources or {})[kind]
  return r ~= nil and r ~= json.null and r[name] ~= nil
end

local function host_paths(spec)
  local paths = {}
  for _, v in ipairs(spec.volumes or {}) do
    if type(v.hostPath) == "table" then paths[#paths + 1] = v.hostPath.path or "" end
  end
  return paths
end

--- The rules, in report order: id, points, what it checks (true = matched), advice.
M.rules = {
  {id = "Privileged", points = -30, reason = "privileged containers can do almost anything the node can",
    advice = "set securityContext.privileged: false",
    check = function(spec) return any(spec, function(c) return sc(c).privileged == true end) end},
  {id = "CapSysAdmin", points = -30, reason = "CAP_SYS_ADMIN is nearly root on the node",
    advice = "remove SYS_ADMIN from securityContext.capabilities.add",
    check = function(spec) return any(spec, function(c) return caps(c, "add").SYS_ADMIN or caps(c, "add").ALL end) end},
  {id = "HostNetwork", points = -9, reason = "the pod shares the node's network namespace",
    advice = "remove hostNetwork: true",
    check = function(spec) return spec.hostNetwork == true end},
  {id = "HostPID", points = -9, reason = "the pod sees and can signal the node's processes",
    advice = "remove hostPID: true",
    check = function(spec) return spec.hostPID == true end},
  {id = "HostIPC", points = -9, reason = "the pod shares the node's IPC namespace",
    advice = "remove hostIPC: true",
    check = function(spec) return spec.hostIPC == true end},
  {id = "HostPathVolume", points = -9, reason = "a hostPath volume exposes the node's filesystem",
    advice = "use an emptyDir, a ConfigMap or a PersistentVolumeClaim instead of hostPath",
    check = function(spec) return #host_paths(spec) > 0 end},
  {id = "DockerSock", points = -9, reason = "the container runtime socket gives control of the node",
    advice = "do not mount /var/run/docker.sock or containerd.sock",
    check = function(spec)
      for _, p in ipairs(host_paths(spec)) do
        if p:find("docker.sock", 1, true) or p:find("containerd.sock", 1, true) then return true end
      end
      return false
    end},
  {id = "AllowPrivilegeEscalation", points = -7, reason = "setuid binaries can gain more privileges",
    advice = "set securityContext.allowPrivilegeEscalation: false",
    check = function(spec) return any(spec, function(c) return sc(c).allowPrivilegeEscalation == true end) end},
  {id = "RunAsRoot", points = -7, reason = "a container runs as UID 0",
    advice = "set securityContext.runAsUser to a UID above 10000 and runAsNonRoot: true",
    check = function(spec) return any(spec, function(c) return effective(spec, c, "runAsUser") == 0 end) end},
  {id = "RunAsNonRoot", points = 1, reason = "the kubelet refuses to start a container as root",
    advice = "set securityContext.runAsNonRoot: true",
    check = function(spec) return all(spec, function(c) return effective(spec, c, "runAsNonRoot") == true end) end},
  {id = "RunAsHighUID", points = 1, reason = "a UID above 10000 does not collide with the node's users",
    advice = "set securityContext.runAsUser above 10000",
    check = function(spec)
      return all(spec, function(c) local u = effective(spec, c, "runAsUser"); return type(u) == "number" and u > 10000 end)
    end},
  {id = "ReadOnlyRootFilesystem", points = 1, reason = "an immutable root filesystem stops tampering",
    advice = "set securityContext.readOnlyRootFilesystem: true (mount an emptyDir where it must write)",
    check = function(spec) return all(spec, function(c) return sc(c).readOnlyRootFilesystem == true end) end},
  {id = "LimitsCPU", points = 1, reason = "a CPU limit bounds a runaway container",
    advice = "set resources.limits.cpu",
    check = function(spec) return all(spec, function(c) return resource(c, "limits", "cpu") end) end},
  {id = "LimitsMemory", points = 1, reason = "a memory limit bounds a leak to its own container",
    advice = "set resources.limits.memory",
    check = function(spec) return all(spec, function(c) return resource(c, "limits", "memory") end) end},
  {id = "RequestsCPU", points = 1, reason = "a CPU request lets the scheduler place the pod",
    advice = "set resources.requests.cpu",
    check = function(spec) return all(spec, function(c) return resource(c, "requests", "cpu") end) end},
  {id = "RequestsMemory", points = 1, reason = "a memory request lets the scheduler place the pod",
    advice = "set resources.requests.memory",
    check = function(spec) return all(spec, function(c) return resource(c, "requests", "memory") end) end},
  {id = "CapDropAny", points = 1, reason = "dropping capabilities shrinks what a compromise can do",
    advice = "list capabilities to drop in securityContext.capabilities.drop",
    check = function(spec) return all(spec, function(c) return next(caps(c, "drop")) ~= nil end) end},
  {id = "CapDropAll", points = 1, reason = "drop ALL, then add back only what is needed",
    advice = "set securityContext.capabilities.drop: [ALL]",
    check = function(spec) return all(spec, function(c) return caps(c, "drop").ALL == true end) end},
  {id = "ServiceAccountName", points = 3, reason = "a dedicated service account scopes the pod's API rights",
    advice = "set spec.serviceAccountName to an account for this workload",
    check = function(spec)
      local n = spec.serviceAccountName or spec.serviceAccount
      return type(n) == "string" and n ~= "" and n ~= "default"
    end},
  {id = "SeccompProfile", points = 1, reason = "a seccomp profile limits the system calls",
    advice = "set securityContext.seccompProfile.type: RuntimeDefault",
    check = function(spec)
      return all(spec, function(c)
        local p = effective(spec, c, "seccompProfile")
        return type(p) == "table" and (p.type == "RuntimeDefault" or p.type == "Localhost")
      end)
    end},
}

local function pod_spec(obj)
  local kind, spec = obj.kind, obj.spec
  if type(spec) ~= "table" then return nil end
  if kind == "Pod" then return spec end
  if kind == "CronJob" then
    return (((spec.jobTemplate or {}).spec or {}).template or {}).spec
  end
  if kind == "Deployment" or kind == "StatefulSet" or kind == "DaemonSet" or kind == "ReplicaSet"
    or kind == "Job" or kind == "ReplicationController" or kind == "PodTemplate" then
    return (spec.template or obj.template or {}).spec
  end
  return nil
end
M.pod_spec = pod_spec

--- scan(obj) -> {kind, namespace, name, score, critical, matched = {rule...}, advice = {rule...}}
-- or nil when the object carries no pod template.
function M.scan(obj)
  local spec = pod_spec(obj)
  if type(spec) ~= "table" then return nil end
  local meta = obj.metadata or {}
  local r = {kind = obj.kind, namespace = meta.namespace, name = meta.name, score = 0, critical = 0,
    matched = {}, advice = {}}
  for _, rule in ipairs(M.rules) do
    local hit = rule.check(spec) and true or false
    if hit then
      r.score = r.score + rule.points
      r.matched[#r.matched + 1] = rule
      if rule.points < 0 then r.critical = r.critical + 1; r.advice[#r.advice + 1] = rule end
    elseif rule.points > 0 then
      r.advice[#r.advice + 1] = rule
    end
  end
  return r
end

local function documents(text, path)
  local trimmed = text:match("^%s*(.-)%s*$")
  local docs
  if trimmed:sub(1, 1) == "{" or trimmed:sub(1, 1) == "[" then
    local v = json.decode(trimmed)
    docs = (v[1] ~= nil or next(v) == nil) and v or {v}
  else
    docs = yaml.decode_all(text)
  end
  local out = {}
  local function add(d)
    if type(d) ~= "table" then return end
    if d.kind == "List" or (d.items and (d.kind or ""):match("List$")) then
      for _, item in ipairs(d.items or {}) do add(item) end
    else
      d._source = path
      out[#out + 1] = d
    end
  end
  for _, d in ipairs(docs) do add(d) end
  return out
end
M.documents = documents

--- live(client, kinds [, opts]) -> the objects of those kinds that no other object owns; a kind the
-- server does not serve is skipped (returned in the second list).
function M.live(c, kinds, opts)
  local objs, skipped = {}, {}
  for _, kind in ipairs(kinds) do
    local ok, err = pcall(function()
      for item in c:iter(kind, opts) do
        local owners = item.metadata and item.metadata.ownerReferences
        if not (type(owners) == "table" and #owners > 0) then objs[#objs + 1] = item end
      end
    end)
    if not ok then
      if type(err) == "table" and tostring(err.message or ""):find("resource type", 1, true) then
        skipped[#skipped + 1] = kind
      else
        error(err, 0)
      end
    end
  end
  return objs, skipped
end

--- load(paths) -> objects from files and directories (*.yaml, *.yml, *.json, in name order)
function M.load(paths)
  local objs = {}
  for _, p in ipairs(paths) do
    local st = fs.stat(p)
    if not st then require("opsh").raise("usage", "no such file: " .. p) end
    local files = {}
    if st.type == "dir" then
      for _, name in ipairs(fs.list(p)) do
        if name:match("%.ya?ml$") or name:match("%.json$") then files[#files + 1] = fs.join(p, name) end
      end
      table.sort(files)
    else
      files[1] = p
    end
    for _, f in ipairs(files) do
      for _, d in ipairs(documents(fs.read(f), f)) do objs[#objs + 1] = d end
    end
  end
  return objs
end

return M
