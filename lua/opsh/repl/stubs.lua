-- opsh.repl.stubs: what the ---@meta stubs (docs/meta/*.lua) say: parsed once, indexed by the
-- functions and module tables of loaded modules; signatures, also of functions without a stub.
local M = {}

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
  local set = require("opsh.repl").META_DIRS   -- tests point it elsewhere
  if set then return set end
  local dirs = {}
  local rt = require("opsh.runtime")
  for _, root in ipairs(rt.roots() or {}) do dirs[#dirs + 1] = root .. "/docs/meta" end
  local src = debug.getinfo(1, "S").source
  local tree = src:match("^@(/.*)/lua/opsh/repl/stubs%.lua$")
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

--- reset_stubs(): read the stubs again on next use (tests set opsh.repl.META_DIRS).
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
function M.stub_of(v)
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
function M.std_name(fn)
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

--- describe_function(fn) -> the line a function prints as: its stub's signature, else the name
--- of a builtin, else its parameters and where it is defined
function M.describe_function(fn)
  local ok, e = pcall(M.stub_of, fn)
  if ok and e and e.params then return "function " .. M.signature(e) end
  local info = debug.getinfo(fn, "S")
  if info.what == "C" then
    local std = M.std_name(fn)
    return std and ("function: builtin " .. std) or "function: builtin"
  end
  return string.format("function(%s) at %s:%d", lua_params(fn), info.short_src, info.linedefined)
end

return M
