-- troubleshoot-memory: the runbook's "Out of Memory (OOMKilled)". The pods whose containers were
-- OOMKilled (reason or last state), the pods using the most memory, and for each OOMKilled container a
-- raised memory limit as the exact strategic-merge patch of its deployment. The patch is printed; it is
-- sent only with --apply, after confirmation, through opsh.k8s (so --dry-run sends it with dryRun=All).
local k8s = require("opsh.k8s")
local json = require("opsh.json")

local UNITS = {Ki = 2^10, Mi = 2^20, Gi = 2^30, Ti = 2^40, k = 1e3, M = 1e6, G = 1e9, [""] = 1}

local function bytes(q)
  if not q then return nil end
  local n, u = tostring(q):match("^([%d.]+)(%a*)$")
  return n and UNITS[u] and tonumber(n) * UNITS[u] or nil
end

local function mib(b) return string.format("%dMi", math.ceil(b / 2^20)) end

-- the deployment that owns a pod, through its ReplicaSet (nil for any other owner)
local function deployment_of(pod)
  for _, o in ipairs(((pod or {}).metadata or {}).ownerReferences or {}) do
    if o.kind == "ReplicaSet" and o.controller then return o.name:match("^(.+)%-[^-]+$") end
  end
  return nil
end

return {
  description = "OOMKilled pods, top pods by memory, and a raised memory limit offered as a patch "
    .. "(runbook: Troubleshooting / Out of Memory)",
  categories = {"troubleshooting"},
  flags = {"mutating"},
  args = {
    top = {help = "how many pods by memory to list", type = "integer", default = 5},
    factor = {help = "the new limit as a multiple of the current one", type = "number", default = 1.5},
    apply = {help = "send the patches (after confirmation; --dry-run sends them as dry runs)", type = "boolean", default = false},
  },
  run = function(ctx, args)
    local ns = ctx.env.namespace
    local k = k8s.client{namespace = ns}
    local oom = ctx.step("OOMKilled pods", function() return k:pods{reason = "OOMKilled"} end)
    local top = ctx.step("top pods by memory", function() return k:top_pods{sort_by = "memory"} end)

    local killed, patches = {}, {}
    for _, p in ipairs(oom) do
      local st = {}
      for _, cs in ipairs((p.pod.status or {}).containerStatuses or {}) do st[cs.name] = cs end
      for _, c in ipairs(p.pod.spec.containers or {}) do
        local cs = st[c.name] or {}
        local term = (cs.lastState or {}).terminated or (cs.state or {}).terminated or {}
        if term.reason == "OOMKilled" then
          local res = c.resources or {}
          local limit = bytes((res.limits or {}).memory)
          local d = deployment_of(p.pod)
          killed[#killed + 1] = {pod = p.name, container = c.name, deployment = d or "-", restarts = p.restarts,
            finished = term.finishedAt, limit = (res.limits or {}).memory or "-"}
          local key = tostring(d) .. "/" .. c.name
          if d and limit and not patches[key] then
            local new = mib(limit * args.factor)
            local req = bytes((res.requests or {}).memory)
            local r = {limits = {memory = new}}
            -- a request above the new limit would be refused; one equal to the old limit follows it
            if req and req >= limit then r.requests = {memory = new} end
            patches[key] = {deployment = d, container = c.name, from = res.limits.memory, to = new,
              patch = {spec = {template = {spec = {containers = {{name = c.name, resources = r}}}}}}}
            patches[#patches + 1] = patches[key]
          end
        end
      end
    end

    local rows = {}
    for i = 1, math.min(args.top, #top) do
      local p = top[i]
      rows[#rows + 1] = {pod = p.name, memory = p.memory_bytes, cpu = p.cpu_cores}
    end
    local table_out = ctx.output == "table"
    if table_out then
      ctx.section("OOMKilled")
      ctx.out(killed, {columns = {"pod", "container", "deployment", "restarts", "limit", "finished"}})
      ctx.section("top pods by memory")
      ctx.out(rows, {columns = {"pod", "memory", "cpu"}})
      if #patches > 0 then ctx.section("memory limit patches") end
      for _, pt in ipairs(patches) do
        io.stdout:write(string.format("# %s/%s: limit %s -> %s\nkubectl patch deployment %s -n %s --type strategic -p '%s'\n",
          pt.deployment, pt.container, pt.from, pt.to, pt.deployment, ns, json.encode(pt.patch)))
      end
    else
      local list = {}
      for _, pt in ipairs(patches) do list[#list + 1] = pt end
      ctx.out({oomkilled = killed, top = rows, patches = list})
    end
    for _, kd in ipairs(killed) do ctx.problem(kd.pod .. "/" .. kd.container .. " was OOMKilled (limit " .. kd.limit .. ")") end

    if args.apply and #patches > 0 then
      if not ctx.dry_run and not ctx.confirm(string.format("apply %d memory limit patch(es) in %s?", #patches, ns)) then
        ctx.log.warn("not applied")
        return
      end
      for _, pt in ipairs(patches) do
        ctx.step("raise " .. pt.deployment .. "/" .. pt.container .. " memory limit to " .. pt.to, function()
          return k:patch("deployments", pt.deployment, pt.patch, {type = "strategic"})
        end, {target = pt.deployment})
      end
    end
  end,
}
