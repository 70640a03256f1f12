---@meta opsh.azure.query
-- Editor stubs for `opsh.azure.query` (lua/opsh/azure/query.lua), reached as azure.insights / azure.logs.
-- See docs/query.md.

---@class opsh.azure.query.column
---@field name string
---@field type string "string"|"datetime"|"long"|"int"|"real"|"bool"|"dynamic"|"timespan"|"guid"|"decimal"

---@class opsh.azure.query.rows: table[] records keyed by column name (datetime as ISO strings)
---@field columns opsh.azure.query.column[]

---@class opsh.azure.query.client
local Client = {}
---Run a KQL query. A partial result raises kind "azure" with partial = true and the rows received in `rows`.
---@param kql string
---@param opts? {timespan?: string} ISO 8601: "PT1H", "P1D", "start/end"
---@return opsh.azure.query.rows
function Client:query(kql, opts) end

---@class opsh.azure.query
local M = {}
---The Log Analytics workspace's client (default monitor.workspace: its ID or ARM resource ID).
---@param env? table|string
---@param workspace? string
---@return opsh.azure.query.client
function M.logs(env, workspace) end
---The App Insights component's client (default appinsights.app: its App ID or name, looked up through ARM).
---@param env? table|string
---@param app? string
---@return opsh.azure.query.client
function M.insights(env, app) end
---Records from one table of a query answer ({columns, rows}).
---@param t {columns: opsh.azure.query.column[], rows: any[][]}
---@return opsh.azure.query.rows
function M.records(t) end
return M
