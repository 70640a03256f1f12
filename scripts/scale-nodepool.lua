-- scale-nodepool: the runbook's node pool scaling and cluster autoscaler commands. A count is refused for a
-- pool under the autoscaler (Azure ignores it), min <= max is checked before anything is sent, and a pool
-- already as asked sends nothing.
return {
  description = "Scale an AKS node pool, or enable/update/disable its cluster autoscaler (runbook: Scale AKS Cluster)",
  categories = {"scaling"},
  flags = {"mutating"},
  args = {
    pool = {help = "node pool (default: the environment's aks.node_pool)"},
    count = {help = "node count (manual scaling)", type = "integer"},
    min = {help = "autoscaler minimum (enables or updates the autoscaler)", type = "integer"},
    max = {help = "autoscaler maximum", type = "integer"},
    disable_autoscaler = {help = "turn the autoscaler off (keeps the current count unless --count)", type = "boolean"},
  },
  examples = {"opsh --env production run scale-nodepool --pool=usernodepool --count=10",
    "opsh --env production run scale-nodepool --min=3 --max=15"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local aks = require("opsh.azure").aks
    local env = ctx.env
    local pool = args.pool or (env.aks and env.aks.node_pool)
    if not pool then opsh.raise("usage", "--pool is required (the environment has no aks.node_pool)") end
    local auto = args.min ~= nil or args.max ~= nil
    if auto and (args.min == nil or args.max == nil) then opsh.raise("usage", "--min and --max go together") end
    if auto and args.min > args.max then opsh.raise("usage", "--min must not exceed --max") end
    if auto and (args.count or args.disable_autoscaler) then
      opsh.raise("usage", "--min/--max and --count/--disable-autoscaler are different operations")
    end
    if not (auto or args.count or args.disable_autoscaler) then
      opsh.raise("usage", "give --count, --min and --max, or --disable-autoscaler")
    end
    local target = env.aks.cluster .. "/" .. pool
    ctx.lock("aks:" .. target, {wait = 60})
    local before = ctx.step("read the pool", function()
      local p = aks.pool{env = env, pool = pool}.properties
      return {count = p.count, auto = p.enableAutoScaling == true, min = p.minCount, max = p.maxCount}
    end, {target = target})
    if args.disable_autoscaler then
      if before.auto then
        ctx.step("disable the autoscaler", function()
          aks.autoscale{env = env, pool = pool, enabled = false, count = args.count}
        end, {target = target, undo = function() aks.autoscale{env = env, pool = pool, min = before.min, max = before.max} end})
      elseif args.count and args.count ~= before.count then
        ctx.step("scale " .. before.count .. " -> " .. args.count, function()
          aks.scale{env = env, pool = pool, count = args.count}
        end, {target = target, undo = function() aks.scale{env = env, pool = pool, count = before.count} end})
      end
    elseif auto then
      if not before.auto or before.min ~= args.min or before.max ~= args.max then
        ctx.step(string.format("autoscaler %d-%d", args.min, args.max), function()
          aks.autoscale{env = env, pool = pool, min = args.min, max = args.max}
        end, {target = target, undo = function()
          if before.auto then aks.autoscale{env = env, pool = pool, min = before.min, max = before.max}
          else aks.autoscale{env = env, pool = pool, enabled = false, count = before.count} end
        end})
      end
    else
      if before.auto then
        opsh.raise("usage", string.format("%s is under the cluster autoscaler (%d-%d): use --min/--max, or "
          .. "--disable-autoscaler --count=%d", pool, before.min or 0, before.max or 0, args.count))
      end
      if args.count < 0 then opsh.raise("usage", "--count must be 0 or more") end
      if args.count ~= before.count then
        ctx.step("scale " .. before.count .. " -> " .. args.count, function()
          aks.scale{env = env, pool = pool, count = args.count}
        end, {target = target, undo = function() aks.scale{env = env, pool = pool, count = before.count} end})
      end
    end
    local p = require("opsh.dryrun").active() and nil or aks.pool{env = env, pool = pool}.properties
    ctx.out({{pool = pool, count = p and p.count or before.count, autoscaler = p and (p.enableAutoScaling and
      string.format("%d-%d", p.minCount, p.maxCount) or "off") or "-",
      was = before.auto and string.format("%d (autoscaler %d-%d)", before.count, before.min, before.max) or tostring(before.count)}},
      {columns = {"pool", "count", "autoscaler", "was"}})
  end,
}
