-- scale-deployment: the runbook's "Manual Scaling" (kubectl scale ... && kubectl get deployments), which
-- waits for the rollout instead of listing pods, and sends nothing when the count is already right.
return {
  description = "Scale a deployment and wait for its rollout (runbook: Scaling Operations / Manual Scaling)",
  categories = {"scaling"},
  flags = {"mutating"},
  args = {
    deployment = {help = "deployment name", required = true},
    replicas = {help = "replica count", type = "integer", required = true},
    timeout = {help = "how long to wait for the rollout", type = "duration", default = "5m"},
  },
  examples = {"opsh --env production run scale-deployment --deployment=web --replicas=10"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local dryrun = require("opsh.dryrun")
    if args.replicas < 0 then opsh.raise("usage", "--replicas must be 0 or more") end
    local k = require("opsh.k8s").client{namespace = ctx.env.namespace}
    local target = "deployment/" .. args.deployment
    ctx.lock("k8s:" .. ctx.env.aks.cluster .. "/" .. ctx.env.namespace .. "/" .. target, {wait = 30})
    local before = ctx.step("read the deployment", function()
      return k:get("deployments", args.deployment, {namespace = ctx.env.namespace}).spec.replicas
    end, {target = target})
    if before ~= args.replicas then
      ctx.step(string.format("scale %d -> %d", before, args.replicas), function()
        k:scale("deployments", args.deployment, args.replicas)
      end, {target = target, undo = function() k:scale("deployments", args.deployment, before) end})
    end
    if not dryrun.active() then
      ctx.step("wait for the rollout", function()
        return k:rollout_status(args.deployment, {timeout = args.timeout})
      end, {target = target})
    end
    local d = k:get("deployments", args.deployment, {namespace = ctx.env.namespace})
    ctx.out({{deployment = args.deployment, before = before, replicas = d.spec.replicas,
      ready = (d.status or {}).readyReplicas or 0}}, {columns = {"deployment", "before", "replicas", "ready"}})
  end,
}
