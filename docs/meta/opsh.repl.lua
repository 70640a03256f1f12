---@meta
-- opsh.repl: the interactive prompt (docs/repl.md). Scripts rarely need it; the pretty printer
-- and the completion are usable on their own.

---@class opsh.repl
local repl = {}

---@class opsh.repl.pretty_opts
---@field depth? integer tables nested deeper print as {...} (default 4)
---@field items? integer entries shown per table (default 100)
---@field width? integer a table prints on one line when it fits (default 80)
---@field color? boolean bold table headers for records

--- The REPL's rendering of a value: sorted keys, cycles as <cycle>, secrets as <redacted>,
--- structured errors on one line, a list of records as an aligned table. No trailing newline.
---@param v any
---@param opts? opsh.repl.pretty_opts
---@return string
function repl.pretty(v, opts) end

--- True for an array (no other keys) of non-empty tables whose keys are all strings.
---@param v any
---@return boolean
function repl.is_records(v) end

--- Completions of a global, keyword, or a field/method of a dotted path ("opsh.sp", "s:up").
---@param word string
---@return string[]
function repl.complete(word) end

--- False for lines that must not reach the history file (leading space, credential-like).
---@param entry string
---@return boolean
function repl.keep_in_history(entry) end

--- The history file path, or nil when none is kept.
---@return string?
function repl.history_path() end

--- Compile a chunk as the REPL does: a first line is tried as `return <line>`; `=expr` is an
--- expression. On failure, `incomplete` tells a chunk that has not ended yet.
---@param source string
---@param first boolean
---@return function? fn
---@return string|nil err_or_source
---@return boolean? incomplete
---@return string? source
function repl.compile(source, first) end

--- Run the REPL in the current task until Ctrl-D; returns the exit status (0).
---@param opts? {verbose?: boolean, quiet?: boolean, no_color?: boolean}
---@return integer
function repl.run(opts) end

return repl
