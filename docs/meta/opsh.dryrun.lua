---@meta
-- Editor stubs for `opsh.dryrun` and `opsh.redact` (lua/opsh/dryrun.lua, lua/opsh/redact.lua). See docs/dryrun.md.

---@class opsh.dryrun.record
---@field kind string the primitive or client: "http", "redis", "pg", "proc", ...
---@field action string one line: what would have been done
---@field target? string what it would have changed
---@field request? table the exact request, secrets scrubbed
---@field seq integer order in the run
---@field task? integer the task that made it

---@class opsh.dryrun
local dryrun = {}
---Is this run a dry-run?
---@return boolean
function dryrun.active() end
---Turn dry-run on or off for the rest of the run.
---@param on boolean
function dryrun.enable(on) end
---Record a would-be mutation.
---@param rec {kind: string, action: string, target?: string, request?: table, secrets?: (string|opsh.secret)[]}
---@return opsh.dryrun.record
function dryrun.record(rec) end
---The records of this run, in order.
---@return opsh.dryrun.record[]
function dryrun.planned() end
---Forget the records.
function dryrun.reset() end
---Run fn as a dry-run; returns the records made inside, then fn's results.
---@param fn fun(...): ...
---@return opsh.dryrun.record[] records
---@return ...
function dryrun.with(fn, ...) end

---@class opsh.redact
local redact = {}
---The opsh.secret values inside a value.
---@param value any
---@param into? opsh.secret[]
---@return opsh.secret[]
function redact.collect(value, into) end
---s without any of the secrets (raw, percent-encoded, JSON-escaped, base64 at any alignment).
---@param s string
---@param secrets (string|opsh.secret)[]
---@return string
function redact.text(s, secrets) end
---err with every string field scrubbed (nested too).
---@generic E
---@param err E
---@param secrets (string|opsh.secret)[]
---@return E
function redact.error(err, secrets) end
---fn's results; an error fn raises is scrubbed first.
---@param secrets (string|opsh.secret)[]
---@param fn fun(...): ...
---@return ...
function redact.guard(secrets, fn, ...) end
