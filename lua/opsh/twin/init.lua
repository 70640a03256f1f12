-- opsh.twin: the local twin of the platform. Real PostgreSQL (primary + streaming replica), Redis
-- with TLS, Azurite, an OCI registry, and one opsh process serving the API twins, each on a free
-- loopback port, detached, with their state in one file (opsh.twin.state).
local core = require("opsh._core")
local fs = require("opsh.fs")
local log = require("opsh.log")
local proc = require("opsh.proc")
local state = require("opsh.twin.state")

local M = {}

local pg_components = require("opsh.twin.component.postgres")

-- Components by name, and the order they start in: each phase starts in parallel, after the previous.
M.components = {
  ca = require("opsh.twin.component.ca"),
  postgres = pg_components.primary,
  replica = pg_components.replica,
  redis = require("opsh.twin.component.redis"),
  azurite = require("opsh.twin.component.azurite"),
  registry = require("opsh.twin.component.registry"),
  api = require("opsh.twin.component.api"),
}
M.phases = {{"ca"}, {"postgres", "redis", "azurite", "registry"}, {"replica", "api"}, {"seed"}}
M.order = {"ca", "postgres", "redis", "azurite", "registry", "replica", "api"}

local function fail(message, fields) error(core.error("twin", message, fields), 0) end

--- wait_ready(p, port, log, [timeout = 30]): until the spawned process `p` accepts connections on port;
-- if it exits first, raise with the end of its log instead of waiting out the timeout.
function M.wait_ready(p, port, logfile, timeout)
  local net = require("opsh.net")
  local deadline = core.hrtime() + (timeout or 30)
  while core.hrtime() < deadline do
    if net.port_open("127.0.0.1", port) then return true end
    if not p:running() then
      local text = fs.read(logfile, {missing_ok = true}) or ""
      local tail = {}
      for line in text:gmatch("[^\n]+") do tail[#tail + 1] = line end
      fail(string.format("%s exited before it listened on %d: %s", p:_argv0() or "the process", port,
        table.concat(tail, " | ", math.max(1, #tail - 2))), {log = logfile})
    end
    core.sleep(0.05)
  end
  fail(string.format("nothing listened on 127.0.0.1:%d within %g s (see %s)", port, timeout or 30, logfile))
end

--- The object components and API twins get: dir, state, ca paths, and state access.
function M.handle(dir, st)
  return {
    dir = dir, state = st, ca = st.components.ca,
    -- a component calls track() as soon as it has a pid, so a failed or cancelled start is cleaned up
    track = function(name, pid, program)
      st.components[name] = {pid = pid, program = program, starting = true}
      state.save(dir, st)
    end,
    read_state = function() return state.load(dir) end,
    update_state = function(fn) return state.update(dir, fn) end,
  }
end

-- a process's state letter from /proc (R, S, Z...), nil when it is gone
local function proc_state(pid)
  local f = io.open("/proc/" .. math.tointeger(pid) .. "/stat", "r")
  if not f then return nil end
  local line = f:read("l") or ""
  f:close()
  return line:match("^%d+ %b() (%a)")
end

local function running(pid)
  local s = pid and proc_state(pid)
  return s ~= nil and s ~= "Z"
end

-- is pid still the program we started (and not a later process that reuses the number)?
local function is_ours(rec)
  local argv = proc.cmdline(rec.pid)
  if not argv or not argv[1] then return false end
  local first = argv[1]:match("^(%S+)") or ""
  local base = first:match("([^/]+)$") or first
  return base:sub(1, #rec.program) == rec.program
end

--- Stop a component's process by its recorded pid: its stop signal (TERM by default), then KILL.
function M.stop_process(name, rec)
  if not rec.pid or not running(rec.pid) then return "not running" end
  if not is_ours(rec) then
    log.warn(string.format("twin %s: pid %d is no longer %s; leaving it alone", name, rec.pid, rec.program))
    return "pid reused"
  end
  proc.signal_pid(rec.pid, rec.stop_signal or "TERM")
  local deadline = core.hrtime() + 15
  while running(rec.pid) and core.hrtime() < deadline do core.sleep(0.05) end
  if running(rec.pid) then
    proc.signal_pid(rec.pid, "KILL")
    while running(rec.pid) do core.sleep(0.05) end
    return "killed"
  end
  return "stopped"
end

-- the pid a daemon wrote in its pid file, for a component whose start did not get to record it
local function pid_from_file(dir, name)
  local c = M.components[name]
  local path = c.pidfile and c.pidfile(dir)
  local text = path and fs.read(path, {missing_ok = true})
  local pid = text and tonumber(text:match("^%s*(%d+)"))
  return pid and {pid = pid, program = c.program, stop_signal = c.stop_signal}
end

-- Stop every component (each on its own: one failure does not keep the others running), then remove
-- their data. Raises afterwards with what could not be done.
local function stop_all(dir, st)
  local problems = {}
  for i = #M.order, 1, -1 do
    local name = M.order[i]
    local rec = st.components[name]
    if not (rec and rec.pid) then rec = pid_from_file(dir, name) or rec end
    if rec then
      local ok, err = pcall(function()
        M.stop_process(name, rec)
        if rec.port then require("opsh.net").wait_closed("127.0.0.1", rec.port, {timeout = 10}) end
      end)
      if not ok then problems[#problems + 1] = name .. ": " .. tostring(err) end
    end
  end
  for _, name in ipairs(M.order) do
    local c = M.components[name]
    local dirs = c.data_dirs and c.data_dirs(dir) or {}
    if name ~= "ca" then dirs[#dirs + 1] = dir .. "/" .. name end
    for _, d in ipairs(dirs) do
      if fs.exists(d) then
        local ok, err = pcall(fs.rmtree, d)
        if not ok then problems[#problems + 1] = tostring(err) end
      end
    end
  end
  state.remove(dir)
  if #problems > 0 then fail("stopping the twin left problems: " .. table.concat(problems, "; ")) end
end

--- status(dir) -> records {component, pid, state, detail}, and whether all are healthy.
function M.status(dir)
  dir = state.dir(dir)
  local st = state.load(dir)
  if not st then return {}, false end
  local tw = M.handle(dir, st)
  local rows = require("opsh").parallel(M.order, function(name)
    local rec = st.components[name]
    if not rec then return {component = name, state = "missing", detail = "not started"} end
    if rec.pid and not running(rec.pid) then
      return {component = name, pid = rec.pid, state = "stopped", detail = "process " .. rec.pid .. " is gone"}
    end
    local ok, detail = M.components[name].check(tw, rec)
    return {component = name, pid = rec.pid, state = ok and "running" or "unhealthy", detail = detail}
  end)
  local healthy = true
  for _, r in ipairs(rows) do healthy = healthy and r.state == "running" end
  return rows, healthy
end

local function seed_all(tw)
  for _, name in ipairs(M.order) do
    local c = M.components[name]
    if c.seed then c.seed(tw, tw.state.components[name]) end
  end
end

--- up{dir=} -> state, what ("started" | "running"). Idempotent: a healthy twin is left as it is; a
-- partly running one is restarted from the seed. A failed start stops what it started.
function M.up(opts)
  opts = opts or {}
  local dir = state.dir(opts.dir)
  local _ <close> = state.lock(dir)
  local st = state.load(dir)
  if st then
    local _, healthy = M.status(dir)
    if healthy then return st, "running" end
    log.warn("the twin in " .. dir .. " is partly running: restarting it from the seed")
    stop_all(dir, st)
  end
  st = state.new(dir)
  st.platform = {primary = "postgres", started = os.date("!%Y-%m-%dT%H:%M:%SZ")}
  local tw = M.handle(dir, st)
  local ok, err = pcall(function()
    for _, phase in ipairs(M.phases) do
      if phase[1] == "seed" then
        seed_all(tw)
      else
        -- every start in the phase runs to its end, failed or not, before the next step: cancelling a
        -- launcher half-way (initdb under runuser...) would leave work going on behind the cleanup
        local tasks = {}
        for i, name in ipairs(phase) do
          tasks[i] = core.spawn(function()
            local rec = M.components[name].start(tw)
            st.components[name] = rec
            if name == "ca" then tw.ca = rec end
            state.save(dir, st)
          end)
        end
        local first
        for i, t in ipairs(tasks) do
          local ok, err = pcall(t.wait, t)
          if not ok and not first then
            first = core.is_error(err) and err or core.error("twin", tostring(err))
            first.message = phase[i] .. ": " .. first.message
          end
        end
        if first then error(first, 0) end
      end
    end
  end)
  if not ok then
    local cleaned, cleanup_err = pcall(stop_all, dir, st)
    if not cleaned then log.error(tostring(cleanup_err)) end
    if core.is_error(err) then error(err, 0) end
    fail("the twin did not start: " .. tostring(err))
  end
  state.save(dir, st)
  return st, "started"
end

--- down{dir=} -> true if something was stopped. Stops only the processes the twin started (by pid,
-- checking each is still that program), waits for their ports to close, removes their data.
function M.down(opts)
  opts = opts or {}
  local dir = state.dir(opts.dir)
  local _ <close> = state.lock(dir)
  local st = state.load(dir)
  if not st then return false end
  stop_all(dir, st)
  return true
end

--- reset{dir=}: back to the seeded state, with a new CA.
function M.reset(opts)
  opts = opts or {}
  local dir = state.dir(opts.dir)
  M.down({dir = dir})
  if fs.exists(dir .. "/ca") then fs.rmtree(dir .. "/ca") end
  return M.up({dir = dir})
end

local function require_state(dir)
  local st = state.load(dir)
  if not st then
    fail(string.format("the twin is not running in %s: start it with `opsh twin up`%s", dir,
      os.getenv("OPSH_TWIN_DIR") and "" or " (or set OPSH_TWIN_DIR)"))
  end
  return st
end

--- environment([dir]) -> the `twin` environment (for --env twin), built from the state.
function M.environment(dir)
  dir = state.dir(dir)
  local st = require_state(dir)
  local tw = M.handle(dir, st)
  local env = {
    name = "twin", description = "The local twin in " .. dir,
    resource_group = "rg-legal-twin", location = "local", namespace = "production",
    deployments = {"web", "gateway", "document-service", "ai-service", "task-service",
      "integration-service", "notification-service"},
    aks = {cluster = "aks-legal-twin", node_pool = "usernodepool"},
    keyvault = {name = "kv-legal-twin"},
    appinsights = {app = "legal-platform-twin"},
    twin = {dir = dir},
  }
  for _, name in ipairs(M.order) do
    local c, rec = M.components[name], st.components[name]
    if rec and c.environment then c.environment(tw, rec, env) end
  end
  return env
end

--- shell_exports([dir]) -> ordered list of {name, value} for `eval "$(opsh twin env --shell)"`.
function M.shell_exports(dir)
  dir = state.dir(dir)
  local st = require_state(dir)
  local tw = M.handle(dir, st)
  local out = {OPSH_TWIN_DIR = dir}
  for _, name in ipairs(M.order) do
    local c, rec = M.components[name], st.components[name]
    if rec and c.shell then c.shell(tw, rec, out) end
  end
  local list = {}
  for k, v in pairs(out) do list[#list + 1] = {k, v} end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

--- serve{dir=, port=}: the API process (run detached by `up`).
function M.serve(opts)
  local dir = state.dir(opts.dir)
  local st = require_state(dir)
  M.components.api.serve(M.handle(dir, st), opts.port)
end

return M
