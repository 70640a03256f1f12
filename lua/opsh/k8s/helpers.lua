-- opsh.k8s.helpers (internal): what the runbook does with kubectl, built on the verbs — pods by
-- phase and reason with restart counts, rollout restart and status, scale, HPA bounds and target,
-- cert-manager Certificates, node conditions, events of an object. Results that are lists of
-- records carry `columns` so they print as tables.
local core = require("opsh._core")
local json = require("opsh.json")
local time = require("opsh.time")
local client = require("opsh.k8s.client")
local errors = require("opsh.k8s.errors")

local Client = client.Client
local usage = client.usage

local M = {}

local function present(v) return v ~= nil and v ~= json.null and v ~= "" end

--- age(timestamp [, now]) -> kubectl's short age ("5d", "3h", "12m", "40s")
function M.age(ts, now)
  if not present(ts) then return "<unknown>" end
  local ok, t = pcall(time.parse, ts)
  if not ok then return "<unknown>" end
  local s = math.max(0, math.floor((now or os.time()) - t))
  if s < 120 then return s .. "s" end
  local m = s // 60
  if m < 10 then return string.format("%dm%ds", m, s % 60) end
  if m < 180 then return m .. "m" end
  local h = m // 60
  if h < 48 then return h .. "h" end
  local d = h // 24
  if d < 8 then return string.format("%dd%dh", d, h % 24) end
  if d < 365 * 2 then return d .. "d" end
  return (d // 365) .. "y"
end

local function with_columns(rows, cols)
  rows.columns = cols
  return rows
end
M.with_columns = with_columns

-- ---- pods ----

--- pod_summary(pod) -> {namespace, name, phase, status (kubectl's STATUS column), ready "1/2", restarts,
-- reasons (every reason seen: waiting, terminated, last terminated, the pod's), node, age}
function M.pod_summary(p)
  local st = p.status or {}
  local md = p.metadata or {}
  local status = present(st.reason) and st.reason or st.phase or "Unknown"
  local reasons, restarts, ready, total = {}, 0, 0, 0
  local function note(r) if present(r) then reasons[r] = true end end
  note(st.reason)
  for _, section in ipairs({"initContainerStatuses", "containerStatuses"}) do
    for _, cs in ipairs(st[section] or {}) do
      if section == "containerStatuses" then
        total = total + 1
        if cs.ready then ready = ready + 1 end
      end
      restarts = restarts + (tonumber(cs.restartCount) or 0)
      local s = cs.state or {}
      if s.waiting then
        note(s.waiting.reason)
        if section == "containerStatuses" and present(s.waiting.reason) then status = s.waiting.reason end
      elseif s.terminated then
        note(s.terminated.reason)
        if section == "containerStatuses" and present(s.terminated.reason) then status = s.terminated.reason end
      end
      if cs.lastState and cs.lastState.terminated then note(cs.lastState.terminated.reason) end
    end
  end
  if total == 0 then total = #((p.spec or {}).containers or {}) end
  if md.deletionTimestamp and present(md.deletionTimestamp) then status = "Terminating" end
  local list = {}
  for r in pairs(reasons) do list[#list + 1] = r end
  table.sort(list)
  return {namespace = md.namespace, name = md.name, phase = st.phase, status = status,
    ready = string.format("%d/%d", ready, total), restarts = restarts, reasons = list,
    node = (p.spec or {}).nodeName, age = M.age(md.creationTimestamp), pod = p}
end

--- c:pods([{namespace=, all_namespaces=, phase=, reason=, label_selector=, min_restarts=}]) -> records
-- {namespace, name, ready, status, restarts, age, node, phase, reasons, pod}; phase is sent as a
-- field selector, reason (OOMKilled, CrashLoopBackOff, ImagePullBackOff, Evicted, ...) matches the
-- pod's, any container's current or last-terminated reason
function Client:pods(opts)
  opts = opts or {}
  local fsel = opts.field_selector
  if opts.phase then
    fsel = "status.phase=" .. opts.phase .. (fsel and ("," .. client.selector(fsel, "field_selector")) or "")
  end
  local rows = {}
  for p in self:iter("pods", {namespace = opts.namespace, all_namespaces = opts.all_namespaces,
    label_selector = opts.label_selector, field_selector = fsel}) do
    local s = M.pod_summary(p)
    local keep = true
    if opts.reason then
      keep = false
      for _, r in ipairs(s.reasons) do if r == opts.reason then keep = true end end
      if s.status == opts.reason then keep = true end
    end
    if keep and opts.min_restarts and s.restarts < opts.min_restarts then keep = false end
    if keep then rows[#rows + 1] = s end
  end
  local cols = {"name", "ready", "status", "restarts", "age", "node"}
  if opts.all_namespaces then table.insert(cols, 1, "namespace") end
  return with_columns(rows, cols)
end

-- ---- rollouts ----

--- c:rollout_restart(name [, {resource = "deployments", namespace=}]) -> the patched object; the pod
-- template's kubectl.kubernetes.io/restartedAt annotation set to now (what kubectl does)
function Client:rollout_restart(name, opts)
  opts = opts or {}
  local resource = opts.resource or "deployments"
  return client.retry_conflict(function()
    local obj = self:get(resource, name, {namespace = opts.namespace})
    if obj.spec and obj.spec.paused == true then
      error(core.error("k8s", string.format("%s/%s is paused: resume it before restarting", resource, name),
        {reason = "Paused", code = 400}), 0)
    end
    local patch = {spec = {template = {metadata = {annotations = {
      ["kubectl.kubernetes.io/restartedAt"] = time.format(os.time())}}}}}
    return self:patch(resource, name, patch, {namespace = opts.namespace, type = "strategic",
      field_manager = "opsh-rollout"})
  end)
end

--- rollout_state(deployment) -> done (bool), message (kubectl's words); raises on ProgressDeadlineExceeded
function M.rollout_state(d)
  local md, spec, st = d.metadata or {}, d.spec or {}, d.status or {}
  local name = md.name
  if (tonumber(md.generation) or 0) > (tonumber(st.observedGeneration) or 0) then
    return false, "Waiting for deployment spec update to be observed..."
  end
  for _, c in ipairs(st.conditions or {}) do
    if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" then
      error(core.error("k8s", string.format('deployment "%s" exceeded its progress deadline', name),
        {reason = "ProgressDeadlineExceeded", code = 0, object = d}), 0)
    end
  end
  local want = tonumber(spec.replicas) or 1
  local updated, replicas, available = tonumber(st.updatedReplicas) or 0, tonumber(st.replicas) or 0,
    tonumber(st.availableReplicas) or 0
  if updated < want then
    return false, string.format('Waiting for deployment "%s" rollout to finish: %d out of %d new replicas have been '
      .. "updated...", name, updated, want)
  end
  if replicas > updated then
    return false, string.format('Waiting for deployment "%s" rollout to finish: %d old replicas are pending '
      .. "termination...", name, replicas - updated)
  end
  if available < updated then
    return false, string.format('Waiting for deployment "%s" rollout to finish: %d of %d updated replicas are '
      .. "available...", name, available, updated)
  end
  return true, string.format('deployment "%s" successfully rolled out', name)
end

--- c:rollout_status(name [, {namespace=, timeout = 600, on_progress = fn(message, deployment)}]) ->
-- {done = true, message}: waits (a watch) until the new ReplicaSet is fully available; raises kind
-- "timeout" at the deadline, kind "k8s" reason ProgressDeadlineExceeded when the deployment says so
function Client:rollout_status(name, opts)
  opts = opts or {}
  local timeout = opts.timeout or 600
  local last
  local function check(d)
    local done, msg = M.rollout_state(d)
    if msg ~= last then
      last = msg
      if opts.on_progress then opts.on_progress(msg, d) end
    end
    return done, msg
  end
  local d = self:get("deployments", name, {namespace = opts.namespace})
  local done, msg = check(d)
  if done then return {done = true, message = msg} end
  local result = self:watch("deployments", {namespace = opts.namespace, name = name, timeout = timeout,
    resource_version = d.metadata.resourceVersion}, function(ev)
    local obj = ev.object
    if ev.type == "RELIST" then obj = ev.items[1] end
    if ev.type == "DELETED" then
      error(core.error("k8s", string.format('deployment "%s" was deleted during the rollout', name),
        {reason = "NotFound", code = 404}), 0)
    end
    if ev.type == "BOOKMARK" or type(obj) ~= "table" then return end
    local ok, m = check(obj)
    if ok then return {done = true, message = m} end
  end)
  if result then return result end
  error(core.error("timeout", string.format('rollout of deployment "%s" not finished after %s s: %s', name,
    tostring(timeout), tostring(last)), {message_last = last}), 0)
end

-- ---- scale ----

--- c:scale(resource, name [, replicas] [, {namespace=}]) -> the Scale ({spec.replicas, status.replicas,
-- status.selector}); with replicas, set through the scale subresource (read, then PUT with its
-- resourceVersion; a 409 Conflict reads again)
function Client:scale(resource, name, replicas, opts)
  if type(replicas) == "table" then replicas, opts = nil, replicas end
  opts = opts or {}
  if replicas == nil then return self:get(resource, name, {namespace = opts.namespace, subresource = "scale"}) end
  if math.type(replicas) ~= "integer" or replicas < 0 then usage("replicas must be a non-negative integer") end
  return client.retry_conflict(function()
    local s = self:get(resource, name, {namespace = opts.namespace, subresource = "scale"})
    s.spec = s.spec or {}
    s.spec.replicas = replicas
    return self:replace(resource, s, {namespace = opts.namespace, subresource = "scale"})
  end)
end

-- ---- HPA ----

--- c:set_hpa(name, {min=, max=, cpu= (average utilisation %), namespace=}) -> the HPA after the change.
-- autoscaling/v2: min/max and the cpu Resource metric merged into spec.metrics (other metrics kept, the
-- list sent whole as the API wants) with the object's resourceVersion, retried on 409;
-- autoscaling/v1 when the server has no v2 (targetCPUUtilizationPercentage)
function Client:set_hpa(name, opts)
  opts = opts or {}
  if opts.min == nil and opts.max == nil and opts.cpu == nil then usage("set_hpa needs min, max or cpu") end
  local ok, v2 = pcall(self.resource, self, "HorizontalPodAutoscaler", "autoscaling/v2")
  if not ok then v2 = nil end
  local rec = v2 or self:resource("HorizontalPodAutoscaler", "autoscaling/v1")
  return client.retry_conflict(function()
    local h = self:get(rec, name, {namespace = opts.namespace})
    local spec = {minReplicas = opts.min, maxReplicas = opts.max}
    local patch = {metadata = {resourceVersion = h.metadata.resourceVersion}, spec = spec}
    if opts.cpu then
      if v2 then
        local metrics, found = json.array(), false
        for _, m in ipairs(h.spec.metrics or {}) do
          if m.type == "Resource" and m.resource and m.resource.name == "cpu" then
            m = {type = "Resource", resource = {name = "cpu", target = {type = "Utilization", averageUtilization = opts.cpu}}}
            found = true
          end
          metrics[#metrics + 1] = m
        end
        if not found then
          metrics[#metrics + 1] = {type = "Resource",
            resource = {name = "cpu", target = {type = "Utilization", averageUtilization = opts.cpu}}}
        end
        spec.metrics = metrics
      else
        spec.targetCPUUtilizationPercentage = opts.cpu
      end
    end
    return self:patch(rec, name, patch, {namespace = opts.namespace, type = "merge"})
  end)
end

-- ---- certificates, nodes, events ----

--- c:certificates([{namespace=, all_namespaces=, within = days}]) -> records {namespace, name, ready,
-- secret, not_after, days_left, renewal, message} of cert-manager Certificates; within keeps those not
-- ready or expiring within that many days
function Client:certificates(opts)
  opts = opts or {}
  local rows = {}
  local now = os.time()
  for c in self:iter("certificates.cert-manager.io", {namespace = opts.namespace, all_namespaces = opts.all_namespaces}) do
    local st = c.status or {}
    local ready, message = "Unknown", nil
    for _, cond in ipairs(st.conditions or {}) do
      if cond.type == "Ready" then ready, message = cond.status, cond.message end
    end
    local days
    if present(st.notAfter) then
      local okp, t = pcall(time.parse, st.notAfter)
      if okp then days = math.floor((t - now) / 86400) end
    end
    local row = {namespace = c.metadata.namespace, name = c.metadata.name, ready = ready,
      secret = (c.spec or {}).secretName, not_after = st.notAfter, days_left = days, renewal = st.renewalTime,
      message = message}
    if not opts.within or ready ~= "True" or (days and days <= opts.within) then rows[#rows + 1] = row end
  end
  return with_columns(rows, {"namespace", "name", "ready", "days_left", "not_after", "secret"})
end

--- c:node_conditions([{label_selector=}]) -> records {name, ready, memory_pressure, disk_pressure,
-- pid_pressure, network_unavailable, unschedulable, version, problems (the conditions not as they should be)}
function Client:node_conditions(opts)
  opts = opts or {}
  local rows = {}
  local good = {Ready = "True"}
  for n in self:iter("nodes", {label_selector = opts.label_selector}) do
    local row = {name = n.metadata.name, unschedulable = (n.spec or {}).unschedulable == true,
      version = ((n.status or {}).nodeInfo or {}).kubeletVersion, problems = {}}
    for _, c in ipairs((n.status or {}).conditions or {}) do
      local key = c.type:gsub("(%l)(%u)", "%1_%2"):lower()
      row[key] = c.status
      if (good[c.type] or "False") ~= c.status then
        row.problems[#row.problems + 1] = c.type .. "=" .. tostring(c.status)
          .. (present(c.reason) and (" (" .. c.reason .. ")") or "")
      end
    end
    row.problems = table.concat(row.problems, ", ")
    rows[#rows + 1] = row
  end
  return with_columns(rows, {"name", "ready", "memory_pressure", "disk_pressure", "pid_pressure", "unschedulable",
    "problems"})
end

--- c:events([resource, name] [, {namespace=, type = "Warning", reason=}]) -> records {last_seen, type,
-- reason, object, message, count}, oldest first; with resource and name, the events of that object
function Client:events(resource, name, opts)
  if type(resource) == "table" and resource.kind == nil then resource, name, opts = nil, nil, resource end
  if type(name) == "table" then name, opts = nil, name end
  opts = opts or {}
  local fsel = {}
  local ns = opts.namespace
  if resource then
    local rec, n, o, rns = self:_target(resource, name, {namespace = opts.namespace})
    if not n then usage("events of an object need its name") end
    fsel[#fsel + 1] = "involvedObject.name=" .. n
    fsel[#fsel + 1] = "involvedObject.kind=" .. rec.kind
    ns = rns or o.namespace
  end
  if opts.type then fsel[#fsel + 1] = "type=" .. opts.type end
  if opts.reason then fsel[#fsel + 1] = "reason=" .. opts.reason end
  local rows = {}
  for e in self:iter("events", {namespace = ns, all_namespaces = opts.all_namespaces,
    field_selector = #fsel > 0 and table.concat(fsel, ",") or nil}) do
    local io = e.involvedObject or {}
    local last = present(e.lastTimestamp) and e.lastTimestamp or present(e.eventTime) and e.eventTime
      or (e.metadata or {}).creationTimestamp
    rows[#rows + 1] = {last_seen = last, type = e.type, reason = e.reason,
      object = string.lower(tostring(io.kind)) .. "/" .. tostring(io.name), message = e.message,
      count = tonumber(e.count) or 1, namespace = (e.metadata or {}).namespace}
  end
  table.sort(rows, function(a, b) return tostring(a.last_seen) < tostring(b.last_seen) end)
  return with_columns(rows, {"last_seen", "type", "reason", "object", "message"})
end

M.errors = errors
return M
