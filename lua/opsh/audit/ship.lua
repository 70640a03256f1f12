-- opsh.audit.ship: a run's audit lines copied, when the run ends, to where the environment's `audit`
-- section says — rows of a PostgreSQL table on its server, and/or one blob per run in a container — so
-- that the people who ask afterwards find every operator's changes in one place. The local file has each
-- line first; a copy that fails is said loudly, names the file that still has the lines, and does not
-- change the run's outcome. The copies are the run's own bookkeeping: not audited, not changes.
local core = require("opsh._core")
local audit = require("opsh.audit")
local json = require("opsh.json")

local M = {}

local function config_error(envt, message)
  error(core.error("config", string.format("environment '%s': audit.%s", tostring(envt.name), message)), 0)
end

local IDENT = "^[%a_][%w_]*$"

-- "schema.table" or "table" -> the quoted identifier, or nil
local function table_ident(name)
  local schema, tbl = name:match("^([^.]+)%.([^.]+)$")
  if schema then
    if schema:match(IDENT) and tbl:match(IDENT) then return '"' .. schema .. '"."' .. tbl .. '"' end
    return nil
  end
  return name:match(IDENT) and ('"' .. name .. '"') or nil
end

--- start(env): the run keeps its lines when the environment's `audit` names a table or a container, and
-- writes its local file where `audit.file` says. Raises a config error for a table name that is not an
-- identifier, before anything runs.
function M.start(envt)
  local a = envt and envt.audit
  if not a then return end
  if a.file then audit.configure({file = a.file}) end
  if a.table and not table_ident(a.table) then
    config_error(envt, string.format("table '%s' is not a table name (letters, digits, _; schema.table)", a.table))
  end
  if a.container and not a.container:match("^[a-z0-9][a-z0-9%-]*$") then
    config_error(envt, string.format("container '%s' is not a container name (lower-case letters, digits, -)", a.container))
  end
  if a.table or a.container then audit.keep() end
end

M.COLUMNS = [[id bigserial PRIMARY KEY, at timestamptz NOT NULL, operator text, host text, pid integer,
  environment text, procedure text, step text, kind text NOT NULL, action text NOT NULL, target text,
  result text, line jsonb NOT NULL]]

local function to_table(envt, a, lines)
  local pool = require("opsh.connections").pg(envt, {database = a.database})
  local ident = table_ident(a.table)
  local docs = {}
  for i, l in ipairs(lines) do docs[i] = json.decode(l) end
  pool:exec("CREATE TABLE IF NOT EXISTS " .. ident .. " (" .. M.COLUMNS .. ")")
  pool:query("INSERT INTO " .. ident .. [[ (at, operator, host, pid, environment, procedure, step, kind, action,
      target, result, line)
    SELECT (l->>'time')::timestamptz, l->>'operator', l->>'host', (l->>'pid')::integer, l->>'environment',
      l->>'procedure', l->>'step', l->>'kind', l->>'action', l->>'target', l->>'result', l
    FROM jsonb_array_elements($1::jsonb) AS l]], json.encode(json.array(docs)))
end

--- blob_name(line) -> "<environment>/<YYYY>/<MM>/<DD>/<HHMMSS>Z-<procedure>-<host>-<pid>.jsonl" for the
-- run whose first line this is
function M.blob_name(first)
  local y, mo, d, h, mi, s = tostring(first.time):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  local function part(v) return (tostring(v or "unknown"):gsub("[^%w._-]", "_")) end
  return string.format("%s/%s/%s/%s/%s%s%sZ-%s-%s-%s.jsonl", part(first.environment), y or "0000", mo or "00",
    d or "00", h or "00", mi or "00", s or "00", part(first.procedure), part(first.host), part(first.pid))
end

local function to_container(envt, a, lines)
  local backup = require("opsh.ops.backup")
  local account = backup.blob_account(envt)
  backup.ensure_container(account, a.container)
  local name = M.blob_name(json.decode(lines[1]))
  account:put(a.container, name, {data = table.concat(lines), content_type = "application/x-ndjson"})
  return name
end

--- finish(env) -> {table = rows | nil, blob = name | nil, errors = {...}}: the kept lines copied (nothing
-- when there are none, or in a dry run); each failure logged as a warning.
function M.finish(envt)
  local a = envt and envt.audit
  local out = {errors = {}}
  if not a or not (a.table or a.container) or require("opsh.dryrun").active() then return out end
  local lines = audit.kept()
  if #lines == 0 then return out end
  local log = require("opsh.log")
  local function attempt(what, fn)
    local ok, res = pcall(audit.quietly, fn, envt, a, lines)
    if ok then return res end
    local msg = string.format("audit: %d line(s) not copied to %s: %s; they are in %s", #lines, what,
      core.describe(res), audit.file())
    out.errors[#out.errors + 1] = msg
    log.warn(msg)
  end
  if a.table then
    local failed = #out.errors
    attempt("table " .. a.table, to_table)
    if #out.errors == failed then out.table = #lines end
  end
  if a.container then out.blob = attempt("container " .. a.container, to_container) end
  return out
end

return M
