-- monitoring-alerts: the runbook's four `az monitor metrics alert create` commands as one idempotent
-- procedure. Each rule is read first and written only when it differs (a second run sends nothing); the
-- action group is the environment's monitor.action_group, checked to exist before any rule is written.
-- Rule names are the runbook's in kebab case: opsh.azure.monitor does not yet escape spaces in a name.
local function alerts(app_id, cluster_id)
  return {
    {name = "high-error-rate-production", scope = app_id, severity = 2,
      description = "Alert when failed requests exceed 50 in 5 minutes",
      criteria = {{metric = "requests/failed", operator = "GreaterThan", threshold = 50, aggregation = "Count"}}},
    {name = "high-response-time-production", scope = app_id, severity = 2,
      description = "Alert when avg response time > 2 seconds",
      criteria = {{metric = "requests/duration", operator = "GreaterThan", threshold = 2000, aggregation = "Average"}}},
    {name = "high-node-cpu-production", scope = cluster_id, severity = 2,
      description = "Alert when average node CPU > 80%",
      criteria = {{metric = "node_cpu_usage_percentage", operator = "GreaterThan", threshold = 80, aggregation = "Average"}}},
    {name = "high-memory-usage-production", scope = cluster_id, severity = 2,
      description = "Alert when average node memory working set > 85%",
      criteria = {{metric = "node_memory_working_set_percentage", operator = "GreaterThan", threshold = 85,
        aggregation = "Average"}}},
  }
end

-- the differences between the wanted rule and the one Azure has (empty: nothing to send)
local function differences(want, have, group)
  if not have then return {"missing"} end
  local p, diffs = have.properties or {}, {}
  local function differ(what, a, b) if tostring(a):lower() ~= tostring(b):lower() then diffs[#diffs + 1] = what end end
  differ("description", want.description, p.description)
  differ("severity", want.severity, p.severity)
  differ("enabled", true, p.enabled)
  differ("scope", want.scope, (p.scopes or {})[1])
  differ("window", "PT5M", p.windowSize)
  differ("frequency", "PT1M", p.evaluationFrequency)
  differ("action group", group, ((p.actions or {})[1] or {}).actionGroupId)
  local all = (p.criteria or {}).allOf or {}
  if #all ~= #want.criteria then diffs[#diffs + 1] = "criteria" else
    for i, c in ipairs(want.criteria) do
      local h = all[i]
      if h.metricName ~= c.metric or h.operator ~= c.operator or h.threshold ~= c.threshold
        or h.timeAggregation ~= c.aggregation then diffs[#diffs + 1] = "criteria"; break end
    end
  end
  return diffs
end

return {
  description = "Create or update the four production alerts idempotently (runbook: Monitoring and Alerts)",
  categories = {"monitoring"},
  flags = {"mutating"},
  args = {},
  examples = {"opsh --env production run monitoring-alerts", "opsh --env production --dry-run run monitoring-alerts"},
  run = function(ctx)
    local opsh = require("opsh")
    local azure = require("opsh.azure")
    local monitor = azure.monitor
    local env = ctx.env
    local group = env.monitor and env.monitor.action_group
    if not group then opsh.raise("config", "the environment names no monitor.action_group") end
    local ids = ctx.step("read the action group, App Insights and the cluster", function()
      local g = monitor.action_group{env = env}
      return {group = g.id or group, app = monitor.appinsights{env = env}.id, cluster = azure.aks.get{env = env}.id}
    end)
    local rows = {}
    for _, want in ipairs(alerts(ids.app, ids.cluster)) do
      local have = monitor.alert{env = env, name = want.name}
      local diffs = differences(want, have, ids.group)
      if #diffs > 0 then
        ctx.step((have and "update " or "create ") .. want.name, function()
          monitor.put_alert{env = env, name = want.name, scope = want.scope, description = want.description,
            severity = want.severity, window = "PT5M", frequency = "PT1M", criteria = want.criteria,
            action_group = ids.group}
        end, {target = want.name})
      end
      local c = want.criteria[1]
      rows[#rows + 1] = {alert = want.name, condition = string.format("%s %s %s %g", c.aggregation, c.metric,
        c.operator == "GreaterThan" and ">" or c.operator, c.threshold),
        status = #diffs == 0 and "up to date" or (have and "updated: " .. table.concat(diffs, ", ") or "created")}
    end
    if require("opsh.dryrun").active() then
      for _, r in ipairs(rows) do r.status = r.status:gsub("^updated", "would update"):gsub("^created", "would create") end
    end
    ctx.out(rows, {columns = {"alert", "condition", "status"}})
  end,
}
