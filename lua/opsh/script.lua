-- opsh.script: finding, loading and checking procedure scripts, and typing their arguments.
-- A script is a Lua file returning {description=, categories=, args=, flags=, run=function(ctx, args)}.
local runtime = require("opsh.runtime")
local core = require("opsh._core")

local M = {}

local function usage(message, fields) error(core.error("usage", message, fields), 0) end
local function bad_script(where, message)
  if message:sub(1, #where + 1) ~= where .. ":" then message = where .. ": " .. message end
  error(core.error("script", message), 0)
end

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

local function finite(x) return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge end

-- one parser for every duration (opsh.time.parse_duration: units largest first, each once); a
-- script argument may also be a bare number of seconds ("90"), never negative
local function parse_duration(s)
  if type(s) == "string" and (s:match("^%d+$") or s:match("^%d+%.%d+$")) then s = tonumber(s) end
  if type(s) == "string" then
    local ok, v = pcall(require("opsh.time").parse_duration, s)
    if not ok then return nil end
    s = v
  end
  if type(s) ~= "number" or not finite(s) or s < 0 then return nil end
  return math.tointeger(s) or s
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

-- The line of a declaration's token: the first name or string `word` (after the first `after`,
-- when given) in the source text.
local function line_of(src, word, after)
  local tokens = require("opsh.repl.syntax").tokens(src)
  local function matches(tok, w)
    if tok.kind == "name" then return tok.text == w end
    if tok.kind == "string" and (tok.text:sub(1, 1) == '"' or tok.text:sub(1, 1) == "'") then
      return tok.text:sub(2, -2) == w
    end
    return false
  end
  local from = 1
  if after then
    for i, tok in ipairs(tokens) do
      if matches(tok, after) then from = i; break end
    end
  end
  for i = from, #tokens do
    if matches(tokens[i], word) then
      local _, n = src:sub(1, tokens[i].s):gsub("\n", "")
      return n + 1
    end
  end
end

local function keys_of(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  return list
end

local function suggest(word, set)
  local nearest = type(word) == "string" and M.nearest(word, keys_of(set))
  return nearest and string.format("; did you mean '%s'?", nearest) or ""
end

--- Check a declaration the way NSE's Script.new does: required fields, types, no strays. Unknown
-- names get the nearest known one; with `source` (the text, or a function returning it) the
-- error names the line: "where:12: unknown flag 'readonly'; did you mean 'read-only'?".
function M.validate(decl, where, source)
  -- at = {word, after}: the token the error is about, for its line
  local function fail(message, at)
    local src = source
    if type(src) == "function" then src = src() end
    local line = at and at[1] ~= nil and type(src) == "string" and line_of(src, tostring(at[1]), at[2])
    bad_script(line and (where .. ":" .. line) or where, message)
  end
  local function check_type(field, value, want, at)
    if want ~= "any" and type(value) ~= want then
      fail(string.format("'%s' must be a %s, not a %s", field, want, type(value)), at)
    end
  end
  if type(decl) ~= "table" then fail("must return a declaration table") end
  for k, v in pairs(decl) do
    local want = declaration_fields[k]
    if not want then
      fail(string.format("unknown field '%s' in the declaration%s", tostring(k), suggest(k, declaration_fields)), {k})
    end
    check_type(k, v, want, {k})
  end
  if type(decl.description) ~= "string" or decl.description == "" then fail("'description' is required") end
  if type(decl.run) ~= "function" then fail("'run' must be a function(ctx, args)") end
  if type(decl.categories) ~= "table" or #decl.categories == 0 then
    fail("'categories' must list at least one category", {"categories"})
  end
  for _, c in ipairs(decl.categories) do check_type("categories[]", c, "string", {"categories"}) end
  decl.flags = decl.flags or {}
  for _, f in ipairs(decl.flags) do
    if not M.known_flags[f] then
      fail(string.format("unknown flag '%s'%s", tostring(f), suggest(f, M.known_flags)), {f, "flags"})
    end
  end
  decl.args = decl.args or {}
  local spelled = {}
  for name, spec in pairs(decl.args) do
    local aw = string.format("argument '%s'", tostring(name))
    local here = {name, "args"}
    if type(name) ~= "string" or not name:match("^[%a][%w_-]*$") then
      fail(aw .. " is not a valid argument name", here)
    end
    if M.reserved_args[name] then fail(aw .. " clashes with a global flag", here) end
    if type(spec) ~= "table" then fail(aw .. " must be a table", here) end
    for k, v in pairs(spec) do
      local want = arg_fields[k]
      if not want then
        fail(aw .. string.format(": unknown field '%s'%s", tostring(k), suggest(k, arg_fields)), {k, name})
      end
      check_type(aw .. "." .. k, v, want, {k, name})
    end
    if not spec.help then fail(aw .. " needs 'help'", here) end
    spec.type = spec.type or (spec.default ~= nil and math.type(spec.default) == "integer" and "integer")
      or (type(spec.default) == "number" and "number") or (type(spec.default) == "boolean" and "boolean")
      or "string"
    if not M.arg_types[spec.type] then
      fail(string.format("%s: unknown type '%s'%s", aw, spec.type, suggest(spec.type, M.arg_types)),
        {spec.type, name})
    end
    if spec.default ~= nil and converters[spec.type](spec.default) == nil then
      fail(string.format("%s: default '%s' is not a valid %s", aw,
        type(spec.default) == "table" and "{...}" or tostring(spec.default), spec.type), {"default", name})
    end
    local key = name:gsub("_", "-")
    if spelled[key] then
      fail(string.format("arguments '%s' and '%s' are the same name (dashes and underscores are alike)",
        spelled[key], name), here)
    end
    spelled[key] = name
  end
  return decl
end

--- Whether `ref` names a script file (a path) rather than a script by name.
function M.is_path(ref)
  return ref:find("/") ~= nil or ref:match("%.lua$") ~= nil
end

--- The name of a script file: its base name without `.lua`.
function M.name_of(path)
  return path:match("([^/]-)%.lua$") or path:match("[^/]*$")
end

--- Whether a value a Lua file returned is meant as a declaration (then it is checked as one).
function M.is_declaration(v)
  return type(v) == "table" and (v.run ~= nil or v.description ~= nil)
end

--- How to name a script on a command line: its name, or its path, shell-quoted when needed.
function M.command_ref(ref)
  if ref:match("^[%w_%-./+:@]+$") then return ref end
  return "'" .. ref:gsub("'", "'\\''") .. "'"
end

--- Load and validate a script by name or path -> decl, name, origin.
function M.load(ref)
  local chunk, err, name, origin, source
  if M.is_path(ref) then
    if not file_exists(ref) then usage(string.format("no such script file: %s", ref)) end
    chunk, err = loadfile(ref, "t")
    name, origin = M.name_of(ref), ref
    source = function() return require("opsh.fs").read(ref) end
  else
    local loc = M.locate(ref)
    if not loc then return nil end
    name, origin = ref, loc.origin
    if loc.path then
      chunk, err = loadfile(loc.path, "t")
      source = function() return require("opsh.fs").read(loc.path) end
    else
      chunk, err = runtime.load_embedded(loc.embedded)
      source = function() return runtime.embedded_source(loc.embedded) end
    end
  end
  if not chunk then bad_script(origin, err) end
  local ok, decl = pcall(chunk)
  if not ok then
    if core.is_error(decl) then error(decl, 0) end
    bad_script(origin, tostring(decl))
  end
  return M.validate(decl, origin, source), name, origin
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
-- `ref` is how `opsh help` finds the script (its name, or the path it was run by).
function M.unknown_arg(decl, name, script_name, ref)
  local declared_as, keys = {}, {}
  for declared in pairs(decl.args) do
    local key = declared:gsub("_", "-")
    declared_as[key] = declared
    keys[#keys + 1] = key
  end
  local nearest = M.nearest((name:gsub("_", "-")), keys)
  usage(string.format("%s: unknown argument --%s%s", script_name, name,
    nearest and string.format("; did you mean --%s?", declared_as[nearest])
      or string.format(" (see 'opsh help %s')", M.command_ref(ref or script_name))))
end

--- Type the raw `--name=value` strings (a list of strings for a repeated list) against the
-- declaration -> args table. `ref`: how `opsh help` finds the script (default: its name).
function M.parse_args(decl, raw, script_name, ref)
  local args = {}
  local hint = string.format(" (see 'opsh help %s')", M.command_ref(ref or script_name))
  for given, value in pairs(raw) do
    local name = M.arg_name(decl, given)
    if not name then M.unknown_arg(decl, given, script_name, ref) end
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
