-- opsh.repl.help: `?x` and help(x): a value's signature and documentation, from the ---@meta
-- stubs (opsh.repl.stubs), else from the comments above a Lua function's source.
local pretty = require("opsh.repl.pretty")
local stubs = require("opsh.repl.stubs")
local syntax = require("opsh.repl.syntax")

local M = {}

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
  local lines = {stubs.signature(e, true)}
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
  local S = stubs.stubs()
  local lines = {c.name .. (c.see and (" — see " .. c.see) or "")}
  for _, d in ipairs(c.doc) do lines[#lines + 1] = d end
  for _, e in ipairs(S.entries) do
    if e.class == c.name then
      lines[#lines + 1] = "  " .. stubs.signature(e) .. (e.returns and (" -> " .. e.returns) or "")
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
  local ok, c = pcall(stubs.stub_of, v)
  if ok and c and c.fields then return c end
  local mt = debug.getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and stubs.stubs().classes[name] or nil
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
  local S = stubs.stubs()
  if method ~= nil then
    local c = class_of(v)
    local e = c and S.by_name[c.name .. ":" .. method]
    if not e and v ~= nil then
      local ok, f = pcall(function() return v[method] end)
      if ok and type(f) == "function" then
        e = stubs.stub_of(f)
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
    local e = stubs.stub_of(v)
    if e then return entry_help(e) end
    local lines = {stubs.describe_function(v)}
    if debug.getinfo(v, "S").what ~= "C" then
      for _, d in ipairs(source_doc(v)) do lines[#lines + 1] = d end
    elseif stubs.std_name(v) then
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
      if x.name:find(v, 1, true) then found[#found + 1] = stubs.signature(x) end
    end
    if #found > 40 then
      local n = #found
      for i = n, 41, -1 do found[i] = nil end
      found[41] = string.format("... (%d more)", n - 40)
    end
    if #found > 0 then return table.concat(found, "\n") end
    return "no help for " .. syntax.quote(v)
  end
  local c = (t == "table" or t == "userdata") and class_of(v)
  if c then return class_help(c) end
  return pretty.pretty(v) .. "  (" .. t .. ")"
end

--- help([v [, method]]): print the help for a value (`?x` at the prompt).
function M.help(...)
  io.stdout:write(M.help_text(select(1, ...), select(2, ...), select("#", ...)), "\n")
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
  if obj and not syntax.is_keyword[method] then
    return '_ENV["(help)"](' .. obj .. eol .. ', "' .. method .. '")'
  end
  return '_ENV["(help)"](' .. expr .. eol .. ")"
end

return M
