-- opsh.repl: the interactive prompt. Each chunk runs as its own foreground task (Ctrl-C
-- cancels it, not the REPL); values print through a pretty printer; chunk-level locals live in
-- the session's environment; help comes from the ---@meta stubs (docs/meta); the line editor,
-- history file and completion hooks are in the engine (opsh._repl, engine/repl.c).
-- This file is the loop; its parts, by role, are the modules opsh.repl.<part> beside it.
local core = require("opsh._core")
local runtime = require("opsh.runtime")
local complete = require("opsh.repl.complete")
local help = require("opsh.repl.help")
local history = require("opsh.repl.history")
local locals = require("opsh.repl.locals")
local pretty = require("opsh.repl.pretty")
local stubs = require("opsh.repl.stubs")
local syntax = require("opsh.repl.syntax")

local M = {}

M.HISTORY_SIZE = 1000
M.CHUNKNAME = "=repl"

-- The parts' functions that are this module's API (docs/meta/opsh.repl.lua)
M.pretty = pretty.pretty
M.is_records = pretty.is_records
M.parse_stub = stubs.parse_stub
M.stubs = stubs.stubs
M.reset_stubs = stubs.reset_stubs
M.signature = stubs.signature
M.HELP = help.HELP
M.help = help.help
M.help_text = help.help_text
M.help_line = help.help_line
M.complete = complete.complete
M.complete_guarded = complete.complete_guarded
M.SENSITIVE = history.SENSITIVE
M.keep_in_history = history.keep_in_history
M.history_path = history.history_path
M.tokens = syntax.tokens
M.rewrite_locals = locals.rewrite_locals
M.environment = locals.environment

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

--- incomplete(err) -> the syntax error only says the chunk has not ended yet (lua.c's rule)
function M.incomplete(err)
  return type(err) == "string" and err:sub(-5) == "<eof>"
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
    if started and not l:find("opsh/repl/[%w_]+%.lua:") then out[#out + 1] = l end
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
