-- opsh.twin.k8s.controller: what kube-controller-manager and the kubelets would do, enough for the
-- runbook. A Deployment's pod template (its hash) picks its ReplicaSet; a new one gets pods that go
-- Pending -> Running `pod_start_seconds` after creation (knob, default 2); once they all run, the old
-- ReplicaSets' pods terminate. Scale makes or removes pods. Deployment, ReplicaSet and HPA status follow
-- (observedGeneration, replicas, updated/ready/available, conditions). Node objects follow the AKS agent
-- pools (store collection `arm`, else opsh.twin.platform). Extra `load-N` pods follow the `extra_pods` knob.
-- It runs only when the store changed or a pod is due to start, so an idle twin costs nothing.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local kinds = require("opsh.twin.k8s.kinds")
local knobs = require("opsh.twin.k8s.knobs")
local objects = require("opsh.twin.k8s.objects")
local patch = require("opsh.twin.k8s.patch")
local platform = require("opsh.twin.platform")
local time = require("opsh.time")

local M = {}

M.TICK = 0.2

local arr = json.array
local R = {}
local function res(name, group) return kinds.find(group or "", group == "apps" and "v1" or (group == "autoscaling" and "v2" or "v1"), name) end

local SAFE = "bcdfghjklmnpqrstvwxz2456789"
local function safe_string(bytes, n)
  local out = {}
  for i = 1, n do
    local b = bytes:byte((i - 1) % #bytes + 1)
    local j = b % #SAFE + 1
    out[i] = SAFE:sub(j, j)
  end
  return table.concat(out)
end

--- template_hash(template) -> the pod-template-hash of a Deployment's template
function M.template_hash(tpl)
  local t = patch.deepcopy(tpl)
  if t.metadata then t.metadata.creationTimestamp = nil end
  return safe_string(crypto.sha256(json.encode(t, {sort_keys = true})), 10)
end

local function iso(t) return time.format(t, {utc = true}) end

local function cluster_region(ctx) return platform.region(ctx.cluster) end

-- ---- nodes ----

local function node_hash(cluster) return tostring(10000000 + tonumber(crypto.sha256_hex(cluster):sub(1, 6), 16) % 89999999) end

local function b36(n)
  local digits, s = "0123456789abcdefghijklmnopqrstuvwxyz", ""
  repeat local d = n % 36; s = digits:sub(d + 1, d + 1) .. s; n = n // 36 until n == 0
  return string.rep("0", 6 - #s) .. s
end

--- pools(ctx) -> {{name, count, vm_size, mode}} from the ARM twin's agent pools, else platform.lua
function M.pools(ctx)
  local region = cluster_region(ctx)
  local prefix = platform.resource_id(region.resource_group, "Microsoft.ContainerService/managedClusters",
    region.aks.cluster) .. "/agentpools/"
  local arm = ctx.store:raw().arm
  local found = {}
  for k, e in pairs(arm or {}) do
    if k:sub(1, #prefix) == prefix and not k:sub(#prefix + 1):find("/") then
      local o = json.decode(e.text)
      local p = o.properties or {}
      found[#found + 1] = {name = o.name or k:sub(#prefix + 1), count = math.tointeger(p.count) or 0,
        vm_size = p.vmSize, mode = p.mode}
    end
  end
  if #found == 0 then
    for _, p in ipairs(region.aks.pools) do found[#found + 1] = {name = p.name, count = p.count, vm_size = p.vm_size, mode = p.mode} end
  end
  table.sort(found, function(a, b) return a.name < b.name end)
  return found
end

local SIZES = {Standard_D4s_v5 = {4, 16}, Standard_D8s_v5 = {8, 32}, Standard_D2s_v5 = {2, 8}, Standard_D16s_v5 = {16, 64}}

local function node_object(ctx, pool, i, name, created)
  local region = cluster_region(ctx)
  local size = SIZES[pool.vm_size or ""] or {4, 16}
  local mem_ki = size[2] * 1024 * 1024
  local alloc_mem = math.floor(mem_ki * 0.78)
  local labels = {["kubernetes.io/hostname"] = name, ["kubernetes.io/os"] = "linux", ["kubernetes.io/arch"] = "amd64",
    agentpool = pool.name, ["kubernetes.azure.com/agentpool"] = pool.name,
    ["kubernetes.azure.com/mode"] = (pool.mode or "User"):lower(), ["node.kubernetes.io/instance-type"] = pool.vm_size or "",
    ["topology.kubernetes.io/region"] = region.location, ["topology.kubernetes.io/zone"] = region.location .. "-" .. (i % 3 + 1),
    ["kubernetes.azure.com/cluster"] = "MC_" .. region.resource_group .. "_" .. region.aks.cluster .. "_" .. region.location,
    ["node-role.kubernetes.io/agent"] = ""}
  local ip = string.format("198.51.100.%d", (pool.mode == "System" and 0 or 100) + 4 + i % 96)
  local cond = function(t, s, reason, msg)
    return {type = t, status = s, reason = reason, message = msg, lastHeartbeatTime = created, lastTransitionTime = created}
  end
  return {apiVersion = "v1", kind = "Node", metadata = {name = name, labels = labels, uid = objects.uid(),
    creationTimestamp = created, annotations = {["node.alpha.kubernetes.io/ttl"] = "0"}},
    spec = {providerID = string.format("azure:///subscriptions/%s/resourceGroups/mc_%s/providers/Microsoft.Compute/virtualMachineScaleSets/aks-%s-vmss/virtualMachines/%d",
      platform.subscription, region.resource_group, pool.name, i), podCIDR = string.format("203.0.113.%d/28", i % 16 * 16)},
    status = {capacity = {cpu = tostring(size[1]), memory = mem_ki .. "Ki", pods = "110", ["ephemeral-storage"] = "129886128Ki"},
      allocatable = {cpu = (size[1] * 1000 - 140) .. "m", memory = alloc_mem .. "Ki", pods = "110", ["ephemeral-storage"] = "119703055367"},
      conditions = arr({cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")}),
      addresses = arr({{type = "InternalIP", address = ip}, {type = "Hostname", address = name}}),
      nodeInfo = {kubeletVersion = "v" .. region.aks.kubernetes_version, kubeProxyVersion = "v" .. region.aks.kubernetes_version,
        osImage = "Ubuntu 22.04.5 LTS", kernelVersion = "5.15.0-1079-azure", containerRuntimeVersion = "containerd://1.7.25-1",
        architecture = "amd64", operatingSystem = "linux", machineID = crypto.sha256_hex(name):sub(1, 32),
        systemUUID = objects.uid(), bootID = objects.uid()}}}
end

--- node_names(ctx, pools) -> ordered list of {name, pool, index}
function M.node_names(ctx, pools)
  local out = {}
  local h = node_hash(ctx.cluster)
  for _, p in ipairs(pools or M.pools(ctx)) do
    for i = 0, p.count - 1 do
      out[#out + 1] = {name = string.format("aks-%s-%s-vmss%s", p.name, h, b36(i)), pool = p, index = i}
    end
  end
  return out
end

function M.ensure_nodes(ctx, created)
  local nr = res("nodes")
  local want = {}
  local changes = {}
  for _, n in ipairs(M.node_names(ctx)) do
    want[n.name] = true
    if not objects.get(ctx, nr, nil, n.name) then
      changes[#changes + 1] = {r = nr, obj = node_object(ctx, n.pool, n.index, n.name, created or objects.now())}
    end
  end
  local gone = {}
  for _, e in ipairs((objects.entries(ctx, nr, nil))) do
    if not want[e.key] then
      changes[#changes + 1] = {r = nr, delete = {nil, e.key}}
      gone[e.key] = true
    end
  end
  if next(gone) then
    -- the pods of a removed node go with it (their ReplicaSets make new ones elsewhere)
    for _, p in ipairs(objects.all(ctx, res("pods"), nil)) do
      if gone[p.spec.nodeName or ""] then changes[#changes + 1] = {r = res("pods"), delete = {p.metadata.namespace, p.metadata.name}} end
    end
  end
  if #changes > 0 then objects.txn(ctx, changes) end
end

--- user_nodes(ctx) -> names of the nodes pods are placed on (User pools, else all)
function M.user_nodes(ctx)
  local all, user = {}, {}
  for _, n in ipairs(M.node_names(ctx)) do
    all[#all + 1] = n.name
    if (n.pool.mode or "User") == "User" then user[#user + 1] = n.name end
  end
  return #user > 0 and user or all
end

-- ---- pods ----

local function place(ctx, name)
  local nodes = M.user_nodes(ctx)
  if #nodes == 0 then return nil end
  local x = tonumber(crypto.sha256_hex(name):sub(1, 8), 16)
  return nodes[x % #nodes + 1], x
end

--- running_status(pod, started, restarts, last_terminated) -> status of a running pod
function M.running_status(pod, started, opts)
  opts = opts or {}
  local x = tonumber(crypto.sha256_hex(pod.metadata.name):sub(1, 8), 16)
  local ip = string.format("203.0.113.%d", 2 + x % 250)
  local cs = arr()
  for i, c in ipairs(pod.spec.containers) do
    cs[i] = {name = c.name, image = c.image, imageID = c.image .. "@sha256:" .. crypto.sha256_hex(c.image),
      containerID = "containerd://" .. crypto.sha256_hex(pod.metadata.name .. c.name), ready = true, started = true,
      restartCount = opts.restarts or 0, state = {running = {startedAt = started}}, lastState = opts.last_state or {}}
  end
  local function cond(t) return {type = t, status = "True", lastProbeTime = json.null, lastTransitionTime = started} end
  return {phase = "Running", hostIP = "198.51.100.104", podIP = ip, podIPs = arr({{ip = ip}}), startTime = pod.metadata.creationTimestamp,
    qosClass = "Burstable", conditions = arr({cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
      cond("ContainersReady"), cond("PodScheduled")}), containerStatuses = cs}
end

--- pod_for(ctx, deploy, rs, name, created) -> a Pending pod of rs
function M.pod_for(ctx, deploy, rs, name, created)
  local tpl = patch.deepcopy(rs.spec.template)
  local labels = tpl.metadata and tpl.metadata.labels or {}
  local pod = {apiVersion = "v1", kind = "Pod",
    metadata = {name = name, namespace = rs.metadata.namespace, labels = labels, annotations = tpl.metadata and tpl.metadata.annotations,
      generateName = rs.metadata.name .. "-", uid = objects.uid(), creationTimestamp = created,
      ownerReferences = arr({{apiVersion = "apps/v1", kind = "ReplicaSet", name = rs.metadata.name, uid = rs.metadata.uid,
        controller = true, blockOwnerDeletion = true}})},
    spec = tpl.spec}
  local node = place(ctx, name)
  pod.spec.nodeName = node
  pod.spec.serviceAccountName = pod.spec.serviceAccountName or "default"
  pod.spec.tolerations = pod.spec.tolerations or arr({
    {key = "node.kubernetes.io/not-ready", operator = "Exists", effect = "NoExecute", tolerationSeconds = 300},
    {key = "node.kubernetes.io/unreachable", operator = "Exists", effect = "NoExecute", tolerationSeconds = 300}})
  local waiting = arr()
  for i, c in ipairs(pod.spec.containers) do
    waiting[i] = {name = c.name, image = c.image, imageID = "", ready = false, started = false, restartCount = 0,
      state = {waiting = {reason = "ContainerCreating"}}, lastState = {}}
  end
  pod.status = {phase = "Pending", hostIP = "198.51.100.104", startTime = created, qosClass = "Burstable",
    conditions = arr({{type = "PodScheduled", status = "True", lastProbeTime = json.null, lastTransitionTime = created}}),
    containerStatuses = waiting}
  local _ = deploy
  return pod
end

function M.pod_name(rs_name, salt)
  return rs_name .. "-" .. safe_string(salt and crypto.sha256(salt) or crypto.random_bytes(5), 5)
end

--- rs_for(deploy, hash, revision) -> a ReplicaSet object for the Deployment's template
function M.rs_for(deploy, hash, revision, created)
  local tpl = patch.deepcopy(deploy.spec.template)
  tpl.metadata = tpl.metadata or {}
  tpl.metadata.labels = tpl.metadata.labels or {}
  tpl.metadata.labels["pod-template-hash"] = hash
  local sel = patch.deepcopy(deploy.spec.selector)
  sel.matchLabels = sel.matchLabels or {}
  sel.matchLabels["pod-template-hash"] = hash
  local labels = patch.deepcopy(tpl.metadata.labels)
  return {apiVersion = "apps/v1", kind = "ReplicaSet",
    metadata = {name = deploy.metadata.name .. "-" .. hash, namespace = deploy.metadata.namespace, labels = labels,
      uid = objects.uid(), creationTimestamp = created, generation = 1,
      annotations = {["deployment.kubernetes.io/revision"] = tostring(revision),
        ["deployment.kubernetes.io/desired-replicas"] = tostring(deploy.spec.replicas),
        ["deployment.kubernetes.io/max-replicas"] = tostring(deploy.spec.replicas + 1)},
      ownerReferences = arr({{apiVersion = "apps/v1", kind = "Deployment", name = deploy.metadata.name,
        uid = deploy.metadata.uid, controller = true, blockOwnerDeletion = true}})},
    spec = {replicas = deploy.spec.replicas, selector = sel, template = tpl}, status = {replicas = 0}}
end

local function owned_by(o, uid)
  for _, ref in ipairs(o.metadata.ownerReferences or {}) do if ref.uid == uid then return true end end
  return false
end

local function prefixed(ctx, r, ns, prefix)
  local coll = ctx.store:raw()[kinds.collection(ctx.cluster, r)]
  local out = {}
  if not coll then return out end
  local p = ns .. "/" .. prefix
  for k, e in pairs(coll) do
    if k:sub(1, #p) == p then out[#out + 1] = objects.decode({key = k, text = e.text, v = e.v}) end
  end
  table.sort(out, function(a, b) return a.metadata.name < b.metadata.name end)
  return out
end

local function pod_ready(p)
  if p.metadata.deletionTimestamp or not p.status or p.status.phase ~= "Running" then return false end
  for _, cs in ipairs(p.status.containerStatuses or {}) do if not cs.ready then return false end end
  return true
end

local function set_condition(conds, t, st, reason, msg, now)
  for _, c in ipairs(conds) do
    if c.type == t then
      if c.status ~= st or c.reason ~= reason then c.lastTransitionTime = now end
      if c.status ~= st or c.reason ~= reason or c.message ~= msg then c.lastUpdateTime = now end
      c.status, c.reason, c.message = st, reason, msg
      return
    end
  end
  conds[#conds + 1] = {type = t, status = st, reason = reason, message = msg, lastUpdateTime = now, lastTransitionTime = now}
end

local function put_if_changed(changes, r, old, new)
  if not patch.equal(old, new) then changes[#changes + 1] = {r = r, obj = new} end
end

--- reconcile(ctx, deploy, state) -> changes made (for the store), the next due time (or nil)
function M.reconcile(ctx, d, k, now_t)
  local rsr, podr = res("replicasets", "apps"), res("pods")
  local ns = d.metadata.namespace
  local now = iso(now_t)
  local start_s = tonumber(k.pod_start_seconds) or 2
  local changes, due = {}, nil
  local hash = M.template_hash(d.spec.template)
  local all_rs = {}
  local max_rev = 0
  for _, rs in ipairs(prefixed(ctx, rsr, ns, d.metadata.name .. "-")) do
    if owned_by(rs, d.metadata.uid) then
      all_rs[#all_rs + 1] = rs
      max_rev = math.max(max_rev, tonumber(rs.metadata.annotations and rs.metadata.annotations["deployment.kubernetes.io/revision"] or "0") or 0)
    end
  end
  local new_rs
  for _, rs in ipairs(all_rs) do if rs.metadata.labels and rs.metadata.labels["pod-template-hash"] == hash then new_rs = rs end end
  local created_rs = false
  if not new_rs then
    new_rs = M.rs_for(d, hash, max_rev + 1, now)
    all_rs[#all_rs + 1] = new_rs
    created_rs = true
  end
  local want = d.spec.replicas or 1
  local pods_of = {}
  local total, ready_total, updated, updated_ready = 0, 0, 0, 0
  for _, rs in ipairs(all_rs) do
    local mine = {}
    for _, p in ipairs(prefixed(ctx, podr, ns, rs.metadata.name .. "-")) do
      if owned_by(p, rs.metadata.uid) then mine[#mine + 1] = p end
    end
    pods_of[rs] = mine
  end
  -- the new ReplicaSet: create or remove pods, start the pending ones that are due
  local new_pods = pods_of[new_rs]
  local new_copy = patch.deepcopy(new_rs)
  new_copy.spec.replicas = want
  new_copy.metadata.annotations["deployment.kubernetes.io/desired-replicas"] = tostring(want)
  for _ = #new_pods + 1, want do
    local p = M.pod_for(ctx, d, new_copy, M.pod_name(new_rs.metadata.name), now)
    new_pods[#new_pods + 1] = p
    changes[#changes + 1] = {r = podr, obj = p}
    due = math.min(due or math.huge, now_t + start_s)
  end
  while #new_pods > want do
    local p = table.remove(new_pods)
    changes[#changes + 1] = {r = podr, delete = {ns, p.metadata.name}}
  end
  for _, p in ipairs(new_pods) do
    if p.status and p.status.phase == "Pending" and p.metadata.resourceVersion then
      local at = time.parse(p.metadata.creationTimestamp) + start_s
      if at <= now_t then
        local np = patch.deepcopy(p)
        np.status = M.running_status(np, now)
        changes[#changes + 1] = {r = podr, obj = np}
        p.status = np.status
      else
        due = math.min(due or math.huge, at)
      end
    end
  end
  for _, p in ipairs(new_pods) do
    updated = updated + 1
    if pod_ready(p) then updated_ready = updated_ready + 1 end
  end
  local done = updated_ready >= want
  -- old ReplicaSets: their pods go once the new ones all run
  for _, rs in ipairs(all_rs) do
    if rs ~= new_rs then
      local pods = pods_of[rs]
      local copy = patch.deepcopy(rs)
      if done then
        for _, p in ipairs(pods) do changes[#changes + 1] = {r = podr, delete = {ns, p.metadata.name}} end
        pods = {}
        copy.spec.replicas = 0
        if (rs.spec.replicas or 0) > 0 then
          changes[#changes + 1] = {r = res("events"), obj = M.event(d, "Normal", "ScalingReplicaSet",
            string.format("Scaled down replica set %s from %d to 0", rs.metadata.name, rs.spec.replicas), "deployment-controller", now)}
        end
      end
      local ready = 0
      for _, p in ipairs(pods) do if pod_ready(p) then ready = ready + 1 end end
      total, ready_total = total + #pods, ready_total + ready
      copy.status = {replicas = #pods, fullyLabeledReplicas = #pods, readyReplicas = ready, availableReplicas = ready,
        observedGeneration = copy.metadata.generation}
      put_if_changed(changes, rsr, rs, copy)
    end
  end
  total, ready_total = total + updated, ready_total + updated_ready
  new_copy.status = {replicas = updated, fullyLabeledReplicas = updated, readyReplicas = updated_ready,
    availableReplicas = updated_ready, observedGeneration = new_copy.metadata.generation}
  if created_rs then changes[#changes + 1] = {r = rsr, obj = new_copy} else put_if_changed(changes, rsr, new_rs, new_copy) end
  if new_rs.spec.replicas ~= want or created_rs then
    local from = created_rs and 0 or new_rs.spec.replicas
    changes[#changes + 1] = {r = res("events"), obj = M.event(d, "Normal", "ScalingReplicaSet",
      string.format("Scaled %s replica set %s from %d to %d", want >= from and "up" or "down", new_rs.metadata.name, from, want),
      "deployment-controller", now)}
  end
  -- the Deployment's status
  local nd = patch.deepcopy(d)
  local st = nd.status or {}
  st.observedGeneration = d.metadata.generation
  st.replicas, st.updatedReplicas, st.readyReplicas, st.availableReplicas = total, updated, ready_total, ready_total
  st.unavailableReplicas = (total - ready_total > 0) and (total - ready_total) or nil
  if st.readyReplicas == 0 then st.readyReplicas = nil end
  if st.availableReplicas == 0 then st.availableReplicas = nil end
  st.conditions = st.conditions or arr()
  if ready_total >= want then
    set_condition(st.conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
  else
    set_condition(st.conditions, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now)
  end
  if done and total == updated then
    set_condition(st.conditions, "Progressing", "True", "NewReplicaSetAvailable",
      string.format('ReplicaSet "%s" has successfully progressed.', new_rs.metadata.name), now)
  else
    set_condition(st.conditions, "Progressing", "True", "ReplicaSetUpdated",
      string.format('ReplicaSet "%s" is progressing.', new_rs.metadata.name), now)
  end
  nd.status = st
  if not patch.equal(d.status, st) then changes[#changes + 1] = {r = res("deployments", "apps"), obj = nd, if_version = math.tointeger(tonumber(d.metadata.resourceVersion))} end
  return changes, due
end

--- event(object, type, reason, message, component, now) -> a core/v1 Event about object
function M.event(o, typ, reason, msg, component, now)
  local md = o.metadata
  return {apiVersion = "v1", kind = "Event", metadata = {name = md.name .. "." .. crypto.hex_encode(crypto.random_bytes(8)),
    namespace = md.namespace, uid = objects.uid(), creationTimestamp = now},
    involvedObject = {kind = o.kind, name = md.name, namespace = md.namespace, uid = md.uid, apiVersion = o.apiVersion,
      resourceVersion = md.resourceVersion},
    reason = reason, message = msg, type = typ, count = 1, firstTimestamp = now, lastTimestamp = now,
    source = {component = component}, reportingComponent = component, reportingInstance = ""}
end

-- ReplicaSets whose Deployment is gone, and their pods (garbage collection)
local function collect(ctx)
  local changes = {}
  local dr, rsr, podr = res("deployments", "apps"), res("replicasets", "apps"), res("pods")
  local uids = {}
  for _, d in ipairs(objects.all(ctx, dr, nil)) do uids[d.metadata.uid] = true end
  for _, rs in ipairs(objects.all(ctx, rsr, nil)) do
    local ref = rs.metadata.ownerReferences and rs.metadata.ownerReferences[1]
    if ref and ref.kind == "Deployment" and not uids[ref.uid] then
      changes[#changes + 1] = {r = rsr, delete = {rs.metadata.namespace, rs.metadata.name}}
      for _, p in ipairs(prefixed(ctx, podr, rs.metadata.namespace, rs.metadata.name .. "-")) do
        changes[#changes + 1] = {r = podr, delete = {p.metadata.namespace, p.metadata.name}}
      end
    end
  end
  return changes
end

-- HPA status follows its target
local function hpas(ctx)
  local changes = {}
  local hr, dr = res("horizontalpodautoscalers", "autoscaling"), res("deployments", "apps")
  for _, h in ipairs(objects.all(ctx, hr, nil)) do
    local ref = h.spec.scaleTargetRef or {}
    local d = ref.kind == "Deployment" and objects.get(ctx, dr, h.metadata.namespace, ref.name)
    if d then
      local nh = patch.deepcopy(h)
      nh.status = nh.status or {}
      nh.status.currentReplicas = (d.status or {}).replicas or 0
      nh.status.desiredReplicas = math.max(h.spec.minReplicas or 1, math.min(h.spec.maxReplicas, d.spec.replicas or 1))
      nh.status.observedGeneration = h.metadata.generation
      put_if_changed(changes, hr, h, nh)
    end
  end
  return changes
end

-- the `extra_pods` knob: load-N pods in the cluster's namespace
local function extra_pods(ctx, k)
  local want = math.tointeger(tonumber(k.extra_pods or 0)) or 0
  local podr = res("pods")
  local ns = platform.namespace
  local have = 0
  local coll = ctx.store:raw()[kinds.collection(ctx.cluster, podr)] or {}
  local p = ns .. "/load-"
  for key in pairs(coll) do if key:sub(1, #p) == p then have = have + 1 end end
  if have == want then return end
  local nodes = M.user_nodes(ctx)
  local created = objects.now()
  local batch = {}
  local function flush()
    if #batch > 0 then objects.txn(ctx, batch); batch = {} end
  end
  for i = have, want - 1 do
    local name = string.format("load-%05d", i)
    local pod = {apiVersion = "v1", kind = "Pod", metadata = {name = name, namespace = ns, uid = objects.uid(),
      creationTimestamp = created, labels = {app = "load", tier = "bench"}},
      spec = {nodeName = nodes[i % #nodes + 1], restartPolicy = "Always", serviceAccountName = "default",
        containers = arr({{name = "load", image = "mcr.microsoft.com/oss/kubernetes/pause:3.9",
          resources = {requests = {cpu = "10m", memory = "16Mi"}}}})}}
    pod.status = M.running_status(pod, created)
    batch[#batch + 1] = {r = podr, obj = pod}
    if #batch >= 1000 then flush() end
  end
  for i = want, have - 1 do
    batch[#batch + 1] = {r = podr, delete = {ns, string.format("load-%05d", i)}}
    if #batch >= 1000 then flush() end
  end
  flush()
end

--- pass(ctx) -> the next due time or nil: one reconciliation of everything
function M.pass(ctx)
  local k = knobs.get(ctx)
  M.ensure_nodes(ctx)
  extra_pods(ctx, k)
  local now_t = time.now()
  local due
  for _, d in ipairs(objects.all(ctx, res("deployments", "apps"), nil)) do
    local changes, dd = M.reconcile(ctx, d, k, now_t)
    if dd then due = math.min(due or math.huge, dd) end
    if #changes > 0 then
      local ok, err = pcall(objects.txn, ctx, changes)
      if not ok and not (type(err) == "table" and err.code == 409) then error(err, 0) end
      if not ok then due = now_t end
    end
  end
  local g = collect(ctx)
  if #g > 0 then objects.txn(ctx, g) end
  local h = hpas(ctx)
  if #h > 0 then pcall(objects.txn, ctx, h) end
  return due
end

--- start(ctx): the controller task of one cluster
function M.start(ctx)
  ctx.controller = core.spawn(function()
    local seen, due = -1, nil
    while true do
      local v = ctx.store:current()
      if v ~= seen or (due and time.now() >= due) then
        local ok, res_or_err = pcall(M.pass, ctx)
        if ok then due = res_or_err else
          require("opsh.log").error("kubernetes twin: controller pass failed", {cluster = ctx.cluster, error = tostring(core.is_error(res_or_err) and res_or_err.message or res_or_err)})
          due = time.now() + 1
        end
        seen = v
      end
      core.sleep(M.TICK)
    end
  end)
end

local _ = R
return M
