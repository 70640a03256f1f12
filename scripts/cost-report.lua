-- cost-report: the runbook's "Cost Optimization". Cost by resource for a period (Cost Management query),
-- the AKS node cost estimated from the pools (count × the hourly price below × 730 h), and the reduction
-- actions: node pools without the autoscaler (a right-sized min/max from the nodes' CPU use), PostgreSQL
-- servers and Redis caches with no connections over the period, a spot pool outside production. Only
-- the autoscaler action can be applied (--apply-autoscaler, through opsh.azure.aks, so --dry-run plans it);
-- the others are printed as commands.
local azure = require("opsh.azure")
local k8s = require("opsh.k8s")

-- pay-as-you-go Linux prices per hour (USD, list prices; edit for your region and agreement)
local PRICES = {
  Standard_B2s = 0.0416, Standard_B4ms = 0.166, Standard_DS2_v2 = 0.146,
  Standard_D2s_v3 = 0.096, Standard_D4s_v3 = 0.192, Standard_D8s_v3 = 0.384, Standard_D16s_v3 = 0.768,
  Standard_D2s_v5 = 0.096, Standard_D4s_v5 = 0.192, Standard_D8s_v5 = 0.384, Standard_D16s_v5 = 0.768,
  Standard_E4s_v3 = 0.252, Standard_E8s_v3 = 0.504, Standard_F4s_v2 = 0.169, Standard_F8s_v2 = 0.338,
}
local HOURS = 730
local TARGET_CPU = 70

local function day(s, name)
  if s and not tostring(s):match("^%d%d%d%d%-%d%d%-%d%d$") then
    require("opsh").raise("usage", "--" .. name .. " must be a date YYYY-MM-DD")
  end
  return s
end

local function max_metric(env, id, metric, seconds)
  local ok, doc = pcall(azure.monitor.metrics, {env = env, resource = id, metrics = {metric},
    timespan = seconds, interval = "PT1H", aggregation = "Maximum"})
  if not ok then return nil end
  local max
  for _, m in ipairs(doc.value or {}) do
    for _, p in ipairs(((m.timeseries or {})[1] or {}).data or {}) do
      if p.maximum and (max == nil or p.maximum > max) then max = p.maximum end
    end
  end
  return max
end

return {
  description = "Cost by resource for a period, AKS node cost estimate, and reduction actions "
    .. "(runbook: Cost Optimization)",
  categories = {"cost"},
  flags = {"mutating"},
  args = {
    from = {help = "first day (YYYY-MM-DD; default: the first of this month)"},
    to = {help = "last day (YYYY-MM-DD; default: today)"},
    idle_days = {help = "a server or cache with no connections for this many days is unused", type = "integer", default = 7},
    apply_autoscaler = {help = "enable the autoscaler with the suggested min/max on the pools without it", type = "boolean", default = false},
  },
  run = function(ctx, args)
    local env = ctx.env
    local now = os.time()
    local from = day(args.from, "from") or os.date("!%Y-%m-01", now)
    local to = day(args.to, "to") or os.date("!%Y-%m-%d", now)
    if from > to then require("opsh").raise("usage", "--from is after --to") end
    local table_out = ctx.output == "table"

    local costs = ctx.step("cost by resource", function()
      return azure.cost.query{env = env, from = from, to = to, group_by = {"ResourceId"}}
    end)
    -- a billing account can bill in several currencies: one total per currency, never a sum across them
    local by_resource, totals, currencies = {}, {}, {}
    for _, r in ipairs(costs) do
      local id = tostring(r.ResourceId or "")
      local cur = tostring(r.Currency or "?")
      by_resource[#by_resource + 1] = {resource = id:match("([^/]+)$") or id, type = id:match("/providers/([^/]+/[^/]+)/") or "-",
        resource_group = id:match("/resource[Gg]roups/([^/]+)") or "-", cost = r.Cost, currency = r.Currency, id = id}
      if not totals[cur] then currencies[#currencies + 1] = cur end
      totals[cur] = (totals[cur] or 0) + (tonumber(r.Cost) or 0)
    end
    table.sort(currencies)
    local currency = #currencies == 1 and currencies[1] or nil   -- the one currency, when there is one
    local total = currency and totals[currency] or (#currencies == 0 and 0 or nil)
    table.sort(by_resource, function(a, b) return (a.cost or 0) > (b.cost or 0) end)

    local pools = ctx.step("node pools", function() return azure.aks.pools{env = env} end)
    local nodes_cpu
    do
      local ok, top = pcall(function() return k8s.client{namespace = env.namespace}:top_nodes{} end)
      if ok and #top > 0 then
        local sum = 0
        for _, n in ipairs(top) do sum = sum + (tonumber(tostring(n.cpu_percent):match("^(%d+)")) or 0) end
        nodes_cpu = sum / #top
      end
    end
    local estimate, node_total = {}, 0
    local actions = {}
    for _, p in ipairs(pools) do
      local pr = p.properties or {}
      local price = PRICES[pr.vmSize]
      local monthly = price and math.floor(price * HOURS * (pr.count or 0) * 100 + 0.5) / 100
      node_total = node_total + (monthly or 0)
      estimate[#estimate + 1] = {pool = p.name, vm_size = pr.vmSize, count = pr.count,
        autoscaler = pr.enableAutoScaling and (pr.minCount .. "-" .. pr.maxCount) or "off",
        hourly = price or "unknown", monthly = monthly or "unknown"}
      if not pr.enableAutoScaling and pr.count then
        local floor = pr.mode == "System" and 2 or 1
        local need = nodes_cpu and math.ceil(pr.count * nodes_cpu / TARGET_CPU) or pr.count
        local min = math.max(floor, math.min(pr.count, need))
        local max = math.max(pr.count, need) * 2
        actions[#actions + 1] = {action = "autoscaler", target = p.name, pool = p.name, min = min, max = max,
          detail = string.format("%d nodes at %s%% CPU: autoscale %d-%d", pr.count,
            nodes_cpu and string.format("%.0f", nodes_cpu) or "?", min, max),
          command = string.format("opsh run scale-nodepool --pool=%s --min=%d --max=%d", p.name, min, max),
          saving = price and min < pr.count
            and string.format("up to %.2f USD/month", price * HOURS * (pr.count - min)) or "-"}
      end
    end

    local seconds = args.idle_days * 86400
    local servers = ctx.step("connections on servers and caches", function()
      local out = {}
      for _, s in ipairs(azure.postgres.list{env = env}) do
        out[#out + 1] = {kind = "postgres", name = s.name, id = s.id,
          connections = max_metric(env, s.id, "active_connections", seconds)}
      end
      for _, c in ipairs(azure.redis.list{env = env}) do
        out[#out + 1] = {kind = "redis", name = c.name, id = c.id,
          connections = max_metric(env, c.id, "connectedclients", seconds)}
      end
      return out
    end)
    local cost_of = {}
    for _, r in ipairs(by_resource) do cost_of[r.id:lower()] = r end
    for _, s in ipairs(servers) do
      if s.connections == 0 then
        actions[#actions + 1] = {action = "unused " .. s.kind, target = s.name,
          detail = "no connections in " .. args.idle_days .. " days",
          command = s.kind == "postgres" and ("az postgres flexible-server delete --ids " .. s.id)
            or ("az redis delete --ids " .. s.id),
          saving = cost_of[s.id:lower()] and string.format("%.2f %s in the period", cost_of[s.id:lower()].cost,
            cost_of[s.id:lower()].currency or "") or "-"}
      end
    end
    if env.aks and env.name ~= "production" and not tostring(env.aks.cluster):find("prod", 1, true) then
      actions[#actions + 1] = {action = "spot pool", target = env.aks.cluster, detail = "outside production: a spot pool",
        command = "az aks nodepool add --cluster-name " .. env.aks.cluster .. " --name spotnodepool --priority Spot "
          .. "--eviction-policy Delete --spot-max-price -1 --enable-cluster-autoscaler --min-count 1 --max-count 5", saving = "-"}
    end

    if table_out then
      ctx.section(string.format("cost by resource, %s to %s", from, to))
      ctx.out(by_resource, {columns = {"resource", "type", "resource_group", "cost", "currency"}})
      local parts = {}
      for _, cur in ipairs(currencies) do parts[#parts + 1] = string.format("%.2f %s", totals[cur], cur) end
      io.stdout:write("total " .. (#parts > 0 and table.concat(parts, "; ") or "0.00") .. "\n")
      ctx.section("AKS node cost estimate (list prices in scripts/cost-report.lua, USD, " .. HOURS .. " h a month)")
      ctx.out(estimate, {columns = {"pool", "vm_size", "count", "autoscaler", "hourly", "monthly"}})
      io.stdout:write(string.format("total %.2f USD a month\n", node_total))
      ctx.section("servers and caches: most connections in " .. args.idle_days .. " days")
      ctx.out(servers, {columns = {"kind", "name", "connections"}})
      ctx.section("reduction actions")
      ctx.out(actions, {columns = {"action", "target", "detail", "saving", "command"}})
    else
      ctx.out({from = from, to = to, costs = by_resource, total = total, currency = currency, totals = totals, nodes = estimate,
        node_total = node_total, node_cpu_percent = nodes_cpu, servers = servers, actions = actions})
    end

    if args.apply_autoscaler then
      for _, a in ipairs(actions) do
        if a.action == "autoscaler" then
          ctx.lock("aks:" .. env.aks.cluster .. "/" .. a.pool, {wait = 30})
          ctx.step("autoscale " .. a.pool .. " " .. a.min .. "-" .. a.max, function()
            return azure.aks.autoscale{env = env, pool = a.pool, min = a.min, max = a.max}
          end, {target = a.pool})
        end
      end
    end
  end,
}
