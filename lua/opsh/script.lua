-- opsh.script: finding, loading and checking procedure scripts, and typing their arguments.
-- A script is a Lua file returning {description=, categories=, args=, flags=, run=function(ctx, args)}.
local runtime = require("opsh.runtime")
local core = require("opsh._core")

local M = {}

local function usage(message, fields) error(core.error("usage", message, fields), 0) end
local function bad_script(where, message) error(core.error("script", where .. ": " .. message), 0) end

M.arg_types = {string = true, integer = true, number = true, boolean = true, duration = true, list = true}
M.known_flags = {destructive = true, ["read-only"] = true, mutating = true}
M.reserved_args = {env = true, output = true, o = true, ["dry-run"] = true, yes = true, y = true,
  verbose = true, v = true, quiet = true, q = true, ["no-color"] = true, help = true, h = true,
  ["log-format"] = true}
local declaration_fields = {description = "string", categories = "table", args = "table",
  flags = "table", run = "function", examples = "table"}
local arg_fields = {help = "string", type = "string", default = "any", required = "boolean",
  choices = "table"}

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

--- Where a script named `name` comes from: the first root's scripts/<name>.lua, else embedded.
function M.locate(name)
  for _, root in ipairs(runtime.roots()) do
    local path = root .. "/scripts/" .. name .. ".lua"
    if file_exists(path) then return {path = path, origin = path} end
  end
  if runtime.embedded_path("script:" .. name) then
    return {embedded = "script:" .. name, origin = "bundled"}
  end
end

--- Lua files in `subdir` of every root: {name = path}; the first root that has a name wins.
function M.in_roots(subdir)
  local fs = require("opsh.fs")
  local found = {}
  for _, root in ipairs(runtime.roots()) do
    for _, path in ipairs(fs.glob(root .. "/" .. subdir .. "/*.lua")) do
      local n = path:match("([^/]+)%.lua$")
      if found[n] == nil then found[n] = path end
    end
  end
  return found
end

--- Every script name: {name = origin} ("bundled" or the local path that wins over it)
function M.all()
  local names = {}
  for _, n in ipairs(runtime.embedded("script:")) do
    if not n:find("/") then names[n] = "bundled" end
  end
  for n, path in pairs(M.in_roots("scripts")) do names[n] = path end
  return names
end

local function check_type(where, field, value, want)
  if want ~= "any" and type(value) ~= want then
    bad_script(where, string.format("'%s' must be a %s, not a %s", field, want, type(value)))
  end
end

--- Check a declaration the way NSE's Script.new does: required fields, types, no strays.
function M.validate(decl, where)
  if type(decl) ~= "table" then bad_script(where, "must return a declaration table") end
  for k, v in pairs(decl) do
    local want = declaration_fields[k]
    if not want then bad_script(where, string.format("unknown field '%s' in the declaration", tostring(k))) end
    check_type(where, k, v, want)
  end
  if type(decl.description) ~= "string" or decl.description == "" then
    bad_script(where, "'description' is required")
  end
  if type(decl.run) ~= "function" then bad_script(where, "'run' must be a function(ctx, args)") end
  if type(decl.categories) ~= "table" or #decl.categories == 0 then
    bad_script(where, "'categories' must list at least one category")
  end
  for _, c in ipairs(decl.categories) do check_type(where, "categories[]", c, "string") end
  decl.flags = decl.flags or {}
  for _, f in ipairs(decl.flags) do
    if not M.known_flags[f] then bad_script(where, string.format("unknown flag '%s'", tostring(f))) end
  end
  decl.args = decl.args or {}
  for name, spec in pairs(decl.args) do
    local aw = string.format("argument '%s'", tostring(name))
    if type(name) ~= "string" or not name:match("^[%a][%w_-]*$") then
      bad_script(where, aw .. " is not a valid argument name")
    end
    if M.reserved_args[name] then bad_script(where, aw .. " clashes with a global flag") end
    if type(spec) ~= "table" then bad_script(where, aw .. " must be a table") end
    for k, v in pairs(spec) do
      local want = arg_fields[k]
      if not want then bad_script(where, aw .. string.format(": unknown field '%s'", tostring(k))) end
      check_type(where, aw .. "." .. k, v, want)
    end
    if not spec.help then bad_script(where, aw .. " needs 'help'") end
    spec.type = spec.type or (spec.default ~= nil and math.type(spec.default) == "integer" and "integer")
      or (type(spec.default) == "number" and "number") or (type(spec.default) == "boolean" and "boolean")
      or "string"
    if not M.arg_types[spec.type] then bad_script(where, aw .. ": unknown type '" .. spec.type .. "'") end
  end
  return decl
end

--- Load and validate a script by name or path -> decl, name, origin.
function M.load(ref)
  local chunk, err, name, origin
  if ref:find("/") or ref:match("%.lua$") then
    if not file_exists(ref) then usage(string.format("no such script file: %s", ref)) end
    chunk, err = loadfile(ref, "t")
    name, origin = ref:match("([^/]-)%.lua$") or ref, ref
  else
    local loc = M.locate(ref)
    if not loc then return nil end
    name, origin = ref, loc.origin
    if loc.path then chunk, err = loadfile(loc.path, "t")
    else chunk, err = runtime.load_embedded(loc.embedded) end
  end
  if not chunk then bad_script(origin, err) end
  local ok, decl = pcall(chunk)
  if not ok then
    if core.is_error(decl) then error(decl, 0) end
    bad_script(origin, tostring(decl))
  end
  return M.validate(decl, origin), name, origin
end

local function parse_duration(s)
  if type(s) == "number" then return s end
  local total, rest = 0, s
  local units = {ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800}
  if rest == "" then return nil end
  while rest ~= "" do
    local num, unit, tail = rest:match("^(%d+%.?%d*)(%a*)(.*)$")
    if not num or not units[unit ~= "" and unit or "s"] then return nil end
    total = total + tonumber(num) * units[unit ~= "" and unit or "s"]
    rest = tail
  end
  return total
end
M.parse_duration = parse_duration

local converters = {
  string = function(v) return v end,
  integer = function(v) return math.tointeger(tonumber(v)) end,
  number = function(v) return tonumber(v) end,
  boolean = function(v)
    if type(v) == "boolean" then return v end
    local map = {["true"] = true, yes = true, ["1"] = true, on = true,
      ["false"] = false, no = false, ["0"] = false, off = false}
    return map[string.lower(v)]
  end,
  duration = parse_duration,
  list = function(v)
    local out = {}
    for item in tostring(v):gmatch("[^,]+") do out[#out + 1] = item end
    return out
  end,
}

--- Type the raw `--name=value` strings against the declaration -> args table.
function M.parse_args(decl, raw, script_name)
  local args = {}
  local hint = string.format(" (see 'opsh help %s')", script_name)
  for name, value in pairs(raw) do
    local spec = decl.args[name]
    if not spec then
      local nearest = M.nearest(name, decl.args)
      usage(string.format("%s: unknown argument --%s%s", script_name, name,
        nearest and string.format("; did you mean --%s?", nearest) or hint))
    end
    local typed = converters[spec.type](value)
    if typed == nil then
      usage(string.format("%s: --%s expects %s, got '%s'%s", script_name, name,
        spec.type == "duration" and "a duration like 30s, 5m, 24h"
          or (spec.type == "integer" and "an integer" or "a " .. spec.type),
        tostring(value), hint))
    end
    if spec.choices then
      local found = false
      for _, c in ipairs(spec.choices) do if c == typed then found = true end end
      if not found then
        usage(string.format("%s: --%s must be one of %s, got '%s'", script_name, name,
          table.concat(spec.choices, ", "), tostring(typed)))
      end
    end
    args[name] = typed
  end
  for name, spec in pairs(decl.args) do
    if args[name] == nil then
      if spec.required then
        usage(string.format("%s: missing required argument --%s%s", script_name, name, hint))
      end
      local d = spec.default
      if d ~= nil and type(d) == "string" and spec.type ~= "string" then d = converters[spec.type](d) end
      args[name] = d
    end
  end
  return args
end

-- Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = {[0] = i} end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
      end
    end
  end
  return d[#a][#b]
end

--- The candidate (keys of a set, or a list) nearest to `word`, if close enough to be a typo.
function M.nearest(word, candidates)
  local best, best_d
  local function consider(c)
    local d = distance(word, c)
    if c:sub(1, #word) == word and #word >= 3 then d = math.min(d, 1) end
    if not best_d or d < best_d or (d == best_d and c < best) then best, best_d = c, d end
  end
  if candidates[1] then for _, c in ipairs(candidates) do consider(c) end
  else for c in pairs(candidates) do consider(c) end end
  if best and best_d <= math.max(2, #word // 3) then return best end
  return nil
end

return M
