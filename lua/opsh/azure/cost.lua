-- opsh.azure.cost: what the platform costs — Consumption usage details (legacy, paged by nextLink)
-- and a Cost Management query grouped by resource. Both read; both are sent in a dry-run.
local R = require("opsh.azure.resource")

local M = {}

M.USAGE_API = "2024-08-01"
M.QUERY_API = "2023-11-01"

local function scope_of(opts, fname)
  local _, arm = R.ctx(opts)
  local scope = opts.scope or arm:id(opts.resource_group)
  if type(scope) ~= "string" or not scope:match("^/") then R.usage(fname, "scope must be a resource ID ('/subscriptions/…')") end
  return arm, scope
end

--- usage{scope = the subscription, filter =, top =, expand =, metric =} -> every usage detail
-- (properties.cost, date, resourceId, ...) of every page; {} when there are none (204)
function M.usage(opts)
  opts = R.args(opts, "cost.usage", R.set("scope", "resource_group", "filter", "top", "expand", "metric"))
  local arm, scope = scope_of(opts, "cost.usage")
  return arm:all(scope .. "/providers/Microsoft.Consumption/usageDetails", {api_version = M.USAGE_API,
    query = {["$filter"] = opts.filter, ["$top"] = opts.top, ["$expand"] = opts.expand, metric = opts.metric}})
end

--- query{scope = the subscription, type = "ActualCost", timeframe = "MonthToDate", from =, to =,
-- granularity = "None", group_by = {"ResourceId"}} -> rows as records ({Cost =, ResourceId =,
-- Currency =, ...}) from every page
function M.query(opts)
  opts = R.args(opts, "cost.query", R.set("scope", "resource_group", "type", "timeframe", "from", "to",
    "granularity", "group_by"))
  local arm, scope = scope_of(opts, "cost.query")
  local group_by = opts.group_by or {"ResourceId"}
  if type(group_by) == "string" then group_by = {group_by} end
  local grouping = {}
  for i, g in ipairs(group_by) do grouping[i] = {type = "Dimension", name = g} end
  local body = {type = opts.type or "ActualCost", timeframe = opts.timeframe or ((opts.from or opts.to) and "Custom"
    or "MonthToDate"), dataset = {granularity = opts.granularity or "None",
    aggregation = {totalCost = {name = "Cost", ["function"] = "Sum"}}, grouping = grouping}}
  if body.timeframe == "Custom" then
    if not (opts.from and opts.to) then R.usage("cost.query", "a custom timeframe needs from and to") end
    body.timePeriod = {from = opts.from, to = opts.to}
  end
  local out = {}
  local url = scope .. "/providers/Microsoft.CostManagement/query"
  local query_opts = {api_version = M.QUERY_API, body = body, read = true}
  while url do
    local doc = arm:post(url, query_opts)
    local p = doc and doc.properties or {}
    local cols = {}
    for i, c in ipairs(p.columns or {}) do cols[i] = c.name end
    for _, row in ipairs(p.rows or {}) do
      local rec = {}
      for i, name in ipairs(cols) do rec[name] = row[i] end
      out[#out + 1] = rec
    end
    url = type(p.nextLink) == "string" and p.nextLink ~= "" and p.nextLink or nil
  end
  return out
end

return M
