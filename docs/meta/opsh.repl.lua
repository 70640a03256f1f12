---@meta opsh.repl
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
--- structured errors on one line, a result with columns or a list of records as an aligned table,
--- functions with their signature. No trailing newline.
---@param v any
---@param opts? opsh.repl.pretty_opts
---@return string
function repl.pretty(v, opts) end

--- True for an array (no other keys) of non-empty tables whose keys are all strings.
---@param v any
---@return boolean
function repl.is_records(v) end

--- Completions of the word before the cursor, each replacing the whole word: a global, a session
--- local or keyword; a field/method of a dotted path ("opsh.sp", "s:up"); a key after `t[` or
--- `t["` (returned as `key"]`); a string method after a literal in parentheses (`("x"):up`).
---@param word string
---@param line? string the text before the word
---@param env? table the session's environment (repl.environment)
---@return string[]
function repl.complete(word, line, env) end

--- False for lines that must not reach the history file (leading space, credential-like).
---@param entry string
---@return boolean
function repl.keep_in_history(entry) end

--- The history file path, or nil when none is kept.
---@return string?
function repl.history_path() end

--- Compile a chunk as the REPL does: a first line is tried as `return <line>`; `=expr` is an
--- expression. On failure, `incomplete` tells a chunk that has not ended yet. With `env`, the
--- chunk runs with it as _ENV and its top-level locals are rewritten into it.
---@param source string
---@param first boolean
---@param env? table the session's environment (repl.environment)
---@return function? fn
---@return string|nil err_or_source
---@return boolean? incomplete
---@return string? source
function repl.compile(source, first, env) end

--- A session's environment: reads fall back to `base` (default _G), assignments go to it except
--- to the session's locals, which live in the environment itself.
---@param base? table
---@return table
function repl.environment(base) end

--- Each top-level `local` statement of a chunk as an assignment into the session (same lines).
---@param source string
---@return string source
---@return string[] names the names declared
function repl.rewrite_locals(source) end

--- The Lua tokens of a source, without comments; an unterminated string or comment ends the list.
---@param source string
---@return {kind: "name"|"keyword"|"string"|"number"|"op", text: string, s: integer, e: integer}[]
function repl.tokens(source) end

--- The source a `?x`, `?obj:method` or `?` line stands for (a call of the session's help), or nil.
---@param line string
---@return string?
function repl.help_line(line) end

--- Print the help for a value (as `?x`): `help()` the REPL summary, `help(obj, "method")` a method,
--- `help("name")` a stub entry by name (or every name containing it).
---@param v? any
---@param method? string
function repl.help(v, method) end

--- The text help(v, method) prints.
---@param v any
---@param method? string
---@return string
function repl.help_text(v, method) end

---@class opsh.repl.stub_entry
---@field name string "opsh.pg.connect", "opsh.pg.conn:query"
---@field class string
---@field fname string
---@field method boolean
---@field params string[]
---@field param table<string, {name: string, type: string, optional: boolean, desc?: string}>
---@field returns? string
---@field doc string[]
---@field see? string "docs/pg.md"

--- Parse the text of a ---@meta stub file.
---@param text string
---@return {entries: opsh.repl.stub_entry[], classes: table<string, table>, see?: string}
function repl.parse_stub(text) end

--- Every stub entry (docs/meta: embedded as meta:<name>, else a source tree's folder), parsed once.
---@return {entries: opsh.repl.stub_entry[], by_name: table<string, opsh.repl.stub_entry>, classes: table<string, table>}
function repl.stubs() end

--- Read the stubs again on next use.
function repl.reset_stubs() end

--- "opsh.pg.connect(target?, overrides?)"; typed: with parameter types and the return.
---@param entry opsh.repl.stub_entry
---@param typed? boolean
---@return string
function repl.signature(entry, typed) end

--- Run the REPL in the current task until Ctrl-D; returns the exit status (0).
---@param opts? {verbose?: boolean, quiet?: boolean, no_color?: boolean}
---@return integer
function repl.run(opts) end
-- What the line editor (engine/repl.c) calls; not for scripts.
---The values a chunk returned, printed as the prompt prints them.
---@param res table {n=, ...}
---@param opts? table
function repl.show(res, opts) end
---Completion candidates for the line editor; never raises.
---@param word string
---@param line string
---@param env? table
---@return string[]
function repl.complete_guarded(word, line, env) end
---Does the syntax error only say the chunk has not ended yet?
---@param err string
---@return boolean
function repl.incomplete(err) end
---The one line printed for a failed chunk.
---@param err any
---@return string
function repl.describe(err) end
---The traceback's frames of the chunk, without the REPL's own.
---@param tb string
---@return string
function repl.trim_traceback(tb) end

return repl
