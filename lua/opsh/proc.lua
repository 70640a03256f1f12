-- opsh.proc: child processes. run() waits for a command and checks its exit status; spawn()
-- returns a handle for servers and pipelines; shell() is the explicit opt-in to /bin/sh -c.
-- The C part (opsh._proc) spawns on libuv; this layer holds the defaults and the policy.
local C = require("opsh._proc")
local core = require("opsh._core")
local check = require("opsh.check")
local lines = require("opsh.lines")
local dryrun = require("opsh.dryrun")
local redact = require("opsh.redact")

local M = {}

-- variables every child started without a whole `env` gets (unless its env_add names them): the
-- environment opsh itself would pass on had it a setenv (opsh test: its audit file)
M._inherit = {}
M.DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
M.DEFAULT_KILL_GRACE = 5
local STDERR_TAIL_LINES = 10

local function usage(fname, msg)
  check.fail(fname, 1, msg)
end

local common_opts = {argv = true, env = true, env_add = true, cwd = true, stdin = true, stdin_file = true,
  stdin_inherit = true, stdout = true, stderr = true, stdout_file = true, stderr_file = true,
  max_output = true, timeout = true, kill_grace = true, read = true}
local run_opts = setmetatable({check = true, truncate = true}, {__index = common_opts})
local spawn_opts = setmetatable({stdin_pipe = true, detach = true}, {__index = common_opts})

-- the option names of run and spawn, for "did you mean"
local allowed_list = {}
for _, set in ipairs({run_opts, spawn_opts}) do
  local list = {}
  for k in pairs(common_opts) do list[#list + 1] = k end
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  allowed_list[set] = list
end

local out_modes = {capture = true, inherit = true, null = true, pipe = true}

-- The options for opsh._proc.spawn, and the line handlers (run) by stream.
local function build(opts, fname, allowed, is_spawn)
  if type(opts) ~= "table" then usage(fname, "options table expected, got " .. check.typename(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then check.unknown(fname, 1, k, allowed_list[allowed]) end
  end
  local argv = opts.argv
  if type(argv) ~= "table" or #argv == 0 then
    usage(fname, "argv must be a non-empty list: the program, then its arguments (no shell)")
  end
  local spec = {argv = {}, cwd = opts.cwd, stdin_file = opts.stdin_file, stdout_file = opts.stdout_file,
    stderr_file = opts.stderr_file, timeout = opts.timeout, detach = opts.detach}
  for i = 1, #argv do
    local a = argv[i]
    if type(a) == "number" then a = tostring(a) end
    spec.argv[i] = a   -- the C part rejects secrets and other types, naming the index
  end
  for _, f in ipairs({"env", "env_add"}) do
    local e = opts[f]
    if e ~= nil then
      if type(e) ~= "table" then usage(fname, f .. " must be a table of NAME = value") end
      local copy = {}
      for k, v in pairs(e) do copy[k] = type(v) == "number" and tostring(v) or v end
      spec[f] = copy
    end
  end
  local nin = (opts.stdin ~= nil and 1 or 0) + (opts.stdin_file ~= nil and 1 or 0)
    + (opts.stdin_inherit and 1 or 0) + (opts.stdin_pipe and 1 or 0)
  if nin > 1 then usage(fname, "give only one of stdin, stdin_file, stdin_inherit, stdin_pipe") end
  if opts.stdin ~= nil then
    if type(opts.stdin) ~= "string" and not core.is_secret(opts.stdin) then
      usage(fname, "stdin must be a string or an opsh.secret (the data to send)")
    end
    spec.input = opts.stdin
  end
  spec.stdin = opts.stdin_pipe and "pipe" or opts.stdin_inherit and "inherit" or "null"

  local handlers = {}
  local dflt = opts.detach and "null" or "capture"
  for _, s in ipairs({"stdout", "stderr"}) do
    local m = opts[s]
    if opts[s .. "_file"] ~= nil then
      if m ~= nil then usage(fname, string.format("give %s or %s_file, not both", s, s)) end
      m = "null"
    elseif m == nil then
      m = dflt
    elseif type(m) == "function" and not is_spawn then
      handlers[s] = m
      m = "pipe"
    elseif not (out_modes[m] and (is_spawn or m ~= "pipe")) and not (s == "stderr" and m == "stdout") then
      usage(fname, string.format("%s must be %s, not %s", s,
        is_spawn and "'capture', 'pipe', 'inherit' or 'null'" or "'capture', 'inherit', 'null' or a function(line)",
        type(m) == "string" and ("'" .. m .. "'") or type(m)))
    end
    if opts.detach and (m == "capture" or m == "pipe") then
      usage(fname, "a detached process outlives opsh: send its " .. s .. " to a " .. s .. "_file or 'null'")
    end
    spec[s] = m
  end
  spec.max_output = opts.max_output or M.DEFAULT_MAX_OUTPUT
  spec.kill_grace = opts.kill_grace or M.DEFAULT_KILL_GRACE
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    usage(fname, "timeout must be a positive number of seconds")
  end
  if opts.detach and (opts.stdin ~= nil or opts.stdin_pipe) then
    usage(fname, "a detached process cannot take stdin data or a stdin pipe")
  end
  if opts.read ~= nil and type(opts.read) ~= "boolean" then
    usage(fname, "read must be true (the command only reads: it runs in a dry-run too) or false")
  end
  return spec, handlers
end

-- the spec as the C part starts it: M._inherit added to env_add (records and audit lines show the
-- caller's own env_add)
local function started(spec)
  if spec.env ~= nil or next(M._inherit) == nil then return spec end
  local copy = {}
  for k, v in pairs(spec) do copy[k] = v end
  copy.env_add = {}
  for k, v in pairs(M._inherit) do copy.env_add[k] = v end
  for k, v in pairs(spec.env_add or {}) do copy.env_add[k] = v end
  return copy
end

-- The secrets a call carries (env and env_add values, stdin), scrubbed from its errors.
local function secrets_of(spec)
  return redact.collect({spec.env, spec.env_add, spec.input})
end

-- ---- dry-run: a spawn is recorded, not done, unless the call says read = true ----

local function names(env)
  if not env then return nil end
  local set, unset = {}, {}
  for k, v in pairs(env) do
    if v == false then unset[#unset + 1] = k else set[#set + 1] = k end
  end
  table.sort(set)
  table.sort(unset)
  return set, unset
end

local function shell_word(a)
  if a ~= "" and not a:find("[^%w%-_./:=@,+%%]") then return a end
  return "'" .. a:gsub("'", "'\\''") .. "'"
end

-- what a run or spawn is, as a dry-run record or an audit line: {kind, action, target, request, secrets}
local function described(spec, verb)
  local words = {}
  for i, a in ipairs(spec.argv) do words[i] = shell_word(a) end
  local request = {argv = {table.unpack(spec.argv)}, cwd = spec.cwd, stdin_file = spec.stdin_file,
    stdout_file = spec.stdout_file, stderr_file = spec.stderr_file, detach = spec.detach or nil}
  request.env, request.env_unset = names(spec.env)
  local add, unset = names(spec.env_add)
  request.env_add = add
  if unset and #unset > 0 then request.env_unset = unset end
  if spec.input ~= nil then
    request.stdin = core.is_secret(spec.input) and "<secret>" or string.format("<%d bytes>", #spec.input)
  end
  return {kind = "proc", action = verb .. " " .. table.concat(words, " "), target = spec.argv[1],
    request = request, secrets = secrets_of(spec)}
end

local function record(spec, verb) return dryrun.record(described(spec, verb)) end

-- a command that is not a read, sent: one audit line with how it ended
local function audited(spec, verb, result)
  local audit = require("opsh.audit")
  if not audit.recording() then return end
  local rec = described(spec, verb)
  rec.result = result
  audit.record(rec)
end

local function outcome_of(r)
  if r.signal then return "killed by " .. tostring(r.signal) end
  return "exit " .. tostring(r.code)
end

-- What run returns for a recorded command: a successful, empty outcome marked dry_run.
local function dry_result(spec, rec)
  return {code = 0, stdout = spec.stdout == "capture" and "" or nil,
    stderr = spec.stderr == "capture" and "" or nil, elapsed = 0, timed_out = false, truncated = false,
    dry_run = true, record = rec}
end

local function signame(sig)
  local n = sig and C.signame(sig)
  return n and ("SIG" .. n) or ("signal " .. tostring(sig))
end

-- Keeps the last lines of a stream for error messages.
local function tail_lines(text, n)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    lines[#lines + 1] = line
    if #lines > n then table.remove(lines, 1) end
  end
  return lines
end

local function last_line(lines)
  for i = #lines, 1, -1 do
    local l = lines[i]:gsub("%s+$", "")
    if l ~= "" then return #l > 200 and (l:sub(1, 200) .. "...") or l end
  end
end

-- The error for an outcome that check rejects, or nil.
local function outcome_error(r, argv0, opts, tail)
  local fields = {argv0 = argv0, exit_code = r.code, signal = r.signal, stderr = tail, elapsed = r.elapsed,
    pid = r.pid}
  local hint = tail and last_line(tail)
  hint = hint and (": " .. hint) or ""
  if r.timed_out then
    fields.timeout = opts.timeout
    return core.error("timeout", string.format("'%s' timed out after %g s and was stopped with %s%s", argv0,
      opts.timeout, signame(r.signal or 15), hint), fields)
  end
  if r.overflowed then
    local which = r.stdout_truncated and "stdout" or "stderr"
    fields.max_output = opts.max_output or M.DEFAULT_MAX_OUTPUT
    return core.error("proc", string.format("'%s' wrote more than %d bytes to %s (max_output) and was stopped",
      argv0, fields.max_output, which), fields)
  end
  if r.signal then
    return core.error("proc", string.format("'%s' was killed by %s%s", argv0, signame(r.signal), hint), fields)
  end
  if r.code ~= 0 then
    return core.error("proc", string.format("'%s' exited with code %d%s", argv0, r.code, hint), fields)
  end
end

local function finish(r, argv0, opts, stderr_tail)
  local tail = stderr_tail or (r.stderr and tail_lines(r.stderr, STDERR_TAIL_LINES))
  if tail and #tail == 0 then tail = nil end
  r.truncated = (r.stdout_truncated or r.stderr_truncated) and true or false
  if opts.check ~= false then
    local err = outcome_error(r, argv0, opts, tail)
    if err then error(err, 0) end
  end
  return r
end

-- Spawns the command, feeds its line handlers and waits for it.
local function execute(spec, handlers, opts)
  spec.overflow_kill = not opts.truncate
  local argv0 = spec.argv[1]
  local p <close> = C.spawn(started(spec))
  local stderr_tail
  if handlers.stdout or handlers.stderr then
    local feed, finish = {}, {}
    if handlers.stderr then
      stderr_tail = {}
      local fn = handlers.stderr
      feed.stderr, finish.stderr = lines.splitter(function(line)
        stderr_tail[#stderr_tail + 1] = line
        if #stderr_tail > STDERR_TAIL_LINES then table.remove(stderr_tail, 1) end
        fn(line)
      end)
    end
    if handlers.stdout then feed.stdout, finish.stdout = lines.splitter(handlers.stdout) end
    while true do
      local name, chunk = p:read()
      if not name then break end
      feed[name](chunk)
    end
    for _, f in pairs(finish) do f() end
  end
  return finish(p:_wait(), argv0, opts, stderr_tail)
end

--- run{argv=, ...} -> {code, signal, stdout, stderr, elapsed, timed_out, truncated, pid}
function M.run(opts)
  local spec, handlers = build(opts, "proc.run", run_opts, false)
  if dryrun.active() and not opts.read then return dry_result(spec, record(spec, "run")) end
  if opts.read then return redact.guard(secrets_of(spec), execute, spec, handlers, opts) end
  local ok, r = pcall(redact.guard, secrets_of(spec), execute, spec, handlers, opts)
  if ok then
    audited(spec, "run", outcome_of(r))
  elseif core.is_error(r) and r.pid then
    audited(spec, "run", "error: " .. r.message)   -- it ran, and failed (exit, signal, timeout)
  end
  if not ok then error(r, 0) end
  return r
end

--- shell(command, opts) -> run{argv={"/bin/sh", "-c", command}, ...}: only when a shell is wanted.
function M.shell(command, opts)
  if type(command) ~= "string" then
    check.fail("proc.shell", 1, "command string expected, got "
      .. (core.is_secret(command) and "an opsh.secret: secrets never go in a command line" or check.typename(command)))
  end
  local o = {}
  if opts ~= nil and type(opts) ~= "table" then check.table("proc.shell", 2, opts) end
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.argv ~= nil then check.fail("proc.shell", 2, "argv is set from the command") end
  o.argv = {"/bin/sh", "-c", command}
  return M.run(o)
end

local spawned = setmetatable({}, {__mode = "k"})   -- handle -> its timeout, max_output and secrets, for errors

-- A process handle in a dry-run: nothing runs; it reads as a child that exited at once with nothing.
local Dry = {}
local dry_mt = {__index = Dry, __name = "opsh.proc.dry_run", __close = function() end,
  __tostring = function(self) return string.format("process (dry run) '%s'", self._argv0) end}
function Dry.pid() return nil end
function Dry.running() return false end
function Dry:wait() return dry_result(self._spec, self.record) end
Dry.stop = Dry.wait
function Dry.read() return nil end
function Dry.lines() return function() return nil end end
function Dry.write() end
function Dry.close_stdin() end
function Dry.kill() return false end
function Dry.close() end

--- spawn{argv=, ...} -> process handle (see docs/proc.md)
function M.spawn(opts)
  local spec = build(opts, "proc.spawn", spawn_opts, true)
  if dryrun.active() and not opts.read then
    return setmetatable({dry_run = true, record = record(spec, "spawn"), _spec = spec, _argv0 = spec.argv[1]}, dry_mt)
  end
  local secrets = secrets_of(spec)
  local p = redact.guard(secrets, C.spawn, started(spec))
  spawned[p] = {timeout = spec.timeout, max_output = spec.max_output, secrets = secrets}
  if not opts.read then audited(spec, "spawn", "started pid " .. tostring(p:pid())) end
  return p
end

local methods = C.process_methods

--- process:wait([{check=true}]) -> outcome {code, signal, stdout, stderr, elapsed, timed_out, truncated}
function methods:wait(opts)
  local r = self:_wait()
  r.truncated = (r.stdout_truncated or r.stderr_truncated) and true or false
  if opts and opts.check then
    local info = spawned[self] or {}
    local err = outcome_error(r, self:_argv0(), info, r.stderr and tail_lines(r.stderr, STDERR_TAIL_LINES))
    if err then error(redact.error(err, info.secrets), 0) end
  end
  return r
end

--- process:lines([stream]) -> iterator over the lines of stdout (or "stderr"), for a "pipe" stream
function methods:lines(stream)
  stream = stream or "stdout"
  if not self:_pipe(stream) then
    error(core.error("usage", string.format("%s is not a pipe (spawn with %s='pipe' to read its lines)",
      stream, stream)), 2)
  end
  return lines.iterator(function()
    local name, chunk = self:read(stream)
    return name and chunk
  end)
end

--- process:stop([grace]) -> outcome: TERM, KILL after the grace (default kill_grace), then wait
function methods:stop(grace)
  self:_terminate(grace)
  return self:wait()
end

--- signal_pid(pid, [signal = "TERM"]) -> true | false, reason. For processes found by pid (a daemon
-- another opsh run started); signal 0 only asks whether the pid exists. Prefer handles where you have one.
local SIGNAL = {"integer", min = 1, what = "process id"}

function M.signal_pid(pid, signal)
  check.arg("proc.signal_pid", 1, pid, SIGNAL)
  if signal ~= nil and type(signal) ~= "string" and math.type(signal) ~= "integer" then
    check.fail("proc.signal_pid", 2, "signal name or number expected, got " .. check.typename(signal))
  end
  return C.signal_pid(pid, signal)
end

--- alive(pid) -> true while a process with that pid exists (zombies included)
function M.alive(pid)
  check.arg("proc.alive", 1, pid, SIGNAL)
  local ok, reason = C.signal_pid(pid, 0)
  return ok or reason == "Operation not permitted"
end

--- cmdline(pid) -> the argv list of a running process (Linux /proc), or nil when it is gone
function M.cmdline(pid)
  check.arg("proc.cmdline", 1, pid, SIGNAL)
  local f = io.open("/proc/" .. math.tointeger(pid) .. "/cmdline", "rb")
  if not f then return nil end
  local raw = f:read("a")
  f:close()
  local argv = {}
  for arg in raw:gmatch("([^%z]*)%z") do argv[#argv + 1] = arg end
  return argv
end

return M
