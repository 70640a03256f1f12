-- opsh.audit: one JSON line per mutation, for the people who ask afterwards who changed what.
-- Every primitive that changes something outside the process (an HTTP mutation, a Redis write, a
-- PostgreSQL write, a process run that is not marked read) records here when it is sent; a dry-run
-- records in opsh.dryrun instead. Lines go to a local file (append-only, 0600), and when the run ends
-- also to a PostgreSQL table and/or a Blob container the environment names (opsh.audit.ship). A line never holds a secret: requests pass through
-- opsh.redact as dry-run records do.
local core = require("opsh._core")
local redact = require("opsh.redact")

local M = {}

local scope = {}        -- run-wide: operator, host, environment, procedure
local steps = setmetatable({}, {__mode = "k"})   -- task -> the step it runs
local quiet = setmetatable({}, {__mode = "k"})   -- task -> true while it does the run's own bookkeeping
local quiet_all = 0     -- > 0 while the process works on something that is not the platform (the twin)
local sinks = {}        -- extra sinks: function(line_table)
local enabled = true
local kept              -- the run's lines as written, when something ships them at the end (opsh.audit.ship)
local file_override
local change_count = 0  -- mutations sent or planned in this run (opsh.steps counts a step's changes)

local function usage(message) error(core.error("usage", message), 3) end

local function default_file()
  local env = os.getenv("OPSH_AUDIT_LOG")
  if env and env ~= "" then return env end
  if M.process_file then return M.process_file end
  local base = os.getenv("XDG_STATE_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or "/tmp") .. "/.local/state" end
  return base .. "/opsh/audit.log"
end

--- file() -> the path lines are appended to: OPSH_AUDIT_LOG, or the process's own (`opsh test`:
-- $TMPDIR/opsh-test-audit.log), or $XDG_STATE_HOME/opsh/audit.log (~/.local/state/opsh/audit.log); the
-- environment's `audit.file` wins when a run selects one.
function M.file() return file_override or default_file() end

--- configure{file=, procedure=, environment=, operator=, enabled=}: what every line of this run carries.
function M.configure(o)
  if type(o) ~= "table" then usage("audit.configure needs a table") end
  if o.file ~= nil then file_override = o.file end
  if o.enabled ~= nil then enabled = o.enabled and true or false end
  for _, k in ipairs({"procedure", "environment", "operator"}) do
    if o[k] ~= nil then scope[k] = o[k] end
  end
end

--- reset(): forget the run's scope, sinks and file (specs)
function M.reset()
  scope, sinks, enabled, file_override, kept = {}, {}, true, nil, nil
  for task in pairs(steps) do steps[task] = nil end
end

--- changes() -> how many mutations this run has sent or planned so far
function M.changes() return change_count end

--- note_change(): a mutation was planned instead of sent (opsh.dryrun calls it)
function M.note_change() change_count = change_count + 1 end

--- add_sink(fn): fn(line_table) is called for every line after it is written to the file
function M.add_sink(fn)
  if type(fn) ~= "function" then usage("audit.add_sink needs a function") end
  sinks[#sinks + 1] = fn
end

--- in_step(name, fn, ...) -> fn's results: lines recorded by the calling task (and what it waits on)
-- while fn runs carry `step = name`.
-- fn(...) with map[calling task] = value, the previous value put back however fn ends
local function with_task_value(map, value, fn, ...)
  local task = core.current() or "main"
  local before = map[task]
  map[task] = value
  local res = table.pack(pcall(fn, ...))
  map[task] = before
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function M.in_step(name, fn, ...) return with_task_value(steps, name, fn, ...) end

--- quietly(fn, ...) -> fn's results: writes the calling task makes while fn runs are the run's own
-- bookkeeping (opsh.lock's leases), not changes: no line, not counted.
function M.quietly(fn, ...) return with_task_value(quiet, true, fn, ...) end

--- quietly_all(fn, ...) -> fn's results: nothing any task of the process does meanwhile is recorded or
-- counted. For the local twin starting, seeding and stopping its own servers: not the platform's changes.
function M.quietly_all(fn, ...)
  quiet_all = quiet_all + 1
  local res = table.pack(pcall(fn, ...))
  quiet_all = quiet_all - 1
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- recording() -> false while the calling task runs inside audit.quietly (or anything in quietly_all)
function M.recording() return quiet_all == 0 and not quiet[core.current() or "main"] end

local hostname, pid
local function own_pid()
  if not pid then
    local f = io.open("/proc/self/stat", "r")
    pid = f and tonumber(f:read("l"):match("^(%d+)")) or nil
    if f then f:close() end
  end
  return pid
end

local function host()
  if not hostname then
    local f = io.open("/proc/sys/kernel/hostname", "r")
    hostname = f and f:read("l") or os.getenv("HOSTNAME") or "unknown"
    if f then f:close() end
  end
  return hostname
end

--- who(): operator, host, pid — who is acting, as audit lines and lock holders name it
function M.who()
  return M.operator(), host(), own_pid()
end

function M.operator()
  return scope.operator or os.getenv("OPSH_OPERATOR") or os.getenv("SUDO_USER") or os.getenv("USER")
    or os.getenv("LOGNAME") or "unknown"
end

--- record{kind=, action=, target=, request=, result=, secrets=} -> the line as written (a table)
-- kind: the primitive ("http", "redis", "pg", "proc", or a client's own name); action: one line
-- ("PATCH https://…/deployments/web"); result: what came back ("200", "ok", "error: …").
function M.record(rec)
  if type(rec) ~= "table" then usage("audit.record needs a table {kind=, action=, ...}") end
  if type(rec.kind) ~= "string" or rec.kind == "" then usage("audit.record: kind must be a string") end
  if type(rec.action) ~= "string" or rec.action == "" then usage("audit.record: action must be a string") end
  if not M.recording() then return nil end
  change_count = change_count + 1
  if not enabled then return nil end
  local secrets = redact.collect(rec.request, {})
  for _, s in ipairs(rec.secrets or {}) do secrets[#secrets + 1] = s end
  local task = core.current() or "main"
  local line = {
    time = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    operator = M.operator(), host = host(), pid = own_pid(),
    environment = scope.environment or require("opsh.env").selected_name(),
    procedure = scope.procedure, step = steps[task],
    kind = rec.kind,
    action = redact.text(rec.action, secrets),
    target = rec.target ~= nil and redact.text(tostring(rec.target), secrets) or nil,
    request = rec.request ~= nil and redact.error(require("opsh.out").redact(rec.request), secrets) or nil,
    result = rec.result ~= nil and redact.text(tostring(rec.result), secrets) or nil,
  }
  local json = require("opsh.json")
  local text = json.encode(line, {sort_keys = true}) .. "\n"
  local path = M.file()
  local fs = require("opsh.fs")
  local ok, err = pcall(function()
    local dir = fs.dirname(path)
    if not fs.exists(dir) then fs.mkdir(dir, {parents = true, mode = tonumber("700", 8)}) end
    fs.append(path, text, {mode = tonumber("600", 8)})
  end)
  if not ok then
    -- a lost audit line is said loudly, once per run, and never stops the change already made
    if not M._warned then
      M._warned = true
      require("opsh.log").warn("audit log not written: " .. core.describe(err), {file = path})
    end
  end
  if kept then kept[#kept + 1] = text end
  for _, sink in ipairs(sinks) do pcall(sink, line) end
  return line
end

--- keep(): from now on, keep this run's lines (their JSON text) for kept()
function M.keep() kept = kept or {} end

--- kept() -> the lines kept since keep(), as written (JSON text with the newline), oldest first
function M.kept()
  local copy = {}
  for i, l in ipairs(kept or {}) do copy[i] = l end
  return copy
end

--- lines([path]) -> the audit lines of a file, decoded, oldest first (for reports and specs)
function M.lines(path)
  path = path or M.file()
  local fs = require("opsh.fs")
  if not fs.exists(path) then return {} end
  local json = require("opsh.json")
  local out = {}
  for l in fs.read(path):gmatch("[^\n]+") do out[#out + 1] = json.decode(l) end
  return out
end

return M
