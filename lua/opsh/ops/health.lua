-- opsh.ops.health: the daily health check's seven checks, each returning a verdict record
-- {check, verdict = "pass"|"warn"|"fail", summary, detail}, thresholds from the environment's `health`.
local M = {}

--- Defaults for the environment's `health = {...}` table (each field may be overridden there).
M.defaults = {
  min_nodes = 2,                 -- fewer ready nodes in the cluster: fail
  max_failed_pods = 0,           -- more pods Failed / CrashLoopBackOff / OOMKilled: warn
  max_pending_pods = 0,          -- more Pending pods: warn
  node_cpu_warn = 80, node_cpu_fail = 95,          -- percent of allocatable
  node_memory_warn = 85, node_memory_fail = 95,
  db_storage_warn = 80, db_storage_fail = 95,      -- percent of the server's storage
  db_connections_warn = 80,                        -- percent of max_connections
  exceptions_warn = 100, exceptions_fail = 1000,   -- exceptions in the last 24 h
  cert_expiry_warn_days = 14, cert_expiry_fail_days = 3,
}

--- thresholds(env) -> the defaults overlaid with env.health
function M.thresholds(env)
  local t = {}
  for k, v in pairs(M.defaults) do t[k] = v end
  for k, v in pairs((env and env.health) or {}) do t[k] = v end
  return t
end

local function verdict(check, v, summary, detail)
  return {check = check, verdict = v, summary = summary, detail = detail}
end

local function worst(a, b)
  local rank = {pass = 1, warn = 2, fail = 3}
  return rank[b] > rank[a] and b or a
end

local function pct(s)
  if type(s) == "number" then return s end
  return tonumber(tostring(s or ""):match("([%d%.]+)")) or 0
end

local function level(value, warn_at, fail_at)
  if fail_at and value >= fail_at then return "fail" end
  if warn_at and value >= warn_at then return "warn" end
  return "pass"
end

--- 1. AKS cluster state and node count
function M.cluster(env, t)
  local aks = require("opsh.azure").aks
  local c = aks.get{env = env}
  local state = c.properties.provisioningState
  local power = c.properties.powerState and c.properties.powerState.code
  local nodes, parts = 0, {}
  for _, p in ipairs(c.properties.agentPoolProfiles or {}) do
    nodes = nodes + (p.count or 0)
    parts[#parts + 1] = string.format("%s=%d", p.name, p.count or 0)
  end
  local v = "pass"
  if state ~= "Succeeded" or (power and power ~= "Running") then v = "fail" end
  if nodes < t.min_nodes then v = "fail" end
  return verdict("cluster", v, string.format("%s, %d nodes", state, nodes), table.concat(parts, " "))
end

local function pod_status(p)
  local st = p.status or {}
  for _, cs in ipairs(st.containerStatuses or {}) do
    local w = cs.state and cs.state.waiting
    if w and w.reason then return w.reason end
    local term = cs.state and cs.state.terminated
    if term and term.reason and st.phase ~= "Succeeded" then return term.reason end
  end
  return st.phase or "Unknown"
end

--- 2. pod status counts in the environment's namespace
function M.pods(env, t, k)
  local list = k:list("pods", {namespace = env.namespace})
  local counts, bad, pending = {}, 0, 0
  for _, p in ipairs(list.items or {}) do
    local s = pod_status(p)
    counts[s] = (counts[s] or 0) + 1
    if s == "Pending" or s == "ContainerCreating" then pending = pending + 1
    elseif s ~= "Running" and s ~= "Succeeded" then bad = bad + 1 end
  end
  local keys = {}
  for s in pairs(counts) do keys[#keys + 1] = s end
  table.sort(keys)
  local parts = {}
  for _, s in ipairs(keys) do parts[#parts + 1] = string.format("%s=%d", s, counts[s]) end
  local v = "pass"
  if bad > t.max_failed_pods or pending > t.max_pending_pods then v = "warn" end
  return verdict("pods", v, string.format("%d pods, %d not healthy", #(list.items or {}), bad + pending),
    table.concat(parts, " "))
end

--- 3. node and pod resource usage (metrics.k8s.io)
function M.usage(_, t, k)
  local nodes = k:top_nodes{sort_by = "cpu"}
  local v, max_cpu, max_mem = "pass", 0, 0
  for _, n in ipairs(nodes) do
    local cpu, mem = pct(n.cpu_percent), pct(n.memory_percent)
    if cpu > max_cpu then max_cpu = cpu end
    if mem > max_mem then max_mem = mem end
    v = worst(v, level(cpu, t.node_cpu_warn, t.node_cpu_fail))
    v = worst(v, level(mem, t.node_memory_warn, t.node_memory_fail))
  end
  local pods = k:top_pods{sort_by = "cpu"}
  local top = {}
  for i = 1, math.min(3, #pods) do top[#top + 1] = pods[i].name .. " " .. tostring(pods[i].cpu_cores) end
  return verdict("usage", v, string.format("%d nodes, max cpu %d%%, max memory %d%%", #nodes, max_cpu, max_mem),
    "top pods: " .. table.concat(top, ", "))
end

--- 4. database state and storage, and a real query (connections vs max_connections)
function M.database(env, t, pool)
  local pg = require("opsh.azure").postgres
  local s = pg.get{env = env}
  local state = s.properties.state
  local size_gb = s.properties.storage and s.properties.storage.storageSizeGB or 0
  local row = pool:with(function(db)
    return db:query("SELECT (SELECT count(*) FROM pg_stat_activity) AS connections, "
      .. "current_setting('max_connections')::int AS max_connections, "
      .. "(SELECT sum(pg_database_size(datname)) FROM pg_database)::bigint AS bytes")[1]
  end)
  local used = size_gb > 0 and (tonumber(row.bytes) / (size_gb * 1024 ^ 3) * 100) or 0
  local conn = tonumber(row.connections) / tonumber(row.max_connections) * 100
  local v = state == "Ready" and "pass" or "fail"
  v = worst(v, level(used, t.db_storage_warn, t.db_storage_fail))
  v = worst(v, level(conn, t.db_connections_warn))
  return verdict("database", v, string.format("%s, %d GB, %.1f%% used", state, size_gb, used),
    string.format("connections %d/%d", tonumber(row.connections), tonumber(row.max_connections)))
end

--- 5. exceptions in the last 24 h (App Insights)
function M.exceptions(env, t)
  local azure = require("opsh.azure")
  if type(azure.insights) ~= "function" then
    return verdict("exceptions", "warn", "unavailable", "this build has no App Insights query client")
  end
  local rows = azure.insights(env):query("exceptions | where timestamp > ago(24h) | summarize count_ = count() by type",
    {timespan = "P1D"})
  local total, parts = 0, {}
  for _, r in ipairs(rows) do
    local n = tonumber(r.count_ or r["count_"]) or 0
    total = total + n
    parts[#parts + 1] = string.format("%s=%d", tostring(r.type), n)
  end
  return verdict("exceptions", level(total, t.exceptions_warn, t.exceptions_fail),
    string.format("%d in 24 h", total), table.concat(parts, " "))
end

--- 6. cert-manager Certificates: Ready and days to expiry
function M.certificates(env, t, k)
  local time = require("opsh.time")
  local list = k:list("certificates.cert-manager.io", {namespace = env.namespace})
  local v, parts = "pass", {}
  local now = os.time()
  for _, c in ipairs(list.items or {}) do
    local st = c.status or {}
    local ready = "Unknown"
    for _, cond in ipairs(st.conditions or {}) do if cond.type == "Ready" then ready = cond.status end end
    local days
    if st.notAfter then
      local ok, at = pcall(time.parse, st.notAfter)
      if ok and at then days = math.floor((at - now) / 86400) end
    end
    local cv = ready == "True" and "pass" or "fail"
    if days then cv = worst(cv, days <= t.cert_expiry_fail_days and "fail"
      or days <= t.cert_expiry_warn_days and "warn" or "pass") end
    v = worst(v, cv)
    parts[#parts + 1] = string.format("%s ready=%s%s", c.metadata.name, ready, days and (" " .. days .. "d") or "")
  end
  return verdict("certificates", v, string.format("%d certificates", #(list.items or {})), table.concat(parts, ", "))
end

--- 7. HPAs: able to scale, and not pinned at their maximum
function M.hpa(env, _, k)
  local list = k:list("horizontalpodautoscalers", {namespace = env.namespace})
  local v, parts = "pass", {}
  for _, h in ipairs(list.items or {}) do
    local sp, st = h.spec or {}, h.status or {}
    local hv = "pass"
    for _, cond in ipairs(st.conditions or {}) do
      if (cond.type == "AbleToScale" or cond.type == "ScalingActive") and cond.status == "False" then hv = "fail" end
    end
    if hv == "pass" and st.currentReplicas and sp.maxReplicas and st.currentReplicas >= sp.maxReplicas then hv = "warn" end
    v = worst(v, hv)
    parts[#parts + 1] = string.format("%s %s/%s-%s", h.metadata.name, tostring(st.currentReplicas or "?"),
      tostring(sp.minReplicas or 1), tostring(sp.maxReplicas or "?"))
  end
  return verdict("hpa", v, string.format("%d autoscalers", #(list.items or {})), table.concat(parts, ", "))
end

M.order = {"cluster", "pods", "usage", "database", "exceptions", "certificates", "hpa"}

--- run(ctx) -> list of verdict records, in M.order, the seven checks concurrently; a check that raises
--- is a fail with the error's one-line message.
function M.run(ctx)
  local opsh = require("opsh")
  local env = ctx.env
  local t = M.thresholds(env)
  local k = require("opsh.k8s").client{}
  local results = opsh.parallel(M.order, function(name)
    local ok, r = pcall(function()
      if name == "database" then return M.database(env, t, ctx.pg()) end
      return M[name](env, t, k)
    end)
    if ok then return r end
    local msg = type(r) == "table" and (r.message or tostring(r.kind)) or tostring(r)
    return verdict(name, "fail", "error", (msg:gsub("\n.*", "")))
  end)
  return results
end

return M
