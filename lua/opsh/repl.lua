-- opsh.repl: the interactive prompt. Each chunk runs as its own foreground task (Ctrl-C
-- cancels it, not the REPL); values print through a pretty printer; chunk-level locals live in
-- the session's environment; help comes from the ---@meta stubs (docs/meta); the line editor,
-- history file and completion hooks are in the engine (opsh._repl, engine/repl.c).
local core = require("opsh._core")
local runtime = require("opsh.runtime")

local M = {}

M.HISTORY_SIZE = 1000
M.CHUNKNAME = "=repl"

local keywords = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
  "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}
local is_keyword = {}
for _, k in ipairs(keywords) do is_keyword[k] = true end

---------------------------------------------------------------------------------------------
-- pretty printer

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" elseif c == "\t" then return "\\t" elseif c == "\r" then return "\\r"
    elseif c == '"' or c == "\\" then return "\\" .. c end
    return string.format("\\%03d", c:byte())
  end) .. '"'
end

-- A multi-line string as a long bracket, which reads like the text it holds.
local function long_string(s)
  local eq = ""
  while s:find("]" .. eq .. "]", 1, true) do eq = eq .. "=" end
  return "[" .. eq .. "[\n" .. s .. "]" .. eq .. "]"
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not is_keyword[k]
end

local function has_tostring(v)
  local mt = debug.getmetatable(v)
  return mt ~= nil and rawget(mt, "__tostring") ~= nil
end

local function error_line(e)
  local ok, s = pcall(tostring, e)
  return string.format("<%s error: %s>", tostring(rawget(e, "kind")), ok and s or "?")
end

local describe_function   -- help section: the signature a function prints with

local function scalar(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "function" then return describe_function(v) end
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
  if M.is_records(v) then
    return (require("opsh.out").table(v, {color = o.color}):gsub("\n$", ""))
  end
  local out = require("opsh.out")
  if out.result_columns(v) then return (out.render(v, {color = o.color}):gsub("\n$", "")) end
  return render(v, "", 0, 0, {}, o)
end

--- The values a chunk returned, one line each when any of them spans lines (lua.c: tabs).
function M.show(res, opts)
  if res.n == 0 then return nil end
  local parts, multiline = {}, false
  for i = 1, res.n do
    parts[i] = M.pretty(res[i], opts)
    if parts[i]:find("\n", 1, true) then multiline = true end
  end
  return table.concat(parts, multiline and "\n" or "\t")
end

---------------------------------------------------------------------------------------------
-- help: signatures and doc lines from the ---@meta stubs (docs/meta/*.lua)

-- One type in a tag line ("{a?: integer, b: fun(x: T): R}|nil desc" -> the type, the rest):
-- spaces inside brackets, or after ':' ',' '|', belong to the type.
local function take_type(s)
  local depth, i = 0, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c:match("[{(<%[]") then depth = depth + 1
    elseif c:match("[})>%]]") then depth = depth - 1
    elseif c:match("%s") and depth <= 0 and not s:sub(1, i - 1):match("[:,|]$") then break end
    i = i + 1
  end
  return s:sub(1, i - 1), (s:sub(i):gsub("^%s+", ""))
end

--- parse_stub(text) -> {entries = {entry...}, classes = {name -> class}, see = "docs/x.md"|nil}
--- entry: {name=, class=, fname=, method=, params={names}, param={name -> {type=, optional=,
--- desc=}}, returns=text|nil, doc={lines}}; class: {name=, doc={lines}, fields={{name=, type=,
--- optional=, desc=}}}.
function M.parse_stub(text)
  local res = {entries = {}, classes = {}}
  local var_class = {}
  local block
  local function reset() block = {doc = {}, param = {}, returns = {}, fields = {}} end
  reset()
  local function end_block(line)
    if block.class then
      local c = {name = block.class, doc = block.class_doc or {}, fields = block.fields}
      res.classes[c.name] = res.classes[c.name] or c
      local var = line:match("^local%s+([%a_][%w_]*)%s*=")
      if var then var_class[var] = block.class end
    end
    local var, sep, fname, params = line:match("^function%s+([%a_][%w_]*)([.:])([%a_][%w_]*)%s*%((.-)%)")
    if var then
      local class = var_class[var] or var
      local e = {class = class, fname = fname, method = sep == ":", name = class .. sep .. fname,
        params = {}, param = block.param, doc = block.doc,
        returns = #block.returns > 0 and table.concat(block.returns, ", ") or nil}
      for p in params:gmatch("[^,%s]+") do e.params[#e.params + 1] = p end
      res.entries[#res.entries + 1] = e
    end
    reset()
  end
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    local tag, rest = line:match("^%-%-%-%s*@([%w_]+)%s*(.*)$")
    if tag == "class" then
      block.class = rest:match("^([%w_.]+)")
      block.class_doc, block.doc = block.doc, {}
    elseif tag == "param" or tag == "field" then
      local name, opt, after = rest:match("^([%w_.]+)(%??)%s+(.*)$")
      if name then
        local ty, desc = take_type(after)
        local p = {name = name, type = ty, optional = opt == "?", desc = desc ~= "" and desc or nil}
        if tag == "param" then block.param[name] = p else block.fields[#block.fields + 1] = p end
      end
    elseif tag == "return" then
      block.returns[#block.returns + 1] = (rest:gsub("%s+$", ""))
    elseif tag then   -- luacheck: ignore 542 (@meta, @generic, @alias, @type ...: not shown)
    elseif line:match("^%-%-%-") then
      local doc = line:match("^%-%-%-%s?(.-)%s*$")
      if doc ~= "" then block.doc[#block.doc + 1] = doc end
    else
      if not res.see then res.see = line:match("^%-%-.-(docs/[%w_.-]+%.md)") end
      end_block(line)
    end
  end
  return res
end

-- Where the stubs are: embedded at build time as "meta:<name>" when the build does, else a
-- docs/meta folder of a source tree (an OPSH_PATH root, the tree this file or the binary is in).
local function meta_dirs()
  if M.META_DIRS then return M.META_DIRS end
  local dirs = {}
  local rt = require("opsh.runtime")
  for _, root in ipairs(rt.roots() or {}) do dirs[#dirs + 1] = root .. "/docs/meta" end
  local src = debug.getinfo(1, "S").source
  local tree = src:match("^@(/.*)/lua/opsh/repl%.lua$")
  if tree then dirs[#dirs + 1] = tree .. "/docs/meta" end
  local exe = rt.exe()
  if exe then
    local dir = exe:match("^(.*)/[^/]*$") or "."
    dirs[#dirs + 1] = dir .. "/../docs/meta"
    dirs[#dirs + 1] = dir .. "/docs/meta"
  end
  return dirs
end

local function stub_texts()
  local rt = require("opsh.runtime")
  local texts = {}
  for _, name in ipairs(rt.embedded("meta:")) do texts[name] = rt.embedded_source("meta:" .. name) end
  if next(texts) then return texts end
  for _, dir in ipairs(meta_dirs()) do
    local ok, files = pcall(require("opsh.fs").glob, dir .. "/*.lua")
    for _, path in ipairs(ok and files or {}) do
      local f = io.open(path, "r")
      if f then
        texts[path:match("([^/]*)%.lua$")] = f:read("a")
        f:close()
      end
    end
    if next(texts) then return texts end
  end
  return texts
end

local stub_cache
--- stubs() -> {entries = {sorted by name}, by_name = {}, classes = {}}: every stub, parsed once.
function M.stubs()
  if stub_cache then return stub_cache end
  local S = {entries = {}, by_name = {}, classes = {}}
  for _, text in pairs(stub_texts()) do
    local ok, parsed = pcall(M.parse_stub, text)
    if ok then
      for _, e in ipairs(parsed.entries) do
        e.see = parsed.see
        S.entries[#S.entries + 1] = e
      end
      for name, c in pairs(parsed.classes) do
        c.see = parsed.see
        S.classes[name] = c
      end
    end
  end
  table.sort(S.entries, function(a, b) return a.name < b.name end)
  for _, e in ipairs(S.entries) do S.by_name[e.name] = S.by_name[e.name] or e end
  stub_cache = S
  return S
end

--- reset_stubs(): read the stubs again on next use (tests set M.META_DIRS).
function M.reset_stubs() stub_cache = nil end

-- The tables a class's functions live in at run time: its module, and for a userdata class the
-- metatable registered under its name (luaL_newmetatable) and that metatable's __index.
local function class_tables(class)
  local out = {}
  local mod = package.loaded[class]
  if type(mod) == "table" then out[#out + 1] = mod end
  local mt = debug.getregistry()[class]
  if type(mt) == "table" then
    local idx = rawget(mt, "__index")
    if type(idx) == "table" then out[#out + 1] = idx end
    out[#out + 1] = mt
  end
  return out
end

local value_index, value_index_key
-- function or class table -> its stub entry or class; rebuilt when modules were loaded since.
local function stub_of(v)
  local S = M.stubs()
  if #S.entries == 0 then return nil end
  local key = 0
  for _ in next, package.loaded do key = key + 1 end
  if key ~= value_index_key then
    value_index, value_index_key = {}, key
    for _, e in ipairs(S.entries) do
      for _, t in ipairs(class_tables(e.class)) do
        local f = rawget(t, e.fname)
        if type(f) == "function" and value_index[f] == nil then value_index[f] = e end
      end
    end
    for name, c in pairs(S.classes) do
      local mod = package.loaded[name]
      if type(mod) == "table" and value_index[mod] == nil then value_index[mod] = c end
    end
  end
  return value_index[v]
end

local function param_text(e, name, typed)
  local p = e.param[name]
  if not p then return name end
  local s = name .. (p.optional and name ~= "..." and "?" or "")
  if typed and p.type then s = s .. ": " .. p.type end
  return s
end

--- signature(entry, typed) -> "opsh.pg.connect(target?, overrides?)" (typed: with types and returns)
function M.signature(e, typed)
  local ps = {}
  for i, name in ipairs(e.params) do ps[i] = param_text(e, name, typed) end
  local s = e.name .. "(" .. table.concat(ps, ", ") .. ")"
  if typed and e.returns then s = s .. " -> " .. e.returns end
  return s
end

-- A Lua function's parameters as its debug information has them: "a, b, ..."
local function lua_params(fn)
  local info = debug.getinfo(fn, "u")
  local ps = {}
  for i = 1, info.nparams do ps[i] = debug.getlocal(fn, i) or ("arg" .. i) end
  if info.isvararg then ps[#ps + 1] = "..." end
  return table.concat(ps, ", ")
end

local std_names
-- "string.format" for a function of Lua's standard library
local function std_name(fn)
  if not std_names then
    std_names = {}
    for _, lib in ipairs({"string", "table", "math", "io", "os", "coroutine", "utf8", "debug"}) do
      for k, f in pairs(_G[lib] or {}) do
        if type(f) == "function" then std_names[f] = lib .. "." .. k end
      end
    end
    for _, k in ipairs({"assert", "collectgarbage", "dofile", "error", "getmetatable", "ipairs", "load",
      "loadfile", "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen", "rawset", "require",
      "select", "setmetatable", "tonumber", "tostring", "type", "xpcall"}) do
      if type(_G[k]) == "function" then std_names[_G[k]] = k end
    end
  end
  return std_names[fn]
end

describe_function = function(fn)
  local ok, e = pcall(stub_of, fn)
  if ok and e and e.params then return "function " .. M.signature(e) end
  local info = debug.getinfo(fn, "S")
  if info.what == "C" then
    local std = std_name(fn)
    return std and ("function: builtin " .. std) or "function: builtin"
  end
  return string.format("function(%s) at %s:%d", lua_params(fn), info.short_src, info.linedefined)
end

-- The "--" comment lines just above where a Lua function is defined, from its source file (or
-- the copy embedded in the binary).
local function source_doc(fn)
  local info = debug.getinfo(fn, "S")
  local path = info.source:match("^@(.*)$")
  if not path or info.linedefined < 2 then return {} end
  local text
  local f = io.open(path, "r")
  if f then
    text = f:read("a")
    f:close()
  else
    local mod = path:match("^lua/(.+)%.lua$")
    if mod then
      mod = mod:gsub("/init$", ""):gsub("/", ".")
      text = require("opsh.runtime").embedded_source(mod)
    end
  end
  if not text then return {} end
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = l
    if #lines >= info.linedefined then break end
  end
  local doc = {}
  for i = info.linedefined - 1, 1, -1 do
    local d = lines[i] and lines[i]:match("^%s*%-%-+%s?(.-)%s*$")
    if not d then break end
    table.insert(doc, 1, d)
  end
  return doc
end

local function entry_help(e)
  local lines = {M.signature(e, true)}
  for _, d in ipairs(e.doc) do lines[#lines + 1] = d end
  local described, width = {}, 0
  for _, name in ipairs(e.params) do
    local p = e.param[name]
    if p and p.desc then
      described[#described + 1] = p
      width = math.max(width, #name)
    end
  end
  for _, p in ipairs(described) do
    lines[#lines + 1] = "  " .. p.name .. string.rep(" ", width - #p.name) .. "  " .. p.desc
  end
  if e.see then lines[#lines + 1] = "See " .. e.see .. "." end
  return table.concat(lines, "\n")
end

local function class_help(c)
  local S = M.stubs()
  local lines = {c.name .. (c.see and (" — see " .. c.see) or "")}
  for _, d in ipairs(c.doc) do lines[#lines + 1] = d end
  for _, e in ipairs(S.entries) do
    if e.class == c.name then
      lines[#lines + 1] = "  " .. M.signature(e) .. (e.returns and (" -> " .. e.returns) or "")
      if e.doc[1] then lines[#lines + 1] = "      " .. e.doc[1] end
    end
  end
  if #c.fields > 0 then
    lines[#lines + 1] = "fields:"
    for _, f in ipairs(c.fields) do
      lines[#lines + 1] = "  " .. f.name .. (f.optional and "?" or "") .. ": " .. f.type ..
        (f.desc and ("  " .. f.desc) or "")
    end
  end
  return table.concat(lines, "\n")
end

-- The stub class of a value: a module table, or what its metatable's __name says.
local function class_of(v)
  local ok, c = pcall(stub_of, v)
  if ok and c and c.fields then return c end
  local mt = debug.getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and M.stubs().classes[name] or nil
end

M.HELP = [[
opsh REPL — Lua 5.4 with opsh loaded (docs/repl.md)
  =expr, expr     print the value(s);  _  is the last value printed
  ?x, help(x)     signature and documentation of x (a function, a module, a handle):
                  ?opsh.pg.connect   ?opsh.pg   ?conn:query   help("pool")
  local x = ...   chunk-level locals stay visible to the next lines
  Tab completes (globals, fields, t["key"], methods);  Ctrl-C cancels a line;  Ctrl-D exits]]

--- help_text(v [, method]) -> the help for a value; for `obj:method`, the object and the name.
--- A string looks the name up in the stubs (exact, else every name containing it).
function M.help_text(v, method, nargs)
  if nargs == 0 then return M.HELP end
  local S = M.stubs()
  if method ~= nil then
    local c = class_of(v)
    local e = c and S.by_name[c.name .. ":" .. method]
    if not e and v ~= nil then
      local ok, f = pcall(function() return v[method] end)
      if ok and type(f) == "function" then
        e = stub_of(f)
        if not e then return M.help_text(f) end
      end
    end
    if e then return entry_help(e) end
    local found = {}
    for _, x in ipairs(S.entries) do
      if x.fname == method and x.method then found[#found + 1] = entry_help(x) end
    end
    if #found > 0 then return table.concat(found, "\n\n") end
    return "no help for :" .. tostring(method)
  end
  local t = type(v)
  if t == "function" then
    local e = stub_of(v)
    if e then return entry_help(e) end
    local lines = {describe_function(v)}
    if debug.getinfo(v, "S").what ~= "C" then
      for _, d in ipairs(source_doc(v)) do lines[#lines + 1] = d end
    elseif std_name(v) then
      lines[#lines + 1] = "Lua's standard library: see the Lua 5.4 reference manual."
    end
    if #lines == 1 and #S.entries == 0 then lines[2] = "(no docs/meta stubs found)" end
    return table.concat(lines, "\n")
  end
  if t == "string" then
    local e = S.by_name[v]
    if e then return entry_help(e) end
    if S.classes[v] then return class_help(S.classes[v]) end
    local found = {}
    for _, x in ipairs(S.entries) do
      if x.name:find(v, 1, true) then found[#found + 1] = M.signature(x) end
    end
    if #found > 40 then
      local n = #found
      for i = n, 41, -1 do found[i] = nil end
      found[41] = string.format("... (%d more)", n - 40)
    end
    if #found > 0 then return table.concat(found, "\n") end
    return "no help for " .. quote(v)
  end
  local c = (t == "table" or t == "userdata") and class_of(v)
  if c then return class_help(c) end
  return M.pretty(v) .. "  (" .. t .. ")"
end

--- help([v [, method]]): print the help for a value (`?x` at the prompt).
function M.help(...)
  io.stdout:write(M.help_text(select(1, ...), select(2, ...), select("#", ...)), "\n")
end

---------------------------------------------------------------------------------------------
-- completion

-- The index table chain behind v's metatable (strings: the string library).
local function index_tables(v)
  local out, seen = {}, {}
  local mt = debug.getmetatable(v)
  while mt and #out < 8 do
    local idx = rawget(mt, "__index")
    if type(idx) ~= "table" or seen[idx] then break end
    seen[idx] = true
    out[#out + 1] = idx
    mt = debug.getmetatable(idx)
  end
  return out
end

local function callable(x)
  if type(x) == "function" then return true end
  local mt = debug.getmetatable(x)
  return mt ~= nil and rawget(mt, "__call") ~= nil
end

-- Names v offers: its own string keys (tables) and those of its __index tables.
local function field_names(v, methods)
  local names = {}
  local function add(t)
    for k, x in next, t do
      if is_identifier(k) and (not methods or callable(x)) then names[k] = true end
    end
  end
  if type(v) == "table" then add(v) end
  for _, t in ipairs(index_tables(v)) do add(t) end
  -- a table whose __index is a function (modules loaded on first use) lists those names in __fields
  local mt = debug.getmetatable(v)
  local lazy = mt and rawget(mt, "__fields")
  if type(lazy) == "table" and not methods then
    for k in next, lazy do if is_identifier(k) then names[k] = true end end
  end
  return names
end

local function resolve(path, env)
  local v = env or _G
  for part in path:gmatch("[^.]+") do
    local t = type(v)
    if t ~= "table" and t ~= "userdata" and t ~= "string" then return nil end
    local ok, x = pcall(function() return v[part] end)
    if not ok then return nil end
    v = x
  end
  return v
end

-- The names a line can use bare: globals, and the session's locals (those of env, see below).
local function top_names(env)
  local names = field_names(_G)
  if env and env ~= _G then
    for k in next, env do if is_identifier(k) then names[k] = true end end
    local ctl = rawget(getmetatable(env) or {}, "__repl")
    for k in pairs(ctl and ctl.declared or {}) do names[k] = true end
  end
  return names
end

local function sorted_unique(found)
  table.sort(found)
  local out, last = {}, nil
  for _, s in ipairs(found) do
    if s ~= last then out[#out + 1] = s end
    last = s
  end
  return out
end

local PATH = "[%a_][%w_]*[%w_.]*"
local function is_path(head)
  return head:match("^[%a_][%w_]*$") or (head:match("^[%a_][%w_]*%.[%w_.]*[%w_]$") and
    not head:find("..", 1, true))
end

-- After `path[`: the table's string keys as `"key"]` (any key, not only identifiers); `typed` is
-- what the key already has on the line before the word (word breaks: spaces, quotes).
local function complete_key(path, quote_char, typed, word, env)
  if not is_path(path) then return {} end
  local v = resolve(path, env)
  if type(v) ~= "table" then return {} end
  local q = quote_char ~= "" and quote_char or '"'
  local found = {}
  local prefix = typed .. word
  for k in next, v do
    if type(k) == "string" and k:sub(1, #prefix) == prefix and not k:find("[%c\\" .. q .. "]") then
      found[#found + 1] = (quote_char == "" and q or "") .. k:sub(#typed + 1) .. q .. "]"
    end
  end
  return sorted_unique(found)
end

-- The line ends with a string literal in parentheses, not a call: `("%d")`, `x .. ('a')`
local function string_in_parens(line)
  local before, group = line:match("^(.-)(%b())%s*$")
  if not group or before:match("[%w_%]%)\"']%s*$") then return false end
  local inner = group:sub(2, -2):match("^%s*(.-)%s*$")
  local q = inner:sub(1, 1)
  return ((q == '"' or q == "'") and inner:sub(-1) == q and #inner >= 2) or inner:match("^%[=*%[.*%]=*%]$") ~= nil
end

--- complete(word [, line [, env]]) -> sorted completions of the word before the cursor, each
--- replacing the whole word: a global, local or keyword; a field or method of a dotted path
--- (`opsh.sp`, `string.fo`, `s:up`, `t.a.b`); a key after `t[` or `t["`; a string method
--- after a string literal (`("%d"):fo`). `line` is the text before the word; `env` the
--- session's environment (its locals complete too).
function M.complete(word, line, env)
  line = line or ""
  local found = {}
  if word:sub(1, 1) == "?" and line:match("^%s*$") then   -- ?opsh.pg.co
    for i, c in ipairs(M.complete(word:sub(2), line, env)) do found[i] = "?" .. c end
    return found
  end
  -- t["ke  /  t[  (the editor breaks words at quotes, brackets and spaces)
  local path, q, typed = line:match("(" .. PATH .. ")%[%s*([\"']?)([^\"'%]]*)$")
  if path and (q ~= "" or (typed == "" and word == "")) then
    return complete_key(path, q, typed, word, env)
  end
  local head, sep, partial = word:match("^(.-)([.:])([%w_]*)$")
  if head == "" and sep == ":" and string_in_parens(line) then
    -- ("text"):  a string literal in parentheses: the string library's methods
    for name in pairs(field_names("", true)) do
      if name:sub(1, #partial) == partial then found[#found + 1] = ":" .. name end
    end
    return sorted_unique(found)
  end
  if not head then
    if word ~= "" and not word:match("^[%a_][%w_]*$") then return {} end
    for name in pairs(top_names(env)) do
      if name:sub(1, #word) == word then found[#found + 1] = name end
    end
    for _, k in ipairs(keywords) do
      if k:sub(1, #word) == word then found[#found + 1] = k end
    end
  else
    if not is_path(head) then return {} end
    local v = resolve(head, env)
    if v == nil then return {} end
    for name in pairs(field_names(v, sep == ":")) do
      if name:sub(1, #partial) == partial then found[#found + 1] = head .. sep .. name end
    end
  end
  return sorted_unique(found)
end

--- complete_guarded(word, line, env): for the line editor; never raises, gives up on a runaway
--- __index.
function M.complete_guarded(word, line, env)
  debug.sethook(function() error("completion took too long", 0) end, "", 1000000)
  local ok, res = pcall(M.complete, word, line, env)
  debug.sethook()
  return ok and res or {}
end

---------------------------------------------------------------------------------------------
-- history

-- Lines that may hold a credential are never written to the history file.
M.SENSITIVE = {"secret", "password", "passwd", "passphrase", "token", "api[_-]?key", "private[_-]?key",
  "credential", "authorization", "bearer", "://[^/%s:@]+:[^/%s@]+@"}

--- keep_in_history(entry) -> false for what must not reach the history file: lines starting
--- with a space (as bash's ignorespace) and lines that look like they hold a credential.
function M.keep_in_history(entry)
  if entry:match("^%s") then return false end
  local lower = entry:lower()
  for _, pat in ipairs(M.SENSITIVE) do
    if lower:find(pat) then return false end
  end
  return true
end

--- The history file: $OPSH_HISTFILE (empty: none), else $XDG_STATE_HOME/opsh/history, else
--- ~/.local/state/opsh/history; nil when there is nowhere to keep it.
function M.history_path()
  local env = os.getenv("OPSH_HISTFILE")
  if env then return env ~= "" and env or nil end
  local state = os.getenv("XDG_STATE_HOME")
  if state and state:sub(1, 1) == "/" then return state .. "/opsh/history" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.local/state/opsh/history" end
  return nil
end

---------------------------------------------------------------------------------------------
-- chunks

--- incomplete(err) -> the syntax error only says the chunk has not ended yet (lua.c's rule)
function M.incomplete(err)
  return type(err) == "string" and err:sub(-5) == "<eof>"
end

local OPS = {"...", "==", "~=", "<=", ">=", "//", "::", "<<", ">>", ".."}

--- tokens(source) -> {{kind = "name"|"keyword"|"string"|"number"|"op", text=, s=, e=}...}
--- Comments and spaces are skipped; an unterminated string or comment ends the list.
function M.tokens(src)
  local toks, i, n = {}, 1, #src
  local function add(kind, s, e) toks[#toks + 1] = {kind = kind, text = src:sub(s, e), s = s, e = e} end
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = src:find("%S", i) or n + 1
    elseif src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      local e
      if eq then e = select(2, src:find("]" .. eq .. "]", i, true)) else e = src:find("\n", i, true) end
      if not e then break end
      i = e + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local e = select(2, src:find("]" .. eq .. "]", i, true))
      if not e then break end
      add("string", i, e)
      i = e + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      if j > n then break end
      add("string", i, j)
      i = j + 1
    elseif c:match("[%a_]") then
      local e = select(2, src:find("^[%w_]+", i))
      add(is_keyword[src:sub(i, e)] and "keyword" or "name", i, e)
      i = e + 1
    elseif c:match("%d") or src:match("^%.%d", i) then
      local expo = src:match("^0[xX]", i) and "[pP]" or "[eE]"
      local e = select(2, src:find("^[%w_.]*", i))
      while src:sub(e, e):match(expo) and src:sub(e + 1, e + 1):match("[+-]") do
        e = select(2, src:find("^[%w_.]*", e + 2))
      end
      add("number", i, e)
      i = e + 1
    else
      local len = 1
      for _, op in ipairs(OPS) do
        if src:sub(i, i + #op - 1) == op then len = #op break end
      end
      add("op", i, i + len - 1)
      i = i + len
    end
  end
  return toks
end

local OPENS = {["function"] = true, ["do"] = true, ["if"] = true, ["repeat"] = true}
local CLOSES = {["end"] = true, ["until"] = true}

-- The call a chunk-level `local` becomes: declares the names in the session (env's __index
-- answers this key, which is not a name a program can write bare).
local DECLARE = '_ENV["(local)"]'

--- rewrite_locals(source) -> source', {names}: each chunk-level `local` statement becomes an
--- assignment into the session's environment, so that later chunks see the names (as globals
--- do) while nested blocks keep real locals. Lines stay where they are (error positions hold).
---   local a, b <const> = f()   ->  _ENV["(local)"]{"a","b"}; a, b          = f()
---   local x                    ->  _ENV["(local)"]{"x"}; x = nil
---   local function f() ... end ->  _ENV["(local)"]{"f"}; function f() ... end
--- `local x <close>` stays a real local: it is closed when its chunk ends.
function M.rewrite_locals(src)
  local toks = M.tokens(src)
  local depth, edits, all = 0, {}, {}
  for i, t in ipairs(toks) do
    if t.kind == "keyword" then
      if OPENS[t.text] then depth = depth + 1
      elseif CLOSES[t.text] then depth = depth - 1
      elseif t.text == "local" and depth == 0 then
        local names, attribs, keep, j = {}, {}, false, i + 1
        local bare = false   -- `local a, b` without values
        if toks[j] and toks[j].text == "function" and toks[j + 1] and toks[j + 1].kind == "name" then
          names[1] = toks[j + 1].text
        else
          while toks[j] and toks[j].kind == "name" do
            names[#names + 1] = toks[j].text
            j = j + 1
            if toks[j] and toks[j].text == "<" and toks[j + 2] and toks[j + 2].text == ">" then
              if toks[j + 1].text ~= "const" then keep = true end
              attribs[#attribs + 1] = {toks[j].s, toks[j + 2].e}
              j = j + 3
            end
            if not (toks[j] and toks[j].text == ",") then break end
            j = j + 1
          end
          bare = not (toks[j] and toks[j].text == "=")
        end
        for _, name in ipairs(names) do
          if name == "_ENV" then return src, {} end   -- the chunk's later names resolve in it
        end
        if #names > 0 and not keep then
          local quoted = {}
          for k, name in ipairs(names) do
            quoted[k] = '"' .. name .. '"'
            all[#all + 1] = name
          end
          edits[#edits + 1] = {t.s, t.e, DECLARE .. "{" .. table.concat(quoted, ",") .. "};"}
          for _, a in ipairs(attribs) do
            edits[#edits + 1] = {a[1], a[2], (src:sub(a[1], a[2]):gsub("[^\n]", " "))}
          end
          if bare then edits[#edits + 1] = {toks[j - 1].e + 1, toks[j - 1].e, " = nil"} end
        end
      end
    end
  end
  if #edits == 0 then return src, all end
  table.sort(edits, function(a, b) return a[1] > b[1] end)
  for _, e in ipairs(edits) do src = src:sub(1, e[1] - 1) .. e[3] .. src:sub(e[2] + 1) end
  return src, all
end

--- environment([base]) -> env: the session's _ENV. Reads fall back to base (_G); assignments go
--- to base too, except to the session's locals (declared by a rewritten `local`), which live in
--- env itself, so that every chunk and every function defined at the prompt share them.
--- A name declared but not yet assigned (`local print = print` while evaluating the right
--- side) still reads the outer value.
function M.environment(base)
  base = base or _G
  local ctl = {declared = {}, pending = {}}
  local env = {}
  local hidden = {}
  hidden["(local)"] = function(names)
    for _, name in ipairs(names) do
      if not ctl.declared[name] then ctl.pending[name] = true end
    end
  end
  hidden["(help)"] = M.help
  -- ?a.b.c / ?a.b:m: what the path holds, else the stub of that name (?opsh.pg.conn:query)
  hidden["(help path)"] = function(path)
    local obj, method = path:match("^(.*):([%a_][%w_]*)$")
    local v = resolve(obj or path, env)
    if v == nil then return M.help(path) end
    if obj then return M.help(v, method) end
    return M.help(v)
  end
  --- the chunk ended: a name it declared but never assigned (it failed first) is not a local
  function ctl.finish() ctl.pending = {} end
  function ctl.declare(name, value)
    ctl.declared[name] = true
    rawset(env, name, value)
  end
  setmetatable(env, {
    __repl = ctl,
    __index = function(_, k)
      if ctl.declared[k] then return nil end
      local h = hidden[k]
      if h ~= nil then return h end
      return base[k]
    end,
    __newindex = function(t, k, v)
      if ctl.declared[k] or ctl.pending[k] then
        ctl.declared[k], ctl.pending[k] = true, nil
        rawset(t, k, v)
      else
        base[k] = v
      end
    end,
  })
  return env
end

--- compile(source, first [, env]) -> fn, source | nil, err, incomplete, source
--- A first line is tried as an expression first (`return <line>`); `=expr` means that.
--- The source returned is what later lines continue. With the session's env, chunk-level
--- locals are rewritten into it (rewrite_locals) and the chunk runs with it as _ENV.
function M.compile(source, first, env)
  if first then
    if source:sub(1, 1) == "=" then
      source = "return " .. source:sub(2)
    else
      local fn = load("return " .. source .. ";", M.CHUNKNAME, "t", env)
      if fn then return fn, source end
    end
  end
  local fn, err = load(source, M.CHUNKNAME, "t", env)
  if not fn then return nil, err, M.incomplete(err), source end
  if env then
    local rewritten, names = M.rewrite_locals(source)
    if #names > 0 then
      -- the original compiled: a rewrite that does not is a bug here, not the user's; the
      -- chunk then runs with its locals as they are
      fn = load(rewritten, M.CHUNKNAME, "t", env) or fn
    end
  end
  return fn, source
end

--- help_line(line) -> the source `?x` / `?obj:method` / `?` stands for, or nil for other lines
function M.help_line(line)
  local expr = line:match("^%s*%?(.*)$")
  if not expr then return nil end
  expr = expr:match("^%s*(.-)%s*$")
  if expr == "" then return '_ENV["(help)"]()' end
  if expr:match("^[%a_][%w_.]*$") or expr:match("^[%a_][%w_.]*:[%a_][%w_]*$") then
    return '_ENV["(help path)"]("' .. expr .. '")'
  end
  local eol = expr:find("--", 1, true) and "\n" or ""   -- a comment must not swallow the ")"
  local obj, method = expr:match("^(.-[^:]):([%a_][%w_]*)$")
  if obj and not is_keyword[method] then
    return '_ENV["(help)"](' .. obj .. eol .. ', "' .. method .. '")'
  end
  return '_ENV["(help)"](' .. expr .. eol .. ")"
end

local function one_line(s)
  return (tostring(s):gsub("%s*\n%s*", " "))
end

--- describe(err) -> the one line printed for a failed chunk
function M.describe(err)
  if core.is_error(err, "interrupted") then return "interrupted" end
  if core.is_error(err) then
    local ok, s = pcall(tostring, err)
    return "error: " .. one_line(ok and s or err.message)
  end
  if type(err) == "string" then return "error: " .. one_line(err) end
  return "error: " .. one_line(M.pretty(err))
end

---------------------------------------------------------------------------------------------
-- the loop

local function stderr_line(color, s)
  if color then s = "\27[31m" .. s .. "\27[0m" end
  io.stderr:write(s, "\n")
end

local function prompt(continued, color)
  if continued then return ">> " end
  local ok, name = pcall(function() return require("opsh.env").selected_name() end)
  local p = (ok and name) and ("opsh[" .. name .. "]> ") or "opsh> "
  if color then
    -- \1 \2 tell the editor the escape sequences take no room on the screen
    p = "\1\27[1m\2" .. p .. "\1\27[0m\2"
  end
  return p
end

--- trim_traceback(tb) -> the frames of the chunk: without the message (already printed) and
--- without the REPL's own frames.
function M.trim_traceback(tb)
  local out = {}
  local started = false
  for l in tostring(tb):gmatch("[^\n]+") do
    if l == "stack traceback:" then started = true end
    if started and not l:find("opsh/repl%.lua:") then out[#out + 1] = l end
  end
  return table.concat(out, "\n")
end

-- Runs one compiled chunk as the foreground task: it prints its own results, so that Ctrl-C
-- during a long print cancels the line too.
local function run_chunk(fn, st)
  local task = core.spawn(function()
    local res = table.pack(fn())
    if res.n > 0 then st.ctl.declare("_", res[1]) end
    local text = M.show(res, {color = st.color})
    if text then io.stdout:write(text, "\n") end
    io.stdout:flush()
  end)
  core.foreground(task)
  pcall(task.wait, task)
  core.foreground(nil)
  st.ctl.finish()
  local status = task:status()
  if status == "ready" or status == "suspended" then task:cancel() end   -- the wait itself failed
  local ok, err, traceback = task:result()
  io.stdout:flush()
  if not ok then
    -- after Ctrl-C the terminal has echoed ^C where the cursor was
    if st.editing and core.is_error(err, "interrupted") then io.stderr:write("\n") end
    stderr_line(st.color, M.describe(err))
    if st.verbose and traceback and not core.is_error(err, "interrupted") then
      io.stderr:write(M.trim_traceback(traceback), "\n")
    end
  end
end

local function remember(st, entry)
  if entry == st.last then return end
  st.last = entry
  st.C.history_add(entry)
  if st.histpath and M.keep_in_history(entry) then
    local ok, err = st.C.history_append(st.histpath, entry)
    if not ok and not st.history_warned then
      st.history_warned = true
      stderr_line(st.color, "opsh: history not saved: " .. tostring(err))
    end
  end
end

-- One line from the editor -> the pending (incomplete) chunk {source=, typed=} or nil.
local function step(st, pending, line)
  local first = pending == nil
  if first and line:match("^%s*$") then return nil end
  local typed = first and line or (pending.typed .. "\n" .. line)
  local src = first and (M.help_line(line) or line) or (pending.source .. "\n" .. line)
  local fn, err, incomplete, source = M.compile(src, first, st.env)
  if fn then source = err end
  if not fn and incomplete then return {source = source, typed = typed} end
  remember(st, typed)
  if not fn then
    stderr_line(st.color, "error: " .. one_line(err))
    return nil
  end
  run_chunk(fn, st)
  return nil
end

--- run(opts) -> exit status. The REPL loop, inside the CLI's task: waiting for a line suspends
--- only that task; `opts.verbose` adds tracebacks, `opts.no_color` / NO_COLOR plain prompts.
function M.run(opts)
  opts = opts or {}
  local C = require("opsh._repl")
  local me = core.current()
  if not me then error(core.error("usage", "the REPL must run inside an opsh task"), 0) end
  local editing = C.editing()
  local st = {
    C = C, verbose = opts.verbose, editing = editing,
    color = editing and not opts.no_color and os.getenv("NO_COLOR") == nil,
    histpath = editing and M.history_path() or nil,
    env = M.environment(),
  }
  st.ctl = getmetatable(st.env).__repl
  st.ctl.declare("help", M.help)
  if st.histpath then
    local entries, err = C.history_load(st.histpath, M.HISTORY_SIZE)
    if entries then
      for _, e in ipairs(entries) do C.history_add(e) end
      st.last = entries[#entries]
    else
      stderr_line(st.color, "opsh: no history: " .. tostring(err))
      st.histpath = nil
    end
  end
  if rawget(_G, "opsh") == nil then rawset(_G, "opsh", require("opsh")) end   -- no ceremony at the prompt
  C.set_completer(function(word, line) return M.complete_guarded(word, line, st.env) end)
  if editing and not opts.quiet then
    io.stdout:write(string.format("opsh %s (%s) — Ctrl-C cancels a line, Ctrl-D exits\n",
      runtime.version, runtime.lua_version))
  end
  core.foreground(nil)   -- at the prompt, Ctrl-C belongs to the editor
  local pending = nil
  while true do
    local ok, line = pcall(C.readline, prompt(pending ~= nil, st.color))
    if not ok then
      -- the editor failed: nothing sensible to retry, unless it was Ctrl-C hitting the REPL's code
      if not core.is_error(line, "interrupted") then
        C.close()
        core.foreground(me)
        error(line, 0)
      end
      stderr_line(st.color, "interrupted")
      pending = nil
    elseif line == nil then
      if pending == nil then break end
      remember(st, pending.typed)
      local _, err = load(pending.source, M.CHUNKNAME, "t")
      stderr_line(st.color, "error: " .. one_line(err))
      pending = nil
    elseif line == false then
      pending = nil   -- Ctrl-C at the prompt: drop what was typed
    else
      local done, res = pcall(step, st, pending, line)
      pending = done and res or nil
      if not done then
        -- Ctrl-C while the REPL itself was busy, or a bug in the REPL: report, keep going
        stderr_line(st.color, core.is_error(res, "interrupted") and "interrupted"
          or ("opsh: internal error: " .. one_line(res)))
      end
    end
  end
  C.close()
  core.foreground(me)
  return 0
end

return M
