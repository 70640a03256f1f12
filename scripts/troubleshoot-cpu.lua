-- troubleshoot-cpu: the runbook's "High CPU Usage". The pods using the most CPU (metrics.k8s.io), the
-- slow/timeout/error lines of their recent logs, and per deployment a scaling suggestion from its replicas,
-- its HPA and its pods' usage against their CPU requests. It changes nothing: the suggestion is a command.
local k8s = require("opsh.k8s")

local PATTERN = {"slow", "timeout", "timed out", "error", "level=error", "exception"}

local function interesting(line)
  local l = line:lower()
  for _, p in ipairs(PATTERN) do if l:find(p, 1, true) then return true end end
  return false
end

-- the deployment that owns a pod, through its ReplicaSet (nil for any other owner)
local function deployment_of(pod)
  for _, o in ipairs(((pod or {}).metadata or {}).ownerReferences or {}) do
    if o.kind == "ReplicaSet" and o.controller then return o.name:match("^(.+)%-[^-]+$") end
  end
  return nil
end

local function cores(q)
  if not q then return nil end
  local n, unit = tostring(q):match("^([%d.]+)(m?)$")
  if not n then return nil end
  return tonumber(n) / (unit == "m" and 1000 or 1)
end

return {
  description = "Top pods by CPU, their slow/timeout/error log lines and a scaling suggestion "
    .. "(runbook: Troubleshooting / High CPU Usage)",
  categories = {"troubleshooting"},
  flags = {"read-only"},
  args = {
    top = {help = "how many pods to look at", type = "integer", default = 5},
    since = {help = "how far back to read their logs", type = "duration", default = "1h"},
    lines = {help = "matching log lines shown per pod", type = "integer", default = 5},
    target = {help = "CPU utilisation (% of requests) a suggestion aims for", type = "integer", default = 70},
  },
  run = function(ctx, args)
    local ns = ctx.env.namespace
    local k = k8s.client{namespace = ns}
    local top = ctx.step("top pods by CPU", function() return k:top_pods{sort_by = "cpu"} end)
    local pods = {}
    for _, p in ipairs(k:list("pods", {namespace = ns}).items or {}) do pods[p.metadata.name] = p end

    local rows, usage = {}, {}
    for i, p in ipairs(top) do
      local d = deployment_of(pods[p.name]) or "-"
      usage[d] = usage[d] or {cpu = 0, pods = 0, request = 0}
      local u = usage[d]
      u.cpu, u.pods = u.cpu + p.cpu, u.pods + 1
      for _, c in ipairs(((pods[p.name] or {}).spec or {}).containers or {}) do
        u.request = u.request + (cores(((c.resources or {}).requests or {}).cpu) or 0)
      end
      if i <= args.top then
        local text = k:log(p.name, {all_containers = true, since = args.since, tail = 2000})
        local hits, shown = 0, {}
        for line in text:gmatch("[^\n]+") do
          if interesting(line) then
            hits = hits + 1
            if #shown < args.lines then shown[#shown + 1] = line end
          end
        end
        rows[#rows + 1] = {pod = p.name, deployment = d, cpu = p.cpu_cores, memory = p.memory_bytes,
          matches = hits, lines = shown}
      end
    end
    local table_out = ctx.output == "table"
    if table_out then
      ctx.out(rows, {columns = {"pod", "deployment", "cpu", "memory", "matches"}})
      for _, r in ipairs(rows) do
        if #r.lines > 0 then
          ctx.section(r.pod .. ": " .. r.matches .. " slow/timeout/error lines (last " .. args.since .. " s)")
          for _, l in ipairs(r.lines) do io.stdout:write("  ", l, "\n") end
        end
      end
    end

    local hpas = {}
    for _, h in ipairs(k:list("horizontalpodautoscalers", {namespace = ns}).items or {}) do
      local ref = h.spec.scaleTargetRef or {}
      if ref.kind == "Deployment" then hpas[ref.name] = h end
    end
    local seen, suggestions = {}, {}
    for _, r in ipairs(rows) do
      local d = r.deployment
      if not seen[d] and d ~= "-" then
        seen[d] = true
        local u = usage[d]
        local ok, dep = pcall(k.get, k, "deployments", d)
        local replicas = ok and dep and dep.spec.replicas or u.pods
        local pct = u.request > 0 and math.floor(u.cpu / u.request * 100 + 0.5) or nil
        local want = pct and math.max(1, math.ceil(replicas * pct / args.target)) or replicas
        local h = hpas[d]
        local s = {deployment = d, replicas = replicas, cpu_cores = string.format("%.3f", u.cpu),
          cpu_percent_of_requests = pct, hpa = h and (h.spec.minReplicas .. "-" .. h.spec.maxReplicas) or "-"}
        if not pct then
          s.suggestion = "no CPU requests: set them so that usage can be judged"
        elseif want <= replicas then
          s.suggestion = "none: " .. pct .. "% of requests"
        elseif h then
          s.suggestion = want > h.spec.maxReplicas
            and string.format("opsh run scale-hpa --hpa=%s --min=%d --max=%d --cpu=%d", h.metadata.name,
              h.spec.minReplicas or 1, want, args.target)
            or "the HPA " .. h.metadata.name .. " can reach " .. want .. " replicas: check its metrics"
        else
          s.suggestion = string.format("opsh run scale-deployment --deployment=%s --replicas=%d", d, want)
        end
        if pct and want > replicas then ctx.problem(d .. " at " .. pct .. "% of its CPU requests") end
        suggestions[#suggestions + 1] = s
      end
    end
    if table_out then
      ctx.section("scaling")
      ctx.out(suggestions, {columns = {"deployment", "replicas", "hpa", "cpu_cores", "cpu_percent_of_requests", "suggestion"}})
    else
      ctx.out({pods = rows, scaling = suggestions})
    end
  end,
}
