---@meta
-- Editor stubs for `opsh.out`, `opsh.log` and `opsh.progress`. See docs/output.md.

---@alias opsh.out.format "table"|"json"|"yaml"|"tsv"

---@class opsh.out.options
---@field format? opsh.out.format default "table"
---@field columns? string[] which fields, in this order (default: every field, sorted)
---@field color? boolean

---@class opsh.out
local out = {}
---Render records (a list of tables, or one table) as text in the given format.
---@param records table
---@param opts? opsh.out.options
---@return string
function out.render(records, opts) end
---Render to stdout.
---@param records table
---@param opts? opsh.out.options
function out.print(records, opts) end
---An aligned table with an upper-case header (kubectl style).
---@param records table[]
---@param opts? opsh.out.options
---@return string
function out.table(records, opts) end
---Tab-separated values, no header (like `az -o tsv`).
---@param records table[]
---@param opts? opsh.out.options
---@return string
function out.tsv(records, opts) end
---The column names of a result that carries them (a `columns` list of names or {name=} tables,
---as opsh.pg results do), in order, or nil.
---@param v any
---@return string[]|nil
function out.result_columns(v) end
---A deep copy with every opsh.secret replaced by "<redacted>".
---@generic T
---@param v T
---@return T
function out.redact(v) end

---@class opsh.log
local log = {}
---@param opts {format?: "human"|"json", verbose?: boolean, quiet?: boolean, color?: boolean, level?: "debug"|"info"|"warn"|"error"}
function log.configure(opts) end
---Would a message at this level be written?
---@param level "debug"|"info"|"warn"|"error"
---@return boolean
function log.enabled(level) end
---@param msg any
---@param fields? table secrets print as <redacted>
function log.debug(msg, fields) end
---@param msg any
---@param fields? table
function log.info(msg, fields) end
---@param msg any
---@param fields? table
function log.warn(msg, fields) end
---@param msg any
---@param fields? table
function log.error(msg, fields) end

---@class opsh.progress.handle
local handle = {}
---@param message string
function handle:update(message) end
---@param final? string a last line to print
function handle:done(final) end

---@class opsh.progress
---@field enabled boolean a spinner is drawn (stderr is a terminal, TERM is not dumb, not --quiet)
local progress = {}
---A spinner line on stderr while something long runs; closes with <close>.
---@param message string
---@return opsh.progress.handle
function progress.start(message) end
---@param opts {quiet?: boolean}
function progress.configure(opts) end
