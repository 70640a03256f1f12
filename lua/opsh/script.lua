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

-- Durations: seconds ("90", "1.5"), or numbers with units largest first, each unit once ("1h30m").
local duration_units = {{"w", 604800}, {"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}, {"ms", 0.001}}
local unit_rank = {}
for i, u in ipairs(duration_units) do unit_rank[u[1]] = i end

local function finite(x) return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge end

local function parse_duration(s)
  if math.type(s) == "integer" then return s >= 0 and s or nil end
  if type(s) == "number" then return finite(s) and s >= 0 and s or nil end
  if type(s) ~= "string" then return nil end
  local total
  if s:match("^%d+$") or s:match("^%d+%.%d+$") then
    total = tonumber(s)
  else
    total = 0
    local rest, last = s, 0
    if rest == "" then return nil end
    while rest ~= "" do
      local num, unit, tail = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
      if not num or num:sub(-1) == "." then return nil end
      local rank = unit_rank[unit]
      if not rank or rank <= last then return nil end
      total = total + tonumber(num) * duration_units[rank][2]
      rest, last = tail, rank
    end
  end
  if not finite(total) then return nil end
  return math.tointeger(total) or total
end
M.parse_duration = parse_duration

-- A decimal number: digits with an optional fraction and exponent; no hex, no spaces, no inf/nan.
local function is_decimal(s)
  local mantissa, exp = s:match("^[+-]?([%d.]+)(.*)$")
  if not mantissa or not (mantissa:match("^%d+%.?%d*$") or mantissa:match("^%.%d+$")) then return false end
  return exp == "" or exp:match("^[eE][+-]?%d+$") ~= nil
end

local booleans = {["true"] = true, yes = true, ["1"] = true, on = true,
  ["false"] = false, no = false, ["0"] = false, off = false}

local function parse_list(v)
  local out = {}
  local function add(text)
    for item in text:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then out[#out + 1] = item end
    end
  end
  if type(v) == "table" then
    for _, x in ipairs(v) do
      if type(x) ~= "string" then return nil end
      add(x)
    end
  elseif type(v) == "string" then
    add(v)
  else
    return nil
  end
  return require("opsh.json").array(out)
end

local converters = {
  string = function(v) return type(v) == "string" and v or nil end,
  integer = function(v)
    if math.type(v) == "integer" then return v end
    if type(v) ~= "string" or not v:match("^[+-]?%d+$") then return nil end
    return math.tointeger(tonumber(v))
  end,
  number = function(v)
    if type(v) == "number" then return finite(v) and v or nil end
    if type(v) ~= "string" or not is_decimal(v) then return nil end
    local n = tonumber(v)
    return finite(n) and n or nil
  end,
  boolean = function(v)
    if type(v) == "boolean" then return v end
    if type(v) ~= "string" then return nil end
    return booleans[string.lower(v)]
  end,
  duration = parse_duration,
  list = parse_list,
}
M.convert = function(kind, v) return converters[kind](v) end

local expects = {
  integer = "an integer",
  number = "a finite number",
  boolean = "a boolean (true/false, yes/no, on/off, 1/0)",
  duration = "a duration like 90, 1.5s, 1h30m or 2d (units w d h m s ms, largest first, each once)",
  list = "a comma-separated list",
  string = "a string",
}

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
  local spelled = {}
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
    if spec.default ~= nil and converters[spec.type](spec.default) == nil then
      bad_script(where, string.format("%s: default '%s' is not a valid %s", aw,
        type(spec.default) == "table" and "{...}" or tostring(spec.default), spec.type))
    end
    local key = name:gsub("_", "-")
    if spelled[key] then
      bad_script(where, string.format("arguments '%s' and '%s' are the same name (dashes and underscores are alike)",
        spelled[key], name))
    end
    spelled[key] = name
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

--- The declared name an argument spelled `name` on the command line stands for: dashes and
-- underscores are the same (--max-lag is max_lag), as kubectl and az spell their flags.
function M.arg_name(decl, name)
  if decl.args[name] then return name end
  local key = name:gsub("_", "-")
  for declared in pairs(decl.args) do
    if declared:gsub("_", "-") == key then return declared end
  end
  return nil
end

--- Raise the usage error for an argument the declaration lacks, naming the nearest declared one.
function M.unknown_arg(decl, name, script_name)
  local declared_as, keys = {}, {}
  for declared in pairs(decl.args) do
    local key = declared:gsub("_", "-")
    declared_as[key] = declared
    keys[#keys + 1] = key
  end
  local nearest = M.nearest((name:gsub("_", "-")), keys)
  usage(string.format("%s: unknown argument --%s%s", script_name, name,
    nearest and string.format("; did you mean --%s?", declared_as[nearest])
      or string.format(" (see 'opsh help %s')", script_name)))
end

--- Type the raw `--name=value` strings (a list of strings for a repeated list) against the
-- declaration -> args table.
function M.parse_args(decl, raw, script_name)
  local args = {}
  local hint = string.format(" (see 'opsh help %s')", script_name)
  for given, value in pairs(raw) do
    local name = M.arg_name(decl, given)
    if not name then M.unknown_arg(decl, given, script_name) end
    if args[name] ~= nil then
      usage(string.format("%s: --%s given more than once (only list arguments may repeat)", script_name, name))
    end
    local spec = decl.args[name]
    local typed = converters[spec.type](value)
    if typed == nil then
      usage(string.format("%s: --%s expects %s, got '%s'%s", script_name, given, expects[spec.type],
        type(value) == "table" and table.concat(value, ",") or tostring(value), hint))
    end
    if spec.choices then
      local found = false
      for _, c in ipairs(spec.choices) do if c == typed then found = true end end
      if not found then
        usage(string.format("%s: --%s must be one of %s, got '%s'", script_name, given,
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
      if d ~= nil and (type(d) == "string" or spec.type == "list") and spec.type ~= "string" then
        d = converters[spec.type](d)
      end
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
