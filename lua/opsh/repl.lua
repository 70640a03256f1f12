-- opsh.repl: the interactive prompt. Each chunk runs as its own foreground task (Ctrl-C
-- cancels it, not the REPL); values print through a pretty printer; the line editor, history
-- file and completion hooks are in the engine (opsh._repl, engine/repl.c).
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

local function scalar(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "function" then
    local info = debug.getinfo(v, "S")
    if info.what == "C" then return "function: builtin" end
    return string.format("function: %s:%d", info.short_src, info.linedefined)
  end
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

local function resolve(path)
  local v = _G
  for part in path:gmatch("[^.]+") do
    local t = type(v)
    if t ~= "table" and t ~= "userdata" and t ~= "string" then return nil end
    local ok, x = pcall(function() return v[part] end)
    if not ok then return nil end
    v = x
  end
  return v
end

--- complete(word) -> sorted completions of a global, keyword, or a field/method of a dotted
--- path (`opsh.sp`, `string.fo`, `s:up`, `t.a.b`); each completion replaces the whole word.
function M.complete(word)
  local found = {}
  local head, sep, partial = word:match("^(.-)([.:])([%w_]*)$")
  if not head then
    if word ~= "" and not word:match("^[%a_][%w_]*$") then return {} end
    for name in pairs(field_names(_G)) do
      if name:sub(1, #word) == word then found[#found + 1] = name end
    end
    for _, k in ipairs(keywords) do
      if k:sub(1, #word) == word then found[#found + 1] = k end
    end
  else
    if not head:match("^[%a_][%w_]*$") and not head:match("^[%a_][%w_]*%.[%w_.]*[%w_]$") then return {} end
    if head:find("..", 1, true) then return {} end
    local v = resolve(head)
    if v == nil then return {} end
    for name in pairs(field_names(v, sep == ":")) do
      if name:sub(1, #partial) == partial then found[#found + 1] = head .. sep .. name end
    end
  end
  table.sort(found)
  local out, last = {}, nil
  for _, s in ipairs(found) do
    if s ~= last then out[#out + 1] = s end
    last = s
  end
  return out
end

--- complete_guarded(word): for the line editor; never raises, gives up on a runaway __index.
function M.complete_guarded(word)
  debug.sethook(function() error("completion took too long", 0) end, "", 1000000)
  local ok, res = pcall(M.complete, word)
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

--- compile(source, first) -> fn, source | nil, err, incomplete, source
--- A first line is tried as an expression first (`return <line>`); `=expr` means that.
--- The source returned is what later lines continue.
function M.compile(source, first)
  if first then
    if source:sub(1, 1) == "=" then
      source = "return " .. source:sub(2)
    else
      local fn = load("return " .. source .. ";", M.CHUNKNAME, "t")
      if fn then return fn, source end
    end
  end
  local fn, err = load(source, M.CHUNKNAME, "t")
  if fn then return fn, source end
  return nil, err, M.incomplete(err), source
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
    local text = M.show(res, {color = st.color})
    if text then io.stdout:write(text, "\n") end
    io.stdout:flush()
  end)
  core.foreground(task)
  pcall(task.wait, task)
  core.foreground(nil)
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
  local fn, err, incomplete, source = M.compile(first and line or (pending.source .. "\n" .. line), first)
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
  }
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
  C.set_completer(M.complete_guarded)
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
