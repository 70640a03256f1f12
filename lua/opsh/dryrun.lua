-- opsh.dryrun: dry-run is a property of the run, enforced by the primitives. When it is on,
-- every primitive that would change something (an HTTP mutation, a Redis write, a PostgreSQL
-- write, a process spawn) records what it would have done here instead of doing it; reads
-- still happen, so the plan is real. `opsh --dry-run` turns it on and ends the run with the list
-- (exit 4 when it is not empty, see docs/cli.md).
local core = require("opsh._core")
local redact = require("opsh.redact")

local M = {}

local active = false
local planned = {}

--- active() -> is this run a dry-run?
function M.active() return active end

--- enable(on): turn dry-run on or off for the rest of the run (the CLI does it for --dry-run)
function M.enable(on) active = on and true or false end

local function usage(message) error(core.error("usage", message), 3) end

--- record{kind=, action=, target=, request=, secrets=} -> the record as kept
-- kind: the primitive ("http", "redis", "pg", "proc", or a client's own name); action: one line
-- saying what would have been done ("POST https://…/pods", "SET lock:x"); target: what it would
-- have changed; request: the exact request as data. Values in `secrets`, and every opsh.secret
-- inside request, are scrubbed from the record's text.
function M.record(rec)
  if type(rec) ~= "table" then usage("dryrun.record needs a table {kind=, action=, ...}") end
  if type(rec.kind) ~= "string" or rec.kind == "" then usage("dryrun.record: kind must be a string") end
  if type(rec.action) ~= "string" or rec.action == "" then usage("dryrun.record: action must be a string") end
  local secrets = redact.collect(rec.request, {})
  for _, s in ipairs(rec.secrets or {}) do secrets[#secrets + 1] = s end
  local kept = {
    kind = rec.kind,
    action = redact.text(rec.action, secrets),
    target = rec.target ~= nil and redact.text(tostring(rec.target), secrets) or nil,
    request = rec.request ~= nil and redact.error(require("opsh.out").redact(rec.request), secrets) or nil,
  }
  local task = core.current()
  kept.seq = #planned + 1
  kept.task = task and task:id() or nil
  planned[#planned + 1] = kept
  require("opsh.audit").note_change()
  require("opsh.log").info("dry-run: would " .. kept.action)
  return kept
end

--- planned() -> the records of this run, in order (a copy)
function M.planned()
  local copy = {}
  for i, r in ipairs(planned) do copy[i] = r end
  return copy
end

--- reset(): forget the records (specs; the REPL between commands)
function M.reset() planned = {} end

--- with(fn, ...) -> records, fn's results: run fn with dry-run on, then restore what it was.
-- Only the records made inside are returned; they stay in planned() too.
function M.with(fn, ...)
  local was, first = active, #planned + 1
  active = true
  local res = table.pack(pcall(fn, ...))
  active = was
  local records = {}
  for i = first, #planned do records[#records + 1] = planned[i] end
  if not res[1] then error(res[2], 0) end
  return records, table.unpack(res, 2, res.n)
end

return M
