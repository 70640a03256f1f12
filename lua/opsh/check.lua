-- opsh.check: argument checking for the Lua layer, one behaviour for every module. A wrong
-- argument raises {kind="usage", message="bad argument #2 to 'http.get' (option 'timeout' must be
-- a non-negative number, got string)", func=, arg=, option=}: one line, the function and the
-- argument named, exit code 2 from the CLI. Checks cost one type() on the good path.
local core = require("opsh._core")

local M = {}

local EMPTY = setmetatable({}, {__newindex = function() error("read-only", 2) end})
--- A shared, read-only empty table: what options() returns for absent options.
M.EMPTY = EMPTY

local function typename(v)
  if core.is_secret(v) then return "opsh.secret" end
  local t = type(v)
  if t == "number" and math.type(v) == "float" and v ~= math.floor(v) then return "number (not an integer)" end
  return t
end
M.typename = typename

--- fail(fname, n, message [, option]): raises the usage error for argument n of fname.
function M.fail(fname, n, message, option)
  local where = n and string.format("bad argument #%d to '%s'", n, fname) or string.format("'%s'", fname)
  if option then message = string.format("option '%s' %s", option, message) end
  error(core.error("usage", string.format("%s (%s)", where, message), {func = fname, arg = n, option = option}), 0)
end
local fail = M.fail

-- ---- types ----
-- A type is a name: "string", "number", "integer", "boolean", "table", "function", "bytes"
-- (a string or an opsh.secret), "duration" (seconds, or a duration string such as "30s"), "any";
-- or a table {"integer", min=, max=, one_of={...}, non_empty=true, what="..."}.

local function is_bytes(v) return type(v) == "string" or core.is_secret(v) end

local TESTS = {
  string = function(v) return type(v) == "string" end,
  number = function(v) return type(v) == "number" and v == v end,
  integer = function(v) return math.type(v) == "integer" end,
  boolean = function(v) return type(v) == "boolean" end,
  table = function(v) return type(v) == "table" and not core.is_secret(v) end,
  ["function"] = function(v) return type(v) == "function" end,
  bytes = is_bytes,
  any = function() return true end,
}

local WORDS = {string = "string", number = "number", integer = "integer", boolean = "boolean",
  table = "table", ["function"] = "function", bytes = "string or opsh.secret", any = "value",
  duration = "duration (seconds, or a string such as \"30s\" or \"1h30m\")"}

local function duration_value(v)
  if type(v) == "number" then return v == v and v >= 0 and v end
  if type(v) ~= "string" then return nil end
  local ok, s = pcall(require("opsh.time").parse_duration, v)
  return ok and s >= 0 and s
end

local function article(word)
  return (word:find("^[aeiouAEIOU]") and "an " or "a ") .. word
end

-- -> nil when v is good, else the complaint without the argument's name, and whether it is the
-- type that is wrong (then the complaint is the word for the expected type)
local function complaint(v, spec)
  local name, lim = spec, nil
  if type(spec) == "table" then name, lim = spec[1], spec end
  if name == "duration" then
    if duration_value(v) then return nil end
    if type(v) == "number" or type(v) == "string" then
      return "must be a non-negative duration (seconds, or a string such as \"30s\" or \"1h30m\"), got "
        .. (type(v) == "string" and string.format("'%s'", v) or tostring(v))
    end
    return WORDS.duration, true
  end
  local test = TESTS[name]
  if not test then error("opsh.check: unknown type '" .. tostring(name) .. "'", 3) end
  local word = lim and lim.what or WORDS[name]
  if lim and lim.max then word = string.format("%s from %s to %s", word, lim.min, lim.max)
  elseif lim and lim.min then word = string.format("%s of at least %s", word, lim.min) end
  if not test(v) then return word, true end
  if lim then
    if lim.min and v < lim.min or lim.max and v > lim.max then
      return "must be " .. article(word) .. ", got " .. tostring(v)
    end
    if lim.non_empty and #v == 0 then return "must not be empty" end
    if lim.one_of then
      for i = 1, #lim.one_of do if lim.one_of[i] == v then return nil end end
      local quoted = {}
      for i, c in ipairs(lim.one_of) do quoted[i] = string.format("%q", c) end
      return string.format("must be one of %s, got %s", table.concat(quoted, ", "),
        type(v) == "string" and string.format("%q", v) or tostring(v))
    end
  end
  return nil
end

-- raises the complaint about v, as argument n itself or as its option `option`
local function reject(fname, n, v, why, wrong_type, option)
  if wrong_type then
    if option then why = "must be " .. article(why) .. ", got " .. typename(v)
    else why = why .. " expected, got " .. typename(v) end
  end
  fail(fname, n, why, option)
end

--- arg(fname, n, v, type [, optional]) -> v; raises a usage error when v is not of the type
-- (nil passes when optional).
function M.arg(fname, n, v, spec, optional)
  if v == nil and optional then return v end
  local why, wrong_type = complaint(v, spec)
  if why then reject(fname, n, v, why, wrong_type) end
  return v
end

--- string/bytes/table/number/integer/boolean/func(fname, n, v [, optional]) -> v
for _, name in ipairs({"string", "bytes", "table", "number", "integer", "boolean"}) do
  local test, word = TESTS[name], WORDS[name]
  M[name] = function(fname, n, v, optional)
    if test(v) or (v == nil and optional) then return v end
    fail(fname, n, word .. " expected, got " .. typename(v))
  end
end
function M.func(fname, n, v, optional)
  if type(v) == "function" or (v == nil and optional) then return v end
  fail(fname, n, "function expected, got " .. typename(v))
end

--- duration(fname, n, v [, default [, option]]) -> seconds: a number, or a duration string read by
-- opsh.time.parse_duration (the one duration rule); nil -> default (an error without one). The
-- engine's timer limits apply (what no timer can hold is refused).
function M.duration(fname, n, v, default, option)
  if v == nil then
    if default ~= nil then return default end
    reject(fname, n, v, WORDS.duration, true, option)
  end
  local s = duration_value(v)
  if not s then
    local why, wrong_type = complaint(v, "duration")
    reject(fname, n, v, why, wrong_type, option)
  end
  core.duration(s, string.format("bad argument #%d to '%s'%s", n, fname, option and (" (option '" .. option .. "')") or ""))
  return s
end

-- ---- option tables ----

local function names_of(schema)
  local list = {}
  for k in pairs(schema) do list[#list + 1] = k end
  table.sort(list)
  return list
end

--- unknown(fname, n, key, names): raises "unknown option 'timout'; did you mean 'timeout'?"
function M.unknown(fname, n, key, names)
  local near = type(key) == "string" and require("opsh.script").nearest(key, names)
  fail(fname, n, string.format("unknown option '%s'%s", tostring(key),
    near and ("; did you mean '" .. near .. "'?") or ""))
end

--- options(fname, n, opts, schema) -> opts, or check.EMPTY for nil. schema: {name = type, ...}
-- (see types above; every option is optional). An unknown option names the nearest known one.
-- schema[true] = "any" lets unknown options through (a table passed on as it is).
function M.options(fname, n, opts, schema)
  if opts == nil then return EMPTY end
  if type(opts) ~= "table" or core.is_secret(opts) then
    fail(fname, n, "options table expected, got " .. typename(opts))
  end
  for k, v in pairs(opts) do
    local spec = schema[k]
    if spec == nil then
      if schema[true] == nil then M.unknown(fname, n, k, names_of(schema)) end
    else
      local why, wrong_type = complaint(v, spec)
      if why then reject(fname, n, v, why, wrong_type, k) end
    end
  end
  return opts
end

--- option(fname, n, opts, name, type [, default]) -> opts[name] checked, or default
function M.option(fname, n, opts, name, spec, default)
  local v = opts[name]
  if v == nil then return default end
  local why, wrong_type = complaint(v, spec)
  if why then reject(fname, n, v, why, wrong_type, name) end
  return v
end

return M
