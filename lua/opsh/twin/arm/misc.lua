-- opsh.twin.arm.misc: Azure DNS A record sets, storage accounts' blob service properties, consumption
-- usage details and Cost Management queries (costs made up per resource and day, stable between calls).
local json = require("opsh.json")
local platform = require("opsh.twin.platform")
local router = require("opsh.twin.arm.router")

local M = {}

local C = router.COLLECTION
local A = json.array

local function esc(s) return (s:gsub("[%-%.]", "%%%0")) end

-- ---- DNS ----

local function put_record(twin, ctx, key, body, patch)
  local zone_key = key:match("^(.+/dnszones/[^/]+)/a/[^/]+$")
  local zone = twin.store:get(C, zone_key)
  if not zone then router.fail(404, "ParentResourceNotFound", "The DNS zone was not found.") end
  local existing = twin.store:get(C, key)
  local if_match = ctx.if_match
  if if_match and if_match ~= "*" and (not existing or existing.etag ~= if_match:gsub('"', "")) then
    router.fail(412, "PreconditionFailed", "The record set has been modified (etag mismatch).")
  end
  local p = body.properties or {}
  local rec = existing or {id = zone.id .. "/A/" .. ctx.path:match("[^/]+$"), name = ctx.path:match("[^/]+$"),
    type = "Microsoft.Network/dnszones/A", properties = {TTL = 3600, ARecords = A({})}}
  if p.ARecords ~= nil or not patch then
    local list = {}
    for _, r in ipairs(p.ARecords or {}) do
      local ip = tostring(r.ipv4Address or "")
      local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
      if not a or tonumber(a) > 255 or tonumber(b) > 255 or tonumber(c) > 255 or tonumber(d) > 255 then
        router.fail(400, "BadRequest", "'" .. ip .. "' is not a valid IPv4 address.")
      end
      list[#list + 1] = {ipv4Address = ip}
    end
    rec.properties.ARecords = A(list)
  end
  if p.TTL ~= nil then rec.properties.TTL = p.TTL end
  if p.metadata ~= nil then rec.properties.metadata = p.metadata end
  rec.properties.fqdn = (rec.name == "@" and "" or rec.name .. ".") .. zone.name .. "."
  rec.properties.provisioningState = "Succeeded"
  rec.etag = router.uuid()
  twin.store:put(C, key, rec)
  return {status = existing and 200 or 201, headers = {ETag = rec.etag}, json = rec}
end

-- ---- storage blob service ----

local function put_blob_service(twin, ctx, key, body)
  local svc = twin.store:get(C, key)
  if not svc then router.fail(404, "ResourceNotFound", "The storage account was not found.") end
  local p = body.properties or {}
  local dr = p.deleteRetentionPolicy
  if dr and dr ~= json.null and dr.enabled and (math.type(dr.days) ~= "integer" or dr.days < 1 or dr.days > 365) then
    router.fail(400, "InvalidValuesForRequestParameters", "deleteRetentionPolicy.days must be 1 to 365.")
  end
  for k, v in pairs(p) do
    if v ~= json.null then svc.properties[k] = v end
  end
  twin.store:put(C, key, svc)
  return svc
end

-- ---- costs ----

local function top_resources(twin)
  local out = {}
  for _, item in ipairs(twin.store:list(C)) do
    if item.key:match("^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/[^/]+/[^/]+/[^/]+$")
      and not item.key:find("/dnszones/", 1, true) then
      out[#out + 1] = item.object
    end
  end
  return out
end

local function daily_cost(id, day)
  local h = 2166136261
  local s = id:lower() .. day
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  local base = id:find("managedClusters") and 48 or id:find("flexibleServers") and 22 or id:find("Redis") and 9 or 1.5
  return math.floor((base * (0.8 + (h % 400) / 1000)) * 100 + 0.5) / 100
end

local function day_range(filter)
  local now = os.time()
  local from = now - 30 * 86400
  local to = now
  for op, y, m, d in tostring(filter or ""):gmatch("(%a%a) '(%d+)-(%d+)-(%d+)") do
    local t = os.time({year = y, month = m, day = d, hour = 12})
    if op == "ge" or op == "gt" then from = t else to = t end
  end
  return from, to
end

local function usage(twin, req, ctx)
  local from, to = day_range(req.query["$filter"])
  if to - from > 93 * 86400 then router.fail(400, "BadRequest", "The date range may span at most 3 months.") end
  local items = {}
  for t = from, to, 86400 do
    local day = os.date("!%Y-%m-%d", t)
    for _, r in ipairs(top_resources(twin)) do
      local cost = daily_cost(r.id, day)
      local name = router.uuid()
      items[#items + 1] = {id = "/subscriptions/" .. platform.subscription .. "/providers/Microsoft.Consumption/usageDetails/" .. name,
        name = name, type = "Microsoft.Consumption/usageDetails", kind = "legacy", tags = r.tags or {},
        properties = {
          -- the 2018-01-31 shape az 2.45 reads, and the 2024-08-01 legacy shape
          billingPeriodId = "/subscriptions/" .. platform.subscription .. "/providers/Microsoft.Billing/billingPeriods/" .. os.date("!%Y%m", t),
          usageStart = day .. "T00:00:00.0000000Z", usageEnd = day .. "T23:59:59.0000000Z",
          instanceName = r.name, instanceId = r.id, instanceLocation = r.location, currency = "EUR",
          usageQuantity = 24, billableQuantity = 24, pretaxCost = cost, isEstimated = false,
          meterId = "00000000-0000-0000-0000-" .. string.format("%012d", #r.type), subscriptionGuid = platform.subscription,
          subscriptionName = platform.subscription_name, consumedService = r.type:match("^([^/]+)"),
          date = day .. "T00:00:00.0000000Z", cost = cost, quantity = 24, unitPrice = cost / 24, effectivePrice = cost / 24,
          billingCurrency = "EUR", resourceId = r.id, resourceName = r.name,
          resourceGroup = r.id:match("/resource[Gg]roups/([^/]+)"), chargeType = "Usage",
          subscriptionId = platform.subscription, resourceLocation = r.location}}
    end
  end
  if #items == 0 then return {status = 204} end
  local top = math.tointeger(tonumber(req.query["$top"] or ""))
  return router.page(req, ctx.base, items, top or tonumber(ctx.knobs.page_size) or 100)
end

local function cost_query(twin, req)
  local b = req:json() or {}
  local ds = b.dataset
  if type(ds) ~= "table" then router.fail(400, "BadRequest", "dataset is required.") end
  local tf = b.timeframe or "MonthToDate"
  local now = os.time()
  local from, to
  if tf == "Custom" then
    local tp = b.timePeriod or {}
    local y1, m1, d1 = tostring(tp.from):match("^(%d+)-(%d+)-(%d+)")
    local y2, m2, d2 = tostring(tp.to):match("^(%d+)-(%d+)-(%d+)")
    if not (y1 and y2) then router.fail(400, "BadRequest", "timePeriod.from and .to are required for Custom.") end
    from, to = os.time({year = y1, month = m1, day = d1, hour = 12}), os.time({year = y2, month = m2, day = d2, hour = 12})
  elseif tf == "TheLastMonth" then
    from, to = now - 60 * 86400, now - 30 * 86400
  else
    local d = os.date("!*t", now)
    from, to = os.time({year = d.year, month = d.month, day = 1, hour = 12}), now
  end
  local by_resource = false
  for _, g in ipairs(ds.grouping or {}) do
    if tostring(g.name):lower() == "resourceid" then by_resource = true end
  end
  local sums, order = {}, {}
  for t = from, to, 86400 do
    local day = os.date("!%Y-%m-%d", t)
    for _, r in ipairs(top_resources(twin)) do
      local k = by_resource and r.id:lower() or "all"
      if not sums[k] then sums[k] = 0; order[#order + 1] = k end
      sums[k] = sums[k] + daily_cost(r.id, day)
    end
  end
  local currency_of = router.knobs(twin).cost_currency or {}   -- knob: resource name -> its billing currency
  local rows = {}
  for _, k in ipairs(order) do
    local row = {math.floor(sums[k] * 100 + 0.5) / 100}
    if by_resource then row[#row + 1] = k end
    row[#row + 1] = by_resource and currency_of[k:match("[^/]+$")] or "EUR"
    rows[#rows + 1] = A(row)
  end
  local cols = {{name = "Cost", type = "Number"}}
  if by_resource then cols[#cols + 1] = {name = "ResourceId", type = "String"} end
  cols[#cols + 1] = {name = "Currency", type = "String"}
  return {id = req.path .. "/" .. router.uuid(), name = router.uuid(), type = "Microsoft.CostManagement/query",
    properties = {nextLink = json.null, columns = A(cols), rows = A(rows)}}
end

function M.routes(api)
  local twin, add = api.twin, api.add
  local RECORD = "^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.network/dnszones/[^/]+/a/[^/]+)$"
  add("PUT", RECORD, function(req, ctx, key)
    ctx.if_match = req.headers["if-match"]
    return put_record(twin, ctx, key, req:json() or {}, false)
  end)
  add("PATCH", RECORD, function(req, ctx, key)
    ctx.if_match = req.headers["if-match"]
    return put_record(twin, ctx, key, req:json() or {}, true)
  end)
  add("DELETE", RECORD, function(_, _, key)
    return {status = twin.store:delete(C, key) and 200 or 204}
  end)
  add("GET", "^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.network/dnszones/[^/]+)/recordsets$", function(req, ctx, zone)
    return router.page(req, ctx.base, api.children("^" .. esc(zone) .. "/[^/]+/[^/]+$"))
  end)
  local BLOB = "^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.storage/storageaccounts/[^/]+/blobservices/default)$"
  for _, method in ipairs({"PUT", "PATCH"}) do
    add(method, BLOB, function(req, _, key) return put_blob_service(twin, nil, key, req:json() or {}) end)
  end
  add("GET", "^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft%.storage/storageaccounts/[^/]+/blobservices$",
    function(_, ctx)
      return {value = A(api.children("^" .. esc(ctx.lpath) .. "/[^/]+$"))}
    end)
  add("GET", "^/subscriptions/[^/]+/providers/microsoft%.consumption/usagedetails$", function(req, ctx)
    return usage(twin, req, ctx)
  end)
  add("POST", "^/subscriptions/[^/]+.-/providers/microsoft%.costmanagement/query$", function(req)
    return cost_query(twin, req)
  end)
end

return M
