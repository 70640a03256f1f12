---@meta opsh.proc
-- Editor stubs for `opsh.proc` (lua/opsh/proc.lua + bindings/proc/proc.c). See docs/proc.md.

---@class opsh.proc.result
---@field code integer|nil exit code; nil when a signal ended the child
---@field signal integer|nil the signal that ended it
---@field stdout string|nil captured stdout
---@field stderr string|nil captured stderr
---@field elapsed number seconds
---@field timed_out boolean
---@field truncated boolean output beyond max_output was dropped
---@field pid integer|nil nil in a dry-run
---@field dry_run? boolean true when a dry-run recorded the command instead of running it
---@field record? table the dry-run record

---@class opsh.proc.options
---@field argv (string|number)[] the program, then its arguments (no shell; never a secret)
---@field env? table<string, string|number|opsh.secret> replaces the environment
---@field env_add? table<string, string|number|opsh.secret|false> merged over it; false unsets
---@field cwd? string
---@field stdin? string|opsh.secret data for stdin, then EOF
---@field stdin_file? string
---@field stdin_inherit? boolean
---@field stdout? "capture"|"inherit"|"null"|"pipe"|fun(line: string)
---@field stderr? "capture"|"inherit"|"null"|"pipe"|"stdout"|fun(line: string)
---@field stdout_file? string appended to
---@field stderr_file? string appended to
---@field max_output? integer bytes per captured stream (16 MiB)
---@field truncate? boolean run: keep max_output bytes instead of failing
---@field timeout? number seconds, then TERM, then KILL after kill_grace
---@field kill_grace? number seconds (5)
---@field check? boolean run: raise on failure (true)
---@field stdin_pipe? boolean spawn: p:write()/p:close_stdin()
---@field detach? boolean spawn: own session, survives opsh
---@field read? boolean the command only reads: it runs in a dry-run too

---@class opsh.proc.process
---@field dry_run? boolean true for the handle a dry-run returns (nothing ran)
local process = {}
---@return integer|nil pid nil in a dry-run
function process:pid() end
---@return boolean
function process:running() end
---Wait for the exit (and captured output).
---@param opts? {check?: boolean}
---@return opsh.proc.result
function process:wait(opts) end
---Iterate over the lines of a "pipe" stream.
---@param stream? "stdout"|"stderr"
---@return fun(): string|nil
function process:lines(stream) end
---@param stream? "stdout"|"stderr"
---@return "stdout"|"stderr"|nil name, string chunk
function process:read(stream) end
---@param data string
function process:write(data) end
function process:close_stdin() end
---@param signal? string|integer "TERM" by default
---@return boolean sent false when the child had already exited
function process:kill(signal) end
---TERM, KILL after `grace` seconds, then wait (for the child, not for a grandchild holding its pipes).
---@param grace? number
---@return opsh.proc.result
function process:stop(grace) end
---Close pipes; a running (not detached) child gets TERM then KILL.
function process:close() end

---@class opsh.proc
local proc = {}
proc.DEFAULT_MAX_OUTPUT = 16777216
proc.DEFAULT_KILL_GRACE = 5
---Run a command and wait; raises {kind="proc"|"timeout"} on failure unless check=false.
---@param opts opsh.proc.options
---@return opsh.proc.result
function proc.run(opts) end
---Run `/bin/sh -c command` (explicit opt-in to a shell).
---@param command string
---@param opts? opsh.proc.options
---@return opsh.proc.result
function proc.shell(command, opts) end
---Start a child and return its handle.
---@param opts opsh.proc.options
---@return opsh.proc.process
function proc.spawn(opts) end
---Send a signal to a process found by pid (a daemon another opsh run started); signal 0 only asks
---whether it exists. Prefer handles where you have one.
---@param pid integer
---@param signal? string|integer default "TERM"
---@return boolean ok
---@return string? reason
function proc.signal_pid(pid, signal) end
---True while a process with that pid exists (zombies included).
---@param pid integer
---@return boolean
function proc.alive(pid) end
---The argv list of a running process (Linux /proc), or nil when it is gone.
---@param pid integer
---@return string[]|nil
function proc.cmdline(pid) end

return proc
