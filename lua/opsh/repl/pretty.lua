-- opsh.repl.pretty: how the REPL prints a value: sorted keys, cycles, secrets redacted, errors
-- on one line, records and results with columns as tables (opsh.out), functions with signatures.
local core = require("opsh._core")
local stubs = require("opsh.repl.stubs")
local syntax = require("opsh.repl.syntax")

local M = {}

local quote, is_identifier = syntax.quote, syntax.is_identifier

-- A multi-line string as a long bracket, which reads like the text it holds.
local function long_string(s)
  local eq = ""
  while s:find("]" .. eq .. "]", 1, true) do eq = eq .. "=" end
  return "[" .. eq .. "[\n" .. s .. "]" .. eq .. "]"
end

local function has_tostring(v)
  local mt = debug.getmetatable(v)
  return mt ~= nil and rawget(mt, "__tostring") ~= nil
end

local function error_line(e)
  local ok, s = pcall(tostring, e)
  return string.format("<%s error: %s>", tostring(rawget(e, "kind")), ok and s or "?")
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "function" then return stubs.describe_function(v) end
  if core.is_secret(v) then return "<redacted>" end
  local ok, s = pcall(tostring, v)
  return ok and s or string.format("<%s>", t)
end

local type_order = {number = 1, string = 2, boolean = 3}
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (type_order[ta] or 9) < (type_order[tb] or 9) or
    ((type_order[ta] or 9) == (type_order[tb] or 9) and ta < tb) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function key_text(k)
  if is_identifier(k) then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  if math.type(k) then return "[" .. tostring(k) .. "]" end
  return "[" .. scalar(k) .. "]"
end

-- col: where on its line the value starts (its key and the indent come before it)
local function render(v, indent, col, depth, ancestors, o)
  if type(v) ~= "table" then return scalar(v) end
  if core.is_error(v) then return error_line(v) end
  if has_tostring(v) then return scalar(v) end
  if ancestors[v] then return "<cycle>" end
  if next(v) == nil then return "{}" end
  if depth >= o.depth then return "{...}" end
  local n = rawlen(v)
  local keys = {}
  for k in next, v do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  ancestors[v] = true
  local items, inner = {}, indent .. "  "
  local shown = 0
  for i = 1, n do
    if shown >= o.items then break end
    shown = shown + 1
    items[#items + 1] = render(rawget(v, i), inner, #inner, depth + 1, ancestors, o)
  end
  for _, k in ipairs(keys) do
    if shown >= o.items then break end
    shown = shown + 1
    local key = key_text(k) .. " = "
    items[#items + 1] = key .. render(rawget(v, k), inner, #inner + #key, depth + 1, ancestors, o)
  end
  ancestors[v] = nil
  local total = n + #keys
  if total > shown then items[#items + 1] = string.format("... (%d more)", total - shown) end
  local flat = "{" .. table.concat(items, ", ") .. "}"
  if not flat:find("\n", 1, true) and col + #flat <= o.width then return flat end
  return "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n" .. indent .. "}"
end

-- A list of records: an array (no other keys) of plain tables whose keys are all strings.
function M.is_records(v)
  if type(v) ~= "table" or has_tostring(v) or core.is_error(v) then return false end
  local n = rawlen(v)
  if n == 0 then return false end
  local count = 0
  for _ in next, v do count = count + 1 end
  if count ~= n then return false end
  for i = 1, n do
    local r = rawget(v, i)
    if type(r) ~= "table" or has_tostring(r) or core.is_error(r) or next(r) == nil then return false end
    for k in next, r do
      if type(k) ~= "string" then return false end
    end
  end
  return true
end

--- pretty(v, {depth = 4, items = 100, width = 80}) -> text (no trailing newline)
function M.pretty(v, opts)
  local o = {depth = 4, items = 100, width = 80}
  for k, x in pairs(opts or {}) do o[k] = x end
  if type(v) == "string" and v:find("\n", 1, true) then return long_string(v) end
  local mt = type(v) == "table" and getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__pretty")) == "function" then return mt.__pretty(v, o) end
  if M.is_records(v) then
    return (require("opsh.out").table(v, {color = o.color}):gsub("\n$", ""))
  end
  local out = require("opsh.out")
  if out.result_columns(v) then return (out.render(v, {color = o.color}):gsub("\n$", "")) end
  return render(v, "", 0, 0, {}, o)
end

return M
