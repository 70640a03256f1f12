-- scale-hpa: the runbook's HPA min/max/target patch. The runbook's targetCPUUtilizationPercentage patch is
-- a no-op on autoscaling/v2; this replaces the CPU metric in spec.metrics (opsh.k8s set_hpa), and only
-- when something differs.
return {
  description = "Set an HPA's min/max replicas and CPU target (autoscaling/v2) (runbook: Configure Autoscaling)",
  categories = {"scaling"},
  flags = {"mutating"},
  args = {
    hpa = {help = "HorizontalPodAutoscaler name", required = true},
    min = {help = "minReplicas", type = "integer"},
    max = {help = "maxReplicas", type = "integer"},
    cpu = {help = "target average CPU utilization (percent)", type = "integer"},
  },
  examples = {"opsh --env production run scale-hpa --hpa=web-hpa --min=5 --max=20 --cpu=60"},
  run = function(ctx, args)
    local opsh = require("opsh")
    if not (args.min or args.max or args.cpu) then opsh.raise("usage", "give at least one of --min, --max, --cpu") end
    local ns = ctx.env.namespace
    local k = require("opsh.k8s").client{namespace = ns}
    local function current()
      local h = k:get("horizontalpodautoscalers.autoscaling", args.hpa, {namespace = ns})
      local cpu
      for _, m in ipairs(h.spec.metrics or {}) do
        if m.type == "Resource" and m.resource and m.resource.name == "cpu" and m.resource.target then
          cpu = m.resource.target.averageUtilization
        end
      end
      return {min = h.spec.minReplicas or 1, max = h.spec.maxReplicas, cpu = cpu}
    end
    local want_min = args.min
    local want_max = args.max
    local before = ctx.step("read the HPA", current, {target = "hpa/" .. args.hpa})
    if (want_min or before.min) > (want_max or before.max) then
      opsh.raise("usage", string.format("min %d would exceed max %d", want_min or before.min, want_max or before.max))
    end
    ctx.lock("k8s:" .. ctx.env.aks.cluster .. "/" .. ns .. "/hpa/" .. args.hpa, {wait = 30})
    if (want_min and want_min ~= before.min) or (want_max and want_max ~= before.max) or (args.cpu and args.cpu ~= before.cpu) then
      ctx.step("patch the HPA", function()
        k:set_hpa(args.hpa, {min = want_min, max = want_max, cpu = args.cpu})
      end, {target = "hpa/" .. args.hpa, undo = function()
        k:set_hpa(args.hpa, {min = before.min, max = before.max, cpu = before.cpu})
      end})
    end
    local after = require("opsh.dryrun").active() and before or current()
    ctx.out({{hpa = args.hpa, min = after.min, max = after.max, cpu = after.cpu or "-",
      was = string.format("%d-%d cpu %s", before.min, before.max, tostring(before.cpu or "-"))}},
      {columns = {"hpa", "min", "max", "cpu", "was"}})
  end,
}
