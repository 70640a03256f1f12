-- opsh.twin.query: the App Insights (`/v1/apps/{appId}/query`) and Log Analytics
-- (`/v1/workspaces/{workspaceId}/query`, resource-centric `/v1/{resourceId}/query`) query APIs on a
-- listener of their own, over the seeded telemetry of opsh.twin.query.seed (the 3 days before the twin
-- started) and the opsh.kql subset. Bearer tokens are checked for the API's audience. GET with
-- ?query=&timespan= or POST {query, timespan}. Knobs (store `query.knobs`, key "knobs"): row_limit (a
-- larger result is cut there and answered with a PartialError, as the real API does).
local json = require("opsh.json")
local time = require("opsh.time")
local core = require("opsh._core")
local kql = require("opsh.kql")
local identity = require("opsh.twin.identity")
local platform = require("opsh.twin.platform")
local seed = require("opsh.twin.query.seed")

local M = {name = "query", listener = true}

-- the production app's App ID and workspace's customer ID (the ARM twin's components carry the same)
M.APP_ID = "c1a2b3d4-0e5f-4a6b-8c7d-9e0f1a2b3c4d"
M.WORKSPACE_ID = "a7b8c9d0-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
M.LOGANALYTICS = "https://api.loganalytics.io"
M.APPINSIGHTS = "https://api.applicationinsights.io"
M.ROW_LIMIT = 500000

local TIME_COLUMN = {AzureDiagnostics = "TimeGenerated"}

local function uuid()
  local b = {}
  for i = 1, 16 do b[i] = string.format("%02x", math.random(0, 255)) end
  local s = table.concat(b)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-4" .. s:sub(14, 16) .. "-a" .. s:sub(18, 20) .. "-" .. s:sub(21, 32)
end

local function err(status, code, message, inner)
  return {status = status, json = {error = {code = code, message = message, correlationId = uuid(),
    innererror = inner}}}
end

-- timespan: an ISO 8601 duration ("P1D", "PT12H": ending now), "start/end" or "start/duration"
local function parse_timespan(ts, now)
  if ts == nil or ts == "" then return nil end
  local a, b = ts:match("^([^/]+)/([^/]+)$")
  local ok, from, to = pcall(function()
    if not a then return now - time.duration(ts), now end
    local s = time.parse(a, {assume_utc = true})
    if b:match("^P") then return s, s + time.duration(b) end
    return s, time.parse(b, {assume_utc = true})
  end)
  if not ok then return nil, nil, "Invalid timespan '" .. tostring(ts) .. "'" end
  return from, to
end

local function lower_keys(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k:lower()] = v end
  return out
end

local function serve_query(twin, req, tables, audience)
  local claims, denied = identity.verify(twin, req.headers.authorization, audience)
  if not claims then return denied end
  local q, ts
  if req.method == "POST" then
    local ok, body = pcall(json.decode, req.body or "")
    if not ok or type(body) ~= "table" then
      return err(400, "BadArgumentError", "The request had some invalid properties",
        {code = "InvalidBody", message = "The request body is not a JSON object"})
    end
    body = lower_keys(body)
    q, ts = body.query, body.timespan
  else
    local query = lower_keys(req.query)
    q, ts = query.query, query.timespan
  end
  if type(q) ~= "string" or q == "" then
    return err(400, "BadArgumentError", "The request had some invalid properties",
      {code = "QueryMissing", message = "The query parameter is missing."})
  end
  local now = os.time()
  local from, to, bad = parse_timespan(ts, now)
  if bad then
    return err(400, "BadArgumentError", "The request had some invalid properties",
      {code = "InvalidTimespan", message = bad})
  end
  local source = q:match("^%s*([%w_]+)")
  local ok, result = pcall(kql.run, q, tables, {now = now, from = from, to = to,
    time_column = TIME_COLUMN[source] or "timestamp"})
  if not ok then
    local message = core.is_error(result) and result.message:gsub("^KQL: ", "") or tostring(result)
    local code = message:find("^unknown") and "SemanticError" or "SyntaxError"
    return err(400, "BadArgumentError", "The request had some invalid properties",
      {code = code, message = code == "SemanticError" and "A semantic error occurred." or "A syntax error occurred.",
        innererror = {code = code == "SemanticError" and "SEM0100" or "SYN0002", message = message}})
  end
  local knobs = twin.store:get("query.knobs", "knobs") or {}
  local limit = tonumber(knobs.row_limit) or M.ROW_LIMIT
  local out = {tables = json.array({result})}
  result.columns = json.array(result.columns)
  local rows = result.rows
  if #rows > limit then
    local cut = {}
    for i = 1, limit do cut[i] = rows[i] end
    rows = cut
    out.error = {code = "PartialError", message = "There were some errors when processing your query.",
      details = json.array({{code = "EngineError", message = "Something went wrong processing your query on the server.",
        innererror = {code = "-2133196797", message = string.format("Query result set has exceeded the internal "
          .. "record count limit %d records (E_QUERY_RESULT_SET_TOO_LARGE).", limit),
          severity = 2, severityName = "Error"}}})}
  end
  for i, r in ipairs(rows) do rows[i] = json.array(r) end
  result.rows = json.array(rows)
  return {status = 200, json = out}
end

local function app_known(id)
  id = id:lower()
  return id == M.APP_ID or id == platform.regions[1].appinsights:lower()
end

local function workspace_known(id)
  id = id:lower()
  return id == M.WORKSPACE_ID or id == platform.regions[1].workspace:lower()
end

function M.mount(srv, twin)
  local started = os.time()
  local insights = seed.tables(started)
  local logs = seed.workspace(started)
  local workspace_rid = platform.resource_id(platform.regions[1].resource_group,
    "Microsoft.OperationalInsights/workspaces", platform.regions[1].workspace)
  local component_rid = platform.resource_id(platform.regions[1].resource_group,
    "Microsoft.Insights/components", platform.regions[1].appinsights)
  srv:handle(function(req)
    local path = req.path:gsub("%?.*$", ""):gsub("/+$", "")
    local res
    local app = path:match("^/v1/apps/([^/]+)/query$")
    local ws = path:match("^/v1/workspaces/([^/]+)/query$")
    local rid = path:match("^/v1(/subscriptions/.+)/query$")
    if req.method ~= "GET" and req.method ~= "POST" then
      res = err(405, "MethodNotAllowed", "The twin serves GET and POST on query paths only.")
    elseif app then
      if not app_known(app) then
        res = err(404, "PathNotFoundError", "The requested path does not exist",
          {code = "ApplicationNotFoundError", message = "Application '" .. app .. "' could not be found"})
      else
        res = serve_query(twin, req, insights, M.APPINSIGHTS)
      end
    elseif ws then
      if not workspace_known(ws) then
        res = err(404, "PathNotFoundError", "The requested path does not exist",
          {code = "WorkspaceNotFoundError", message = "Workspace '" .. ws .. "' could not be found"})
      else
        res = serve_query(twin, req, logs, M.LOGANALYTICS)
      end
    elseif rid and rid:lower() == workspace_rid then
      res = serve_query(twin, req, logs, M.LOGANALYTICS)
    elseif rid and rid:lower() == component_rid then
      res = serve_query(twin, req, insights, {M.LOGANALYTICS, M.APPINSIGHTS})
    else
      res = err(404, "PathNotFoundError", "The requested path does not exist")
    end
    res.headers = res.headers or {}
    res.headers["x-ms-request-id"] = uuid()
    res.headers["x-ms-correlation-request-id"] = req.headers["x-ms-correlation-request-id"] or res.headers["x-ms-request-id"]
    return res
  end)
end

function M.environment(_twin, env, endpoint)
  env.endpoints = env.endpoints or {}
  env.endpoints.loganalytics = endpoint
  env.endpoints.appinsights = endpoint
  env.appinsights = env.appinsights or {app = platform.regions[1].appinsights,
    resource_group = platform.regions[1].resource_group}
  env.monitor = env.monitor or {}
  env.monitor.workspace = env.monitor.workspace or platform.resource_id(platform.regions[1].resource_group,
    "Microsoft.OperationalInsights/workspaces", platform.regions[1].workspace)
end

function M.shell(_twin, exports, endpoint)
  exports.OPSH_LOGANALYTICS_ENDPOINT = endpoint
  exports.OPSH_APPINSIGHTS_ENDPOINT = endpoint
end

return M
