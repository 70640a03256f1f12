-- opsh.azure.monitor: Azure Monitor (Microsoft.Insights) — metric alerts (create or update, list,
-- delete), action groups, metrics, diagnostic settings, and the Application Insights component
-- (retention). Defaults come from the environment: `monitor.action_group` and `monitor.workspace`
-- (resource IDs), `appinsights.app` and `appinsights.resource_group`.
local R = require("opsh.azure.resource")

local M = {}

M.ALERTS_API = "2018-03-01"
M.ACTION_GROUPS_API = "2023-01-01"
M.METRICS_API = "2024-02-01"
M.DIAGNOSTICS_API = "2021-05-01-preview"
M.COMPONENTS_API = "2020-02-02"

local ALERTS = "Microsoft.Insights/metricAlerts"

local function rg_of(opts, fname)
  local envt, arm = R.ctx(opts)
  return arm, R.pick(opts, "resource_group", envt.resource_group, fname, "the resource group"), envt
end

--- alerts{resource_group =} -> the metric alert rules of the resource group (one page, per the spec)
function M.alerts(opts)
  opts = R.args(opts, "monitor.alerts", R.set("resource_group"))
  local arm, rg = rg_of(opts, "monitor.alerts")
  return arm:all(arm:id(rg) .. "/providers/" .. ALERTS, {api_version = M.ALERTS_API})
end

--- alert{name =} -> the metric alert rule, or nil when there is none
function M.alert(opts)
  opts = R.args(opts, "monitor.alert", R.set("name", "resource_group"))
  local arm, rg = rg_of(opts, "monitor.alert")
  local name = R.pick(opts, "name", nil, "monitor.alert", "the alert name")
  return arm:get(arm:id(rg, ALERTS, name), {api_version = M.ALERTS_API, missing_ok = true})
end

local OPERATORS = {GreaterThan = true, GreaterThanOrEqual = true, LessThan = true, LessThanOrEqual = true,
  Equals = true, NotEquals = true}
local AGGREGATIONS = {Average = true, Count = true, Minimum = true, Maximum = true, Total = true}

--- put_alert{name =, scope = resource ID, description =, severity = 2, window = "PT5M", frequency =
-- "PT1M", criteria = {{metric =, operator = "GreaterThan", threshold =, aggregation = "Average",
-- namespace =}}, action_group = the environment's, enabled = true} -> the rule (create or update;
-- criteria of type Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria, as az makes them)
function M.put_alert(opts)
  opts = R.args(opts, "monitor.put_alert", R.set("name", "resource_group", "scope", "description", "severity",
    "window", "frequency", "criteria", "action_group", "enabled", "auto_mitigate"))
  local fname = "monitor.put_alert"
  local arm, rg, envt = rg_of(opts, fname)
  local name = R.pick(opts, "name", nil, fname, "the alert name")
  local scope = R.pick(opts, "scope", nil, fname, "scope (the resource ID the alert watches)")
  local severity = R.integer(opts, "severity", fname, 0) or 2
  if severity > 4 then R.usage(fname, "severity must be 0 to 4") end
  if type(opts.criteria) ~= "table" or #opts.criteria == 0 then
    R.usage(fname, "criteria must be a list of {metric =, operator =, threshold =, aggregation =}")
  end
  local all = {}
  for i, c in ipairs(opts.criteria) do
    if type(c) ~= "table" or type(c.metric) ~= "string" or type(c.threshold) ~= "number" then
      R.usage(fname, string.format("criteria[%d] needs metric (a string) and threshold (a number)", i))
    end
    local op, agg = c.operator or "GreaterThan", c.aggregation or "Average"
    if not OPERATORS[op] then R.usage(fname, string.format("criteria[%d]: unknown operator '%s'", i, op)) end
    if not AGGREGATIONS[agg] then R.usage(fname, string.format("criteria[%d]: unknown aggregation '%s'", i, agg)) end
    all[i] = {criterionType = "StaticThresholdCriterion", name = c.name or ("cond" .. i), metricName = c.metric,
      metricNamespace = c.namespace, operator = op, threshold = c.threshold, timeAggregation = agg,
      dimensions = c.dimensions or require("opsh.json").array({})}
  end
  local group = opts.action_group
  if group == nil then group = envt.monitor and envt.monitor.action_group end
  local actions = require("opsh.json").array({})
  if group then actions[1] = {actionGroupId = group} end
  local body = {location = "global", properties = {
    description = opts.description or name, severity = severity, enabled = opts.enabled ~= false,
    scopes = {scope}, evaluationFrequency = opts.frequency or "PT1M", windowSize = opts.window or "PT5M",
    autoMitigate = opts.auto_mitigate ~= false, actions = actions,
    criteria = {["odata.type"] = "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria", allOf = all},
  }}
  return arm:put(arm:id(rg, ALERTS, name), {api_version = M.ALERTS_API, body = body})
end

--- delete_alert{name =}
function M.delete_alert(opts)
  opts = R.args(opts, "monitor.delete_alert", R.set("name", "resource_group"))
  local arm, rg = rg_of(opts, "monitor.delete_alert")
  local name = R.pick(opts, "name", nil, "monitor.delete_alert", "the alert name")
  return arm:delete(arm:id(rg, ALERTS, name), {api_version = M.ALERTS_API})
end

--- action_group{id = the environment's monitor.action_group} -> the action group (receivers, enabled)
function M.action_group(opts)
  opts = R.args(opts, "monitor.action_group", R.set("id"))
  local envt, arm = R.ctx(opts)
  local id = R.pick(opts, "id", envt.monitor and envt.monitor.action_group, "monitor.action_group",
    "id (the action group's resource ID)")
  return arm:get(id, {api_version = M.ACTION_GROUPS_API})
end

--- metrics{resource = ID, metrics = {"cpu_percent", ...}, timespan = "start/end" or seconds back
-- (default 3600), interval = "PT1M", aggregation = "Average", namespace =, filter =} -> the answer
-- ({timespan, interval, value = {{name, unit, timeseries = {{data = {{timeStamp, average, ...}}}}}}})
function M.metrics(opts)
  opts = R.args(opts, "monitor.metrics", R.set("resource", "metrics", "timespan", "interval", "aggregation",
    "namespace", "filter"))
  local fname = "monitor.metrics"
  local _, arm = R.ctx(opts)
  local resource = R.pick(opts, "resource", nil, fname, "resource (the resource ID)")
  local names = opts.metrics
  if type(names) == "string" then names = {names} end
  if type(names) ~= "table" or #names == 0 then R.usage(fname, "metrics must be a metric name or a list of them") end
  local timespan = opts.timespan or 3600
  if type(timespan) == "number" then
    local now = os.time()
    timespan = os.date("!%Y-%m-%dT%H:%M:%SZ", now - math.floor(timespan)) .. "/" .. os.date("!%Y-%m-%dT%H:%M:%SZ", now)
  end
  local escaped = {}
  for i, n in ipairs(names) do escaped[i] = n:gsub(",", "%%2") end
  return arm:get(resource .. "/providers/Microsoft.Insights/metrics", {api_version = M.METRICS_API, query = {
    metricnames = table.concat(escaped, ","), timespan = timespan, interval = opts.interval or "PT1M",
    aggregation = opts.aggregation or "Average", metricnamespace = opts.namespace, ["$filter"] = opts.filter}})
end

--- diagnostic_setting{resource = ID, name =, workspace = the environment's monitor.workspace,
-- logs = {"kube-audit"}, metrics = {"AllMetrics"}} -> the setting (create or update)
function M.diagnostic_setting(opts)
  opts = R.args(opts, "monitor.diagnostic_setting", R.set("resource", "name", "workspace", "logs", "metrics"))
  local fname = "monitor.diagnostic_setting"
  local envt, arm = R.ctx(opts)
  local resource = R.pick(opts, "resource", nil, fname, "resource (the resource ID)")
  local name = R.pick(opts, "name", nil, fname, "the setting's name")
  local workspace = R.pick(opts, "workspace", envt.monitor and envt.monitor.workspace, fname,
    "workspace (the Log Analytics workspace ID)")
  local logs, metrics = {}, {}
  for i, c in ipairs(opts.logs or {"kube-audit"}) do logs[i] = {category = c, enabled = true} end
  for i, c in ipairs(opts.metrics or {}) do metrics[i] = {category = c, enabled = true} end
  local json = require("opsh.json")
  return arm:put(resource .. "/providers/Microsoft.Insights/diagnosticSettings/" .. name, {
    api_version = M.DIAGNOSTICS_API,
    body = {properties = {workspaceId = workspace, logs = json.array(logs), metrics = json.array(metrics)}}})
end

local COMPONENTS = "Microsoft.Insights/components"

local function component_of(opts, fname)
  local envt, arm = R.ctx(opts)
  local ai = envt.appinsights or {}
  local name = R.pick(opts, "name", ai.app, fname, "the Application Insights component")
  local rg = R.pick(opts, "resource_group", ai.resource_group or envt.resource_group, fname, "the resource group")
  return arm, arm:id(rg, COMPONENTS, name)
end

--- appinsights{name =} -> the Application Insights component (properties.RetentionInDays, AppId, ...)
function M.appinsights(opts)
  opts = R.args(opts, "monitor.appinsights", R.set("name", "resource_group"))
  local arm, id = component_of(opts, "monitor.appinsights")
  return arm:get(id, {api_version = M.COMPONENTS_API})
end

--- set_retention{days =} -> the component with its data retention changed (az monitor app-insights
-- component update --retention-time: the component read, changed, written back)
function M.set_retention(opts)
  opts = R.args(opts, "monitor.set_retention", R.set("name", "resource_group", "days"))
  local days = R.integer(opts, "days", "monitor.set_retention", 30)
  if not days then R.usage("monitor.set_retention", "days is required") end
  local arm, id = component_of(opts, "monitor.set_retention")
  local c = arm:get(id, {api_version = M.COMPONENTS_API})
  local props = R.copy(c.properties or {})
  props.RetentionInDays = days
  props.provisioningState = nil
  return arm:put(id, {api_version = M.COMPONENTS_API, body = {location = c.location, kind = c.kind or "web",
    tags = c.tags, properties = props}})
end

return M
