-- opsh.twin.arm.monitor: Microsoft.Insights metric alerts, diagnostic settings, metrics (made-up but
-- stable series: the same query gives the same numbers), and App Insights components' updates.
local json = require("opsh.json")
local router = require("opsh.twin.arm.router")

local M = {}

local C = router.COLLECTION
local A = json.array

local CRITERIA = {["Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria"] = true,
  ["Microsoft.Azure.Monitor.MultipleResourceMultipleMetricCriteria"] = true,
  ["Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria"] = true}
local OPERATORS = {Equals = true, NotEquals = true, GreaterThan = true, GreaterThanOrEqual = true, LessThan = true,
  LessThanOrEqual = true, GreaterOrLessThan = true}
local AGGREGATIONS = {Average = true, Count = true, Minimum = true, Maximum = true, Total = true}

local function put_alert(twin, ctx, key, body)
  local p = body.properties
  if type(p) ~= "table" then router.fail(400, "BadRequest", "properties is required.") end
  for _, f in ipairs({"severity", "enabled", "evaluationFrequency", "windowSize", "criteria"}) do
    if p[f] == nil or p[f] == json.null then router.fail(400, "BadRequest", "properties." .. f .. " is required.") end
  end
  if math.type(p.severity) ~= "integer" or p.severity < 0 or p.severity > 4 then
    router.fail(400, "BadRequest", "severity must be 0 to 4.")
  end
  local odata = p.criteria["odata.type"]
  if not CRITERIA[odata] then
    router.fail(400, "BadRequest", "criteria odata.type '" .. tostring(odata) .. "' is not supported.")
  end
  for _, c in ipairs(p.criteria.allOf or {}) do
    if not OPERATORS[c.operator] or not AGGREGATIONS[c.timeAggregation] or type(c.metricName) ~= "string" then
      router.fail(400, "BadRequest", "each criterion needs metricName, a known operator and timeAggregation.")
    end
  end
  for _, s in ipairs(p.scopes or {}) do
    if not twin.store:get(C, tostring(s):lower()) then
      router.fail(400, "ResourceNotFound", "The scope " .. tostring(s) .. " was not found.")
    end
  end
  local name = ctx.path:match("[^/]+$")
  local obj = {id = ctx.path, name = name, type = "Microsoft.Insights/metricAlerts", location = body.location or "global",
    tags = body.tags or {}, properties = p}
  p.autoMitigate = p.autoMitigate == nil and true or p.autoMitigate
  p.lastUpdatedTime = router.now_iso()
  twin.store:put(C, key, obj)
  return {status = 200, json = obj}
end

local function put_diagnostic(twin, ctx, key, resource_key, body)
  local resource = twin.store:get(C, resource_key)
  if not resource then router.fail(404, "ResourceNotFound", "The resource " .. resource_key .. " was not found.") end
  local p = body.properties or {}
  if not (p.workspaceId or p.storageAccountId or p.eventHubAuthorizationRuleId) then
    router.fail(400, "BadRequest", "A diagnostic setting needs a destination (workspaceId, storageAccountId or event hub).")
  end
  if p.workspaceId and not twin.store:get(C, tostring(p.workspaceId):lower()) then
    router.fail(400, "BadRequest", "The workspace " .. tostring(p.workspaceId) .. " was not found.")
  end
  local categories = {}
  for _, c in ipairs(M.categories(resource)) do categories[c] = true end
  for _, l in ipairs(p.logs or {}) do
    if l.category and not categories[l.category] then
      router.fail(400, "BadRequest", string.format("Category '%s' is not supported for %s.", l.category, resource.type))
    end
  end
  local obj = {id = ctx.path, name = ctx.path:match("[^/]+$"), type = "Microsoft.Insights/diagnosticSettings",
    properties = p}
  twin.store:put(C, key, obj)
  return obj
end

function M.categories(resource)
  local t = tostring(resource.type):lower()
  if t:find("managedclusters") then
    return {"kube-apiserver", "kube-audit", "kube-audit-admin", "kube-controller-manager", "kube-scheduler",
      "cluster-autoscaler", "cloud-controller-manager", "guard", "csi-azuredisk-controller", "csi-azurefile-controller",
      "csi-snapshot-controller"}
  elseif t:find("flexibleservers") then
    return {"PostgreSQLLogs", "PostgreSQLFlexSessions", "PostgreSQLFlexQueryStoreRuntime"}
  end
  return {"AuditEvent", "AllMetrics"}
end

-- a stable pseudo-random value per (resource, metric, time)
local function sample(seed_text, t)
  local h = 2166136261
  for i = 1, #seed_text do h = ((h ~ seed_text:byte(i)) * 16777619) & 0xffffffff end
  h = ((h ~ (t // 60)) * 16777619) & 0xffffffff
  return 20 + (h % 6000) / 100
end

local function parse_iso(s)
  local y, mo, d, hh, mm, ss = tostring(s):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  local t = os.time({year = y, month = mo, day = d, hour = hh, min = mm, sec = ss, isdst = false})
  -- os.time reads local time; the twin runs in UTC like the servers' clocks are compared
  local offset = os.time(os.date("!*t", t)) - t
  return t - offset
end

local function duration(s)
  if s == "FULL" then return nil end
  local h = tonumber(tostring(s):match("(%d+)H")) or 0
  local m = tonumber(tostring(s):match("T.-(%d+)M")) or 0
  local d = tonumber(tostring(s):match("P(%d+)D")) or 0
  local total = d * 86400 + h * 3600 + m * 60
  return total > 0 and total or 60
end

local function metrics(req, ctx, resource)
  local q = req.query
  local names = {}
  for n in (q.metricnames or ""):gmatch("[^,]+") do names[#names + 1] = n end
  if #names == 0 then router.fail(400, "BadRequest", "metricnames is required.") end
  local now = os.time()
  local from, to = now - 3600, now
  if q.timespan then
    -- az 2.45 sends the timespan percent-encoded twice; ARM decodes it again
    local span = q.timespan:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    local a, b = span:match("^([^/]+)/([^/]+)$")
    from, to = parse_iso(a), parse_iso(b)
    if not (from and to) then router.fail(400, "BadRequest", "timespan must be 'start/end' in ISO 8601.") end
  end
  if to <= from then router.fail(400, "BadRequest", "The timespan's end must be after its start.") end
  local step = duration(q.interval or "PT1M") or (to - from)
  if (to - from) / step > 1500 then router.fail(400, "BadRequest", "Too many points: widen the interval.") end
  local aggs = {}
  for a in (q.aggregation or "Average"):gmatch("[^,]+") do aggs[#aggs + 1] = a:lower() end
  local values = {}
  -- knob metric_values: {["<resource name>"] = {["<metric>"] = value}} holds a metric at one value (an idle cache: 0)
  local fixed = ((ctx.knobs or {}).metric_values or {})[resource.name] or {}
  for _, n in ipairs(names) do
    local data = {}
    for t = from - from % step, to - 1, step do
      local point = {timeStamp = os.date("!%Y-%m-%dT%H:%M:%SZ", t)}
      local v = fixed[n] or sample(resource.id .. n, t)
      for _, a in ipairs(aggs) do
        point[a] = a == "count" and 60 or a == "total" and v * 60 or a == "maximum" and v * 1.2
          or a == "minimum" and v * 0.8 or v
      end
      data[#data + 1] = point
    end
    values[#values + 1] = {id = resource.id .. "/providers/Microsoft.Insights/metrics/" .. n, type = "Microsoft.Insights/metrics",
      name = {value = n, localizedValue = n}, displayDescription = n, unit = n:find("percent") and "Percent" or "Count",
      errorCode = "Success", timeseries = A({{metadatavalues = A({}), data = A(data)}})}
  end
  return {cost = #values, timespan = os.date("!%Y-%m-%dT%H:%M:%SZ", from) .. "/" .. os.date("!%Y-%m-%dT%H:%M:%SZ", to),
    interval = q.interval or "PT1M", namespace = q.metricnamespace or resource.type, resourceregion = resource.location,
    value = A(values)}
end

function M.routes(api)
  local twin, add = api.twin, api.add
  local ALERT = "^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.insights/metricalerts/[^/]+$"
  add("PUT", ALERT, function(req, ctx) return put_alert(twin, ctx, ctx.lpath, req:json() or {}) end)
  add("PATCH", ALERT, function(req, ctx)
    local a = twin.store:get(C, ctx.lpath)
    if not a then router.fail(404, "ResourceNotFound", "The metric alert was not found.") end
    local b = req:json() or {}
    for k, v in pairs(b.properties or {}) do a.properties[k] = v end
    if b.tags then a.tags = b.tags end
    twin.store:put(C, ctx.lpath, a)
    return a
  end)
  add("GET", "^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.insights/metricalerts$", function(_, ctx)
    -- a single page: the spec's nextLinkName is null
    return {value = A(api.children("^" .. ctx.lpath:gsub("[%-%.]", "%%%0") .. "/[^/]+$"))}
  end)
  add("GET", "^/subscriptions/[^/]+/providers/microsoft%.insights/metricalerts$", function()
    return {value = A(api.children("/providers/microsoft%.insights/metricalerts/[^/]+$"))}
  end)
  add("PUT", "^(.+)/providers/microsoft%.insights/diagnosticsettings/[^/]+$", function(req, ctx, resource_key)
    return put_diagnostic(twin, ctx, ctx.lpath, resource_key, req:json() or {})
  end)
  add("GET", "^(.+)/providers/microsoft%.insights/diagnosticsettings$", function(_, ctx)
    return {value = A(api.children("^" .. ctx.lpath:gsub("[%-%.]", "%%%0") .. "/[^/]+$"))}
  end)
  add("GET", "^(.+)/providers/microsoft%.insights/diagnosticsettingscategories$", function(_, ctx, resource_key)
    local r = twin.store:get(C, resource_key)
    if not r then router.fail(404, "ResourceNotFound", "The resource was not found.") end
    local out = {}
    for _, c in ipairs(M.categories(r)) do
      out[#out + 1] = {id = ctx.path .. "/" .. c, name = c, type = "Microsoft.Insights/diagnosticSettingsCategories",
        properties = {categoryType = "Logs"}}
    end
    return {value = A(out)}
  end)
  for _, kind in ipairs({"metricalerts", "diagnosticsettings"}) do
    add("DELETE", "^(.+)/providers/microsoft%.insights/" .. kind .. "/[^/]+$", function(_, ctx)
      local gone = twin.store:delete(C, ctx.lpath)
      return {status = gone and 200 or 204}
    end)
  end
  add("GET", "^(.+)/providers/microsoft%.insights/metrics$", function(req, ctx, resource_key)
    local r = twin.store:get(C, resource_key)
    if not r then router.fail(404, "ResourceNotFound", "The resource " .. resource_key .. " was not found.") end
    return metrics(req, ctx, r)
  end)
  add("GET", "^(.+)/providers/microsoft%.insights/metricdefinitions$", function(_, _, resource_key)
    local r = twin.store:get(C, resource_key)
    if not r then router.fail(404, "ResourceNotFound", "The resource was not found.") end
    return {value = A({})}
  end)
  -- App Insights components: retention and other settings
  local COMPONENT = "^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.insights/components/[^/]+$"
  for _, method in ipairs({"PUT", "PATCH"}) do
    add(method, COMPONENT, function(req, ctx)
      local c = twin.store:get(C, ctx.lpath)
      if not c then router.fail(400, "BadRequest", "The twin does not create App Insights components.") end
      local b = req:json() or {}
      local p = b.properties or {}
      local days = p.RetentionInDays
      local allowed = {[30] = 1, [60] = 1, [90] = 1, [120] = 1, [180] = 1, [270] = 1, [365] = 1, [550] = 1, [730] = 1}
      if days ~= nil and not allowed[days] then
        router.fail(400, "BadRequest", "RetentionInDays must be one of 30, 60, 90, 120, 180, 270, 365, 550, 730.")
      end
      for k, v in pairs(p) do if v ~= json.null and k ~= "provisioningState" then c.properties[k] = v end end
      if b.tags then c.tags = b.tags end
      twin.store:put(C, ctx.lpath, c)
      return c
    end)
  end
end

return M
