---@meta opsh.out
-- Editor stubs for `opsh.out` (lua/opsh/out.lua). See docs/output.md.

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
---Render to stdout, in the `-o` format (and with colour on a terminal) unless `opts` says otherwise.
---@param records table
---@param opts? opsh.out.options
function out.print(records, opts) end
---The defaults of `print`: the CLI sets them from `-o/--output` and whether stdout is a colour terminal.
---@param defaults {format?: "table"|"json"|"yaml"|"tsv", color?: boolean}
function out.configure(defaults) end
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

return out
