-- opsh.repl.complete: Tab completion: globals, session locals and keywords; fields and methods
-- of a dotted path; table keys after `t[`; string methods after a literal.
local syntax = require("opsh.repl.syntax")

local M = {}

local is_identifier = syntax.is_identifier

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

--- resolve(path [, env]) -> what `a.b.c` holds in env (default _G), nil when a step fails
function M.resolve(path, env)
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

-- The names a line can use bare: globals, and the session's locals (those of env, opsh.repl.locals).
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
  local v = M.resolve(path, env)
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

-- k8s.get("po  /  c:list('dep  : resource names (plural and short) from opsh.k8s's discovery cache on
-- disk, so completion never waits for a server
local K8S_CALL = "k8s[%w_]*[.:][%w_]+%(%s*[\"']$"
local function k8s_call(line, env)
  if line:find(K8S_CALL) then return true end
  local var = line:match("([%a_][%w_]*):[%w_]+%(%s*[\"']$")
  local v = var and M.resolve(var, env)
  return v ~= nil and tostring(v):find("^opsh%.k8s%.client") ~= nil
end

local function k8s_resource_names(word)
  local ok, disc = pcall(require, "opsh.k8s.discovery")
  if not ok then return {} end
  local fs, json = require("opsh.fs"), require("opsh.json")
  local found = {}
  for _, path in ipairs(fs.glob(disc.default_cache_dir() .. "/*.json")) do
    local okd, doc = pcall(json.decode, fs.read(path))
    for _, r in ipairs(okd and type(doc) == "table" and doc.resources or {}) do
      for _, n in ipairs({r.resource, table.unpack(r.short_names or {})}) do
        if type(n) == "string" and not n:find("/") and n:sub(1, #word) == word then found[#found + 1] = n end
      end
    end
  end
  return sorted_unique(found)
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
  if k8s_call(line, env) then return k8s_resource_names(word) end
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
    for _, k in ipairs(syntax.KEYWORDS) do
      if k:sub(1, #word) == word then found[#found + 1] = k end
    end
  else
    if not is_path(head) then return {} end
    local v = M.resolve(head, env)
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

return M
