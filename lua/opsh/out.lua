-- opsh.out: render records as an aligned table (like `az -o table`, `kubectl get`), JSON
-- (pretty, sorted keys), YAML or TSV. Secrets render as <redacted> in every format.
local core = require("opsh._core")

local M = {}

local function redact(v, seen)
  if core.is_secret(v) then return "<redacted>" end
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local copy = {}
  seen[v] = copy
  for k, x in pairs(v) do copy[k] = redact(x, seen) end
  return setmetatable(copy, getmetatable(v))
end
M.redact = redact

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = #t
  if n == 0 then return next(t) == nil end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local function cell(v)
  if v == nil then return "" end
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
      return string.format("%d", v)
    end
    return tostring(v)
  end
  if t == "table" then
    if core.is_error(v) then return tostring(v) end
    local ok, json = pcall(require, "opsh.json")
    if ok then return json.encode(v) end
  end
  return tostring(v)
end

local function columns_of(records, opts)
  if opts.columns then
    local cols = {}
    for i, c in ipairs(opts.columns) do
      if type(c) == "table" then cols[i] = {key = c.key or c[1], title = c.title or c[2] or c.key or c[1]}
      else cols[i] = {key = c, title = c} end
    end
    return cols
  end
  local seen, keys = {}, {}
  for _, r in ipairs(records) do
    if type(r) == "table" then
      for k in pairs(r) do
        if not seen[k] and type(k) == "string" then seen[k] = true; keys[#keys + 1] = k end
      end
    end
  end
  table.sort(keys)
  local cols = {}
  for i, k in ipairs(keys) do cols[i] = {key = k, title = k} end
  return cols
end

local function field(record, key)
  if type(record) ~= "table" then return record end
  if record[key] ~= nil then return record[key] end
  local v = record
  for part in key:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

local function display_width(s)
  return utf8.len(s) or #s
end

--- An aligned table with an upper-case header (kubectl style).
function M.table(records, opts)
  opts = opts or {}
  if not is_list(records) then
    -- a single record: two columns, field and value
    local rows = {}
    for k, v in pairs(records) do rows[#rows + 1] = {field = tostring(k), value = v} end
    table.sort(rows, function(a, b) return a.field < b.field end)
    return M.table(rows, {columns = {"field", "value"}, color = opts.color, no_header = true})
  end
  if #records == 0 then return opts.empty or "(none)\n" end
  local cols = columns_of(records, opts)
  local rows, widths = {}, {}
  for i, c in ipairs(cols) do
    c.header = string.upper(c.title:gsub("[_.]", " "))
    widths[i] = opts.no_header and 0 or display_width(c.header)
  end
  for r, rec in ipairs(records) do
    local row = {}
    for i, c in ipairs(cols) do
      local s = cell(field(rec, c.key)):gsub("[\r\n\t]", " ")
      row[i] = s
      widths[i] = math.max(widths[i], display_width(s))
    end
    rows[r] = row
  end
  local out = {}
  local function line(values, bold)
    local parts = {}
    for i, v in ipairs(values) do
      local pad = i < #values and string.rep(" ", widths[i] - display_width(v)) or ""
      parts[i] = v .. pad
    end
    local s = table.concat(parts, "   "):gsub("%s+$", "")
    if bold and opts.color then s = "\27[1m" .. s .. "\27[0m" end
    out[#out + 1] = s
  end
  if not opts.no_header then
    local hdr = {}
    for i, c in ipairs(cols) do hdr[i] = c.header end
    line(hdr, true)
  end
  for _, row in ipairs(rows) do line(row) end
  return table.concat(out, "\n") .. "\n"
end

--- Tab-separated values, no header (like `az -o tsv`): one line per record.
function M.tsv(records, opts)
  opts = opts or {}
  if not is_list(records) then records = {records} end
  local cols = columns_of(records, opts)
  local out = {}
  for _, rec in ipairs(records) do
    local parts = {}
    if #cols == 0 then parts[1] = cell(rec) end
    for i, c in ipairs(cols) do
      parts[i] = cell(field(rec, c.key)):gsub("\\", "\\\\"):gsub("\t", "\\t"):gsub("\n", "\\n")
    end
    out[#out + 1] = table.concat(parts, "\t")
  end
  return table.concat(out, "\n") .. (#out > 0 and "\n" or "")
end

---------------------------------------------------------------------------------------------
-- Results that know their columns, as opsh.pg's query results do: a table whose `columns` is a
-- non-empty list of names (or of tables with a `name`) prints as a table of its rows (its array
-- part) in that column order, headed by the names as they are.

--- result_columns(v) -> the column names of a result that carries them, in order, or nil.
function M.result_columns(v)
  if type(v) ~= "table" or core.is_error(v) then return nil end
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, "__tostring") then return nil end
  local cols = rawget(v, "columns")
  if type(cols) ~= "table" or rawlen(cols) == 0 then return nil end
  local names = {}
  for i = 1, rawlen(cols) do
    local c = rawget(cols, i)
    local name = type(c) == "table" and rawget(c, "name") or c
    if type(name) ~= "string" then return nil end
    names[i] = name
  end
  return names
end

-- The table format puts the names as the first row of a headerless table, so that they keep
-- their case and underscores and the columns align with them.
local function render_result(res, names, opts)
  local rows = {}
  for i = 1, rawlen(res) do rows[i] = rawget(res, i) end
  local o = {}
  for k, x in pairs(opts) do o[k] = x end
  if (o.format or "table") ~= "table" or o.columns then
    o.columns = o.columns or names
    return M.render(require("opsh.json").array(rows), o)   -- no rows: [] in JSON and YAML
  end
  local header = {}
  for _, name in ipairs(names) do header[name] = name end
  local body = {header}
  for i, r in ipairs(redact(rows)) do body[i + 1] = r end
  o.columns, o.no_header = names, true
  local text = M.table(body, o)
  if o.color then text = text:gsub("^[^\n]*", "\27[1m%0\27[0m", 1) end
  return text
end

--- render(records, {format=, columns=, color=}) -> string
function M.render(records, opts)
  opts = opts or {}
  local names = M.result_columns(records)
  if names then return render_result(records, names, opts) end
  local format = opts.format or "table"
  records = redact(records)
  if format == "table" then return M.table(records, opts) end
  if format == "tsv" then return M.tsv(records, opts) end
  if format == "json" then
    return require("opsh.json").encode(records, {pretty = true, sort_keys = true}) .. "\n"
  end
  if format == "yaml" then return require("opsh.yaml").encode(records) end
  error(core.error("usage", string.format("unknown output format '%s'", tostring(format))), 0)
end

-- what print() uses when not told: the CLI sets them from -o/--output and the terminal
local defaults = {format = "table", color = false}

--- configure({format=, color=}): print()'s defaults (the CLI passes -o and whether stdout is a colour terminal).
function M.configure(o)
  if o.format ~= nil then defaults.format = o.format end
  if o.color ~= nil then defaults.color = o.color end
end

--- print(records, opts): render to stdout, in the -o format unless opts.format says otherwise.
function M.print(records, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.format == nil then o.format = defaults.format end
  if o.color == nil then o.color = defaults.color end
  io.stdout:write(M.render(records, o))
end

return M
