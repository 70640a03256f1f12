---@meta opsh
-- Editor stubs for the `opsh` module (lua/opsh/init.lua + bindings/core/core.c).

---@class opsh.task
local task = {}
---Wait for the task; returns its function's results or raises its error. A cancelled task is
---waited for until its cleanups have finished.
---@param timeout? number seconds (math.huge: none); raises {kind="timeout"} when exceeded
---@return any ...
function task:wait(timeout) end
---Cancel the task: its pending wait raises {kind="cancelled"} inside it at once, so its <close>
---handlers and pcall'd cleanups run there and may wait, under opsh.cleanup_timeout(); then what it
---holds is closed. Returns true if this call cancelled it (false: finished, or cancelled already).
---@return boolean
function task:cancel() end
---True from the moment the task is asked to cancel until it has finished its cleanups.
---@return boolean
function task:cancelling() end
---@return "ready"|"running"|"suspended"|"done"|"failed"|"cancelled"
function task:status() end
---@return integer
function task:id() end
---For a finished task: true, results... or false, err, traceback.
function task:result() end
---Where a ready or suspended task is (a debug traceback); nil once it finished.
---@return string|nil
function task:traceback() end

---@class opsh.error
---@field kind string
---@field message string
---@field status? integer
---@field code? string
---@field request_id? string

---@class opsh.mutex
local mutex = {}
function mutex:lock() end
function mutex:unlock() end
---@param fn fun(...): ...
function mutex:with(fn, ...) end

---@class opsh
---@field out opsh.out
---@field log opsh.log
---@field json opsh.json
---@field yaml opsh.yaml
---@field http opsh.http
---@field server opsh.server
---@field crypto opsh.crypto
---@field proc opsh.proc
---@field time opsh.time
---@field fs opsh.fs
---@field pg opsh.pg
---@field redis opsh.redis
---@field twin opsh.twin
---@field progress opsh.progress
---@field net opsh.net
local opsh = {}
---@type string
opsh.version = ""
---Run fn(...) as a new task.
---@return opsh.task
function opsh.spawn(fn, ...) end
---Suspend the current task for `seconds` (math.huge: until it is cancelled).
---@param seconds number
function opsh.sleep(seconds) end
---Let the other ready tasks run first.
function opsh.yield() end
---@return opsh.task|nil
function opsh.current() end
---Every task that has not finished, newest first (with task:traceback() to see where each waits).
---@return opsh.task[]
function opsh.tasks() end
---Run fn in a task; if it takes longer than `seconds` (math.huge: no limit), cancel it, wait for
---its cleanups, and raise {kind="timeout"}.
function opsh.timeout(seconds, fn, ...) end
---Run fn() in the current task with cancellation held back: a cancellation arriving meanwhile is
---raised when fn ends. fn's waits run under their own deadline (`timeout`, default
---opsh.cleanup_timeout(); math.huge: none), past which they raise {kind="timeout", deadline="shield"}.
---For cleanups that must finish (release a lock, undo a step).
---@param fn fun(): ...
---@param opts? {timeout?: number}
---@return any ...
function opsh.shield(fn, opts) end
---The deadline (seconds) of a cancelled task's cleanups; sets it first when given. Default 5,
---or $OPSH_CLEANUP_TIMEOUT. Past it a cleanup's waits raise {kind="timeout", deadline="cleanup"}.
---@param seconds? number
---@return number previous
function opsh.cleanup_timeout(seconds) end
---fn(item, index) for every item, at most `limit` at once; results in input order.
---The first error cancels the rest, waits for their cleanups, and is raised with `item` = its index
---and `traceback` = the failing call's frames (which the CLI prints).
---@param items any[]
---@param fn fun(item: any, index: integer): any
---@param opts? {limit?: integer}
---@return any[]
function opsh.parallel(items, fn, opts) end
---@return opsh.mutex
function opsh.mutex() end
---pcall that always returns a structured error; the running task's own cancellation is not
---caught (pcall and xpcall pass it on too).
---@return boolean ok, any ...
function opsh.try(fn, ...) end
---@return opsh.error
function opsh.error(kind, message, fields) end
---Raise a structured error.
function opsh.raise(kind, message, fields) end
---@return boolean
function opsh.is_error(v, kind) end
---Wrap a secret: prints, logs, encodes as <redacted>.
---@return userdata
function opsh.secret(value) end
---@return boolean
function opsh.is_secret(v) end
---The selected environment (--env or OPSH_ENV), with :pg(), :redis(), :secret().
---@return opsh.environment
function opsh.env() end

return opsh
