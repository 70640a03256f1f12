-- opsh.azure.query: the Log Analytics and App Insights query APIs (KQL) for the environment's workspace
-- (`monitor.workspace`) and App Insights component (`appinsights.app`).
--   local rows = azure.insights():query("exceptions | where timestamp > ago(1h) | summarize count() by type")
--   for _, r in ipairs(rows) do print(r.type, r.count_) end          -- rows.columns = {{name =, type =}, ...}
--   azure.logs():query("AzureDiagnostics | where Category == 'kube-audit' | take 100", {timespan = "P1D"})
-- Cells are typed by their column: datetime stays the API's ISO 8601 string, long/int/real are numbers,
-- bool booleans, dynamic decoded JSON, null nil. An answer with a partial error raises kind "azure" with
-- the rows so far in the error's `rows` field: a truncated result is never taken for a whole one.
local core = require("opsh._core")
local http = require("opsh.http")
local json = require("opsh.json")
local errors = require("opsh.azure.errors")

local M = {}

local Client = {}
Client.__index = Client

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function usage(fn, msg)
  error(core.error("usage", "bad argument to '" .. fn .. "' (" .. msg .. ")"), 3)
end

local function config(envt, msg)
  error(core.error("config", string.format("environment '%s': %s", tostring(envt.name), msg)), 0)
end

local function new(envt, which, path, shown)
  local azure = require("opsh.azure")
  local credential = azure.credential(envt)
  local base = (envt.endpoints and envt.endpoints[which] or credential.cloud.audiences[which]):gsub("/+$", "")
  return setmetatable({envt = envt, which = which, path = path, shown = shown,
    http = http.client{base_url = base, ca = credential.cloud.ca, auth = credential:auth(which),
      raise_for_status = false, headers = {Accept = "application/json"}, timeout = 300, retries = 2}}, Client)
end

--- logs([env [, workspace]]) -> client of the Log Analytics workspace: its customer ID (a GUID) or its
-- ARM resource ID (resource-centric query); default the environment's monitor.workspace
function M.logs(envt, workspace)
  envt = require("opsh.azure").env_of(envt)
  workspace = workspace or (envt.monitor or {}).workspace
  if type(workspace) ~= "string" or workspace == "" then
    config(envt, "no Log Analytics workspace (monitor.workspace: its ID or resource ID)")
  end
  local path
  if workspace:match(GUID) then
    path = "/v1/workspaces/" .. workspace .. "/query"
  elseif workspace:match("^/subscriptions/") then
    path = "/v1" .. workspace:gsub("/+$", "") .. "/query"
  else
    usage("logs", "workspace must be the workspace ID (a GUID) or its resource ID, got '" .. workspace .. "'")
  end
  return new(envt, "loganalytics", path, workspace)
end

--- insights([env [, app]]) -> client of the App Insights component: its App ID (a GUID) or its name
-- (looked up through ARM in appinsights.resource_group); default the environment's appinsights.app
function M.insights(envt, app)
  envt = require("opsh.azure").env_of(envt)
  local conf = envt.appinsights or {}
  app = app or conf.app
  if type(app) ~= "string" or app == "" then config(envt, "no App Insights component (appinsights.app)") end
  if not app:match(GUID) then
    local rg = conf.resource_group or envt.resource_group
    if not rg then config(envt, "appinsights.resource_group is needed to look up '" .. app .. "'") end
    local arm = require("opsh.azure").arm(envt)
    local comp = arm:get(arm:id(rg, "Microsoft.Insights/components", app), {api_version = "2020-02-02"})
    local id = type(comp) == "table" and type(comp.properties) == "table" and comp.properties.AppId
    if type(id) ~= "string" then
      error(core.error("azure", string.format("App Insights component '%s' has no AppId", app)), 0)
    end
    app = id
  end
  return new(envt, "appinsights", "/v1/apps/" .. app .. "/query", app)
end

local function decode_cell(v, t)
  if v == nil or v == json.null then return nil end
  if (t == "long" or t == "int" or t == "real" or t == "decimal") and type(v) == "string" then
    return tonumber(v) or v
  end
  if t == "bool" and type(v) == "number" then return v ~= 0 end
  if t == "dynamic" and type(v) == "string" then
    local ok, d = pcall(json.decode, v)
    if ok then return d end
  end
  return v
end

--- records(table) -> a list of records keyed by column name with `columns` = {{name, type}}
function M.records(t)
  local columns = {}
  for i, c in ipairs(t.columns or {}) do columns[i] = {name = c.name, type = c.type or c.ColumnType} end
  local out = {columns = columns}
  for i, row in ipairs(t.rows or {}) do
    local rec = {}
    for j, c in ipairs(columns) do rec[c.name] = decode_cell(row[j], c.type) end
    out[i] = rec
  end
  return out
end

-- the innermost message of an error body (the query APIs nest the useful one)
local function deepest(e)
  local msg, code = e.message, e.code
  local inner = e.innererror
  while type(inner) == "table" do
    msg, code = inner.message or msg, inner.code or code
    inner = inner.innererror
  end
  if type(e.details) == "table" and type(e.details[1]) == "table" and msg == e.message then
    local d = e.details[1]
    local m2, c2 = deepest(d)
    msg, code = m2 or msg, c2 or code
  end
  return msg, code
end

--- client:query(kql [, {timespan = "P1D" | "PT1H" | "start/end"}]) -> rows of the first (primary)
-- table (see the module comment)
function Client:query(kql, opts)
  if type(kql) ~= "string" or kql:match("^%s*$") then usage("query", "a KQL query string is required") end
  if opts ~= nil and type(opts) ~= "table" then usage("query", "options table expected") end
  local body = {query = kql}
  if opts and opts.timespan ~= nil then
    if type(opts.timespan) ~= "string" then usage("query", "timespan must be an ISO 8601 string such as \"P1D\"") end
    body.timespan = opts.timespan
  end
  local res = self.http:request{method = "POST", url = self.path, json = body, read = true}
  if res.status >= 400 then
    local e = errors.of_response(res)
    local doc = errors.parse(res.body)
    local ok, raw = pcall(json.decode, res.body or "")
    if ok and type(raw) == "table" and type(raw.error) == "table" then
      local msg = deepest(raw.error)
      if msg and msg ~= (doc and doc.message) then
        e.message = e.message .. ": " .. tostring(msg):gsub("%s+", " ")
      end
    end
    error(e, 0)
  end
  local ok, doc = pcall(res.json, res)
  if not ok or type(doc) ~= "table" or type(doc.tables) ~= "table" then
    error(core.error("azure", string.format("POST %s: the answer has no tables", res.url)), 0)
  end
  local tables = {}
  for i, t in ipairs(doc.tables) do tables[i] = M.records(t) end
  local rows = tables[1] or {columns = {}}
  if type(doc.error) == "table" then
    local msg, code = deepest(doc.error)
    error(core.error("azure", string.format("POST %s: %s: %s (%d rows received)", res.url,
      doc.error.code or "PartialError", tostring(msg):gsub("%s+", " "), #rows), {code = doc.error.code or "PartialError",
      inner_code = code, status = res.status, url = res.url, partial = true, rows = rows,
      details = doc.error.details, request_id = res.headers["x-ms-request-id"]}), 0)
  end
  return rows
end

return M
