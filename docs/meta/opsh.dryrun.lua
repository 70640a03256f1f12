---@meta opsh.dryrun
-- Editor stubs for `opsh.dryrun` (lua/opsh/dryrun.lua). See docs/dryrun.md.

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

return dryrun
