-- opsh.twin: the local twin of the platform. Real PostgreSQL (primary + streaming replica), Redis
-- with TLS, Azurite, an OCI registry, and one opsh process serving the API twins, each on a free
-- loopback port, detached. The state (which components run, their credentials, the platform facts)
-- is the store the API process owns (opsh.twin.store), reached through opsh.twin.state.
local core = require("opsh._core")
local fs = require("opsh.fs")
local log = require("opsh.log")
local proctab = require("opsh.twin.proctab")
local state = require("opsh.twin.state")

local M = {}

local function fail(message, fields) error(core.error("twin", message, fields), 0) end
local function usage(message) error(core.error("usage", message), 0) end

-- ---- components as data ----

local components_cache

--- components() -> the component modules in start order. Every module under opsh.twin.component (bundled,
-- or in an OPSH_PATH root's lua/opsh/twin/component/) is one, or a list of them: adding a component is
-- adding a file. Each has name, phase (components of one phase start in parallel, after the phase
-- before), start(tw) -> record, check(tw, record) -> ok, detail; optionally program, stop_signal,
-- required (cannot be left out), needs (names), seed, environment, shell, pidfile, data_dirs.
function M.components()
  if components_cache then return components_cache end
  local runtime = require("opsh.runtime")
  local files, seen = {}, {}
  local function add(n) if not seen[n] then seen[n] = true; files[#files + 1] = n end end
  for _, n in ipairs(runtime.embedded("opsh.twin.component.")) do add(n) end
  for _, root in ipairs(runtime.roots()) do
    for _, p in ipairs(fs.glob(root .. "/lua/opsh/twin/component/*.lua")) do add(fs.basename(p):gsub("%.lua$", "")) end
  end
  table.sort(files)
  local list, by_name = {}, {}
  for _, f in ipairs(files) do
    local mod = require("opsh.twin.component." .. f)
    local mods = mod.name and {mod} or mod
    for _, c in ipairs(mods) do
      if type(c.name) ~= "string" or type(c.start) ~= "function" or type(c.check) ~= "function"
        or math.type(c.phase) ~= "integer" then
        fail(string.format("twin component module '%s' must give name, phase, start and check", f))
      end
      if by_name[c.name] then fail("two twin components are named '" .. c.name .. "'") end
      by_name[c.name] = c
      list[#list + 1] = c
    end
  end
  table.sort(list, function(a, b)
    if a.phase ~= b.phase then return a.phase < b.phase end
    return a.name < b.name
  end)
  components_cache = list
  return list
end

--- component(name) -> the module, or nil
function M.component(name)
  for _, c in ipairs(M.components()) do if c.name == name then return c end end
end

--- names() -> component names in start order
function M.names()
  local out = {}
  for i, c in ipairs(M.components()) do out[i] = c.name end
  return out
end

--- plan(without) -> {name -> why it is left out}. `without`: a list or a comma-separated string of names.
-- A component whose `needs` are left out is left out too.
function M.plan(without)
  if type(without) == "string" then
    local list = {}
    for n in without:gmatch("[^,%s]+") do list[#list + 1] = n end
    without = list
  end
  local absent = {}
  for _, n in ipairs(without or {}) do
    local c = M.component(n)
    if not c then
      usage(string.format("twin: no component '%s' (the components are %s)", n, table.concat(M.names(), ", ")))
    end
    if c.required then
      usage(string.format("twin: '%s' cannot be left out (the CA and the API process, which holds the twin's "
        .. "state, always run)", n))
    end
    absent[n] = "left out (--without " .. n .. ")"
  end
  for _, c in ipairs(M.components()) do
    for _, need in ipairs(c.needs or {}) do
      if absent[need] and not absent[c.name] then absent[c.name] = "left out (needs " .. need .. ")" end
    end
  end
  return absent
end

local function phases(absent)
  local list, current = {}, nil
  for _, c in ipairs(M.components()) do
    if not absent[c.name] then
      if not current or current.phase ~= c.phase then
        current = {phase = c.phase}
        list[#list + 1] = current
      end
      current[#current + 1] = c.name
    end
  end
  return list
end

local function tail(logfile)
  local text = fs.read(logfile, {missing_ok = true}) or ""
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return table.concat(lines, " | ", math.max(1, #lines - 2))
end

--- wait_until(p, log, what, ready, [timeout = 30]): until ready() is true; if the spawned process `p`
-- exits first, raise with the end of its log instead of waiting out the timeout.
function M.wait_until(p, logfile, what, ready, timeout)
  local deadline = core.hrtime() + (timeout or 30)
  while core.hrtime() < deadline do
    if ready() then return true end
    if not p:running() then
      fail(string.format("%s exited before %s: %s", p:_argv0() or "the process", what, tail(logfile)),
        {log = logfile})
    end
    core.sleep(0.05)
  end
  fail(string.format("no %s within %g s (see %s)", what, timeout or 30, logfile))
end

--- wait_ready(p, port, log, [timeout = 30]): until the spawned process `p` accepts connections on port.
function M.wait_ready(p, port, logfile, timeout)
  local net = require("opsh.net")
  return M.wait_until(p, logfile, "it listened on " .. port, function() return net.port_open("127.0.0.1", port) end,
    timeout)
end

--- The object components get: dir, state (collections: components, platform, ...), ca paths, the client
-- of the API process once it runs, read_state(), update_state(fn), endpoint(api twin name).
function M.handle(dir, st, client)
  local tw = {dir = dir, state = st, ca = st.components.ca, client = client}
  -- a component calls track() as soon as it has a pid, so a failed or cancelled start is cleaned up
  function tw.track(name, pid, program)
    st.components[name] = {pid = pid, program = program, starting = true}
    if tw.client then tw.client:put("components", name, st.components[name]) end
  end
  function tw.read_state() return state.connect(dir):read() end
  function tw.update_state(fn) return state.connect(dir):update(fn) end
  function tw.endpoint(name)
    local api = tw.state.components.api
    return api and (api.listeners and api.listeners[name] or api.url)
  end
  return tw
end

-- ---- reading the state ----

-- the state from the API process, or from the store's files when it does not answer; nil if neither
local function current(dir)
  local cl = state.client(dir)
  if cl then
    local ok, st = pcall(cl.read, cl)
    if ok then return st, cl end
  end
  return state.offline(dir), nil
end

local function running_state(dir)
  local cl = state.client(dir)
  local ok, st = false, nil
  if cl then ok, st = pcall(cl.read, cl) end
  if not ok or not st.components.api then
    fail(string.format("the twin is not running in %s: start it with `opsh twin up`%s", dir,
      os.getenv("OPSH_TWIN_DIR") and "" or " (or set OPSH_TWIN_DIR)"))
  end
  return st, cl
end

--- status(dir) -> records {component, pid, state, detail}, and whether all are healthy (running, or left
-- out on purpose). state: running, unhealthy, stopped, missing (not started), absent (left out).
function M.status(dir, st, cl)
  dir = state.dir(dir)
  if not st then st, cl = current(dir) end
  if not st or next(st.components) == nil then return {}, false end
  local tw = M.handle(dir, st, cl)
  local rows = require("opsh").parallel(M.components(), function(c)
    local rec = st.components[c.name]
    if not rec then return {component = c.name, state = "missing", detail = "not started"} end
    if rec.absent then return {component = c.name, state = "absent", detail = rec.detail} end
    if rec.pid and not proctab.running(rec.pid) then
      return {component = c.name, pid = rec.pid, state = "stopped", detail = "process " .. rec.pid .. " is gone"}
    end
    if c.name ~= "ca" and not rec.port then
      return {component = c.name, pid = rec.pid, state = "unhealthy", detail = "its start did not finish"}
    end
    local ok, detail = c.check(tw, rec)
    return {component = c.name, pid = rec.pid, state = ok and "running" or "unhealthy", detail = detail}
  end)
  local healthy = true
  for _, r in ipairs(rows) do healthy = healthy and (r.state == "running" or r.state == "absent") end
  return rows, healthy
end

-- ---- stopping ----

-- the pid a daemon wrote in its pid file, for a component whose start did not get to record it
local function pid_from_file(dir, c)
  local path = c.pidfile and c.pidfile(dir)
  local text = path and fs.read(path, {missing_ok = true})
  local pid = text and tonumber(text:match("^%s*(%d+)"))
  return pid and {pid = pid, program = c.program, stop_signal = c.stop_signal}
end

-- the `components` collection emptied in the store's files; only once no serving process runs
local function forget_components(dir)
  local path = state.store_path(dir)
  if not fs.exists(path) then return end
  local store = require("opsh.twin.store").open(path)
  local ops = {}
  for _, item in ipairs((store:list("components"))) do
    ops[#ops + 1] = {op = "delete", collection = "components", key = item.key}
  end
  if #ops > 0 then store:txn(ops) end
  store:close()
end

-- Stop every component (each on its own: one failure does not keep the others running; the API process,
-- which other components may still report to, after them), remove their data and forget them in the
-- store. Raises afterwards with what could not be done.
local function stop_all(dir, st)
  local problems = {}
  local comps = M.components()
  local order = {}
  for pass = 1, 2 do
    for i = #comps, 1, -1 do
      if (comps[i].required ~= nil) == (pass == 2) then order[#order + 1] = comps[i] end
    end
  end
  -- processes an API twin started (restored PostgreSQL servers), recorded under names of no component
  for name, rec in pairs(st and st.components or {}) do
    if not M.component(name) and type(rec) == "table" and rec.pid and rec.program then
      local ok, err = pcall(proctab.stop, name, {pid = rec.pid, program = rec.program, stop_signal = rec.stop_signal})
      if not ok then problems[#problems + 1] = name .. ": " .. tostring(err) end
    end
  end
  local owner   -- the API process: the store may be written here only once it is gone
  for _, c in ipairs(order) do
    local rec = st and st.components[c.name]
    if not (rec and rec.pid) then rec = pid_from_file(dir, c) or rec end
    if rec and rec.pid then
      rec = {pid = rec.pid, port = rec.port, program = rec.program or c.program,
        stop_signal = rec.stop_signal or c.stop_signal}
      if c.name == "api" then owner = rec end
      local ok, err = pcall(function()
        proctab.stop(c.name, rec)
        if rec.port then require("opsh.net").wait_closed("127.0.0.1", rec.port, {timeout = 10}) end
      end)
      if not ok then problems[#problems + 1] = c.name .. ": " .. tostring(err) end
    end
  end
  for _, c in ipairs(comps) do
    local dirs = c.data_dirs and c.data_dirs(dir) or {}
    if c.name ~= "ca" then dirs[#dirs + 1] = dir .. "/" .. c.name end
    for _, d in ipairs(dirs) do
      if fs.exists(d) then
        local ok, err = pcall(fs.rmtree, d)
        if not ok then problems[#problems + 1] = tostring(err) end
      end
    end
  end
  if not (owner and proctab.running(owner.pid) and proctab.is_ours(owner)) then
    local ok, err = pcall(forget_components, dir)
    if not ok then problems[#problems + 1] = "store: " .. tostring(err) end
  end
  for _, legacy in ipairs({dir .. "/state.json", dir .. "/lock"}) do   -- left by an older opsh
    if fs.exists(legacy) then pcall(fs.rmtree, legacy) end
  end
  if #problems > 0 then fail("stopping the twin left problems: " .. table.concat(problems, "; ")) end
end

-- ---- starting ----

local function same_plan(st, absent)
  for _, c in ipairs(M.components()) do
    local rec = st.components[c.name]
    if (rec and rec.absent or false) ~= (absent[c.name] ~= nil) then return false end
  end
  return true
end

local function start_locked(dir, absent)
  local st = state.view({})
  local tw = M.handle(dir, st, nil)
  local function record(name, rec)
    st.components[name] = rec
    if name == "ca" then tw.ca = rec end
    if tw.client then tw.client:put("components", name, rec) end
  end
  local ok, err = pcall(function()
    for _, phase in ipairs(phases(absent)) do
      -- every start in the phase runs to its end, failed or not, before the next step: cancelling a
      -- launcher half-way (initdb under runuser...) would leave work going on behind the cleanup
      local tasks = {}
      for i, name in ipairs(phase) do
        tasks[i] = core.spawn(function() record(name, M.component(name).start(tw)) end)
      end
      local first
      for i, t in ipairs(tasks) do
        local tok, terr = pcall(t.wait, t)
        if not tok and not first then
          first = core.is_error(terr) and terr or core.error("twin", tostring(terr))
          first.message = phase[i] .. ": " .. first.message
        end
      end
      if first then error(first, 0) end
      if not tw.client and state.client(dir) then
        -- the API process runs: from now on the store holds the state; it gets what came before
        tw.client = state.connect(dir)
        local ops = {}
        for name, rec in pairs(st.components) do
          ops[#ops + 1] = {op = "put", collection = "components", key = name, object = rec}
        end
        for name, why in pairs(absent) do
          st.components[name] = {absent = true, detail = why}
          ops[#ops + 1] = {op = "put", collection = "components", key = name, object = st.components[name]}
        end
        tw.client:txn(ops)
      end
    end
    for _, c in ipairs(M.components()) do
      if c.seed and not absent[c.name] then c.seed(tw, st.components[c.name]) end
    end
    tw.client:update(function(s)
      s.platform.primary = not absent.postgres and "postgres" or nil
      s.platform.started = os.date("!%Y-%m-%dT%H:%M:%SZ")
    end)
  end)
  if not ok then
    local cleaned, cleanup_err = pcall(stop_all, dir, st)
    if not cleaned then log.error(tostring(cleanup_err)) end
    if core.is_error(err) then error(err, 0) end
    fail("the twin did not start: " .. tostring(err))
  end
  return (tw.client:read())
end

local function up_locked(dir, absent)
  local st, cl = current(dir)
  if st and next(st.components) ~= nil then
    if cl then
      local _, healthy = M.status(dir, st, cl)
      if healthy and same_plan(st, absent) then return st, "running" end
      log.warn("the twin in " .. dir .. (healthy and " runs other components" or " is partly running")
        .. ": restarting it from the seed")
    end
    stop_all(dir, st)
  end
  return start_locked(dir, absent), "started"
end

--- up{dir=, without=} -> state, what ("started" | "running"). Idempotent: a healthy twin with the same
-- components is left as it is; a partly running one is restarted from the seed. A failed start stops what
-- it started. The store (the API twins' objects) is kept from the last run.
-- the twin's own work (servers started, seeded, stopped) is not a change of the platform: no audit line
local quietly = require("opsh.audit").quietly_all

function M.up(opts)
  opts = opts or {}
  local dir = state.dir(opts.dir)
  local absent = M.plan(opts.without)
  local _ <close> = state.lock(dir)
  return quietly(up_locked, dir, absent)
end

local function down_locked(dir)
  local st = current(dir)
  local running = st and next(st.components) ~= nil
  local leftovers = fs.exists(state.endpoint_path(dir)) or fs.exists(dir .. "/state.json")
  if not running and not leftovers then return false end
  stop_all(dir, st)
  return running
end

--- down{dir=} -> true if something was stopped. Stops only the processes the twin started (by pid,
-- checking each is still that program), waits for their ports to close, removes their data. Keeps the
-- CA and the store.
function M.down(opts)
  opts = opts or {}
  local dir = state.dir(opts.dir)
  local _ <close> = state.lock(dir)
  return quietly(down_locked, dir)
end

--- reset{dir=, without=} -> state: back to the seeded state, with a new CA and an empty store.
function M.reset(opts)
  opts = opts or {}
  local dir = state.dir(opts.dir)
  local absent = M.plan(opts.without)
  local _ <close> = state.lock(dir)
  return (quietly(function()
    down_locked(dir)
    for _, d in ipairs({dir .. "/ca", state.store_path(dir)}) do
      if fs.exists(d) then fs.rmtree(d) end
    end
    return up_locked(dir, absent)
  end))
end

--- left_out([dir]) -> the names of the components the running twin was started without (sorted)
function M.left_out(dir)
  local st = running_state(state.dir(dir))
  local names = {}
  for name, rec in pairs(st.components) do if rec.absent then names[#names + 1] = name end end
  table.sort(names)
  return names
end

-- ---- what the tools get ----

-- the failover target as the bundled `secondary` environment names it: the secondary region's resource
-- group, cluster and server (the twin's streaming replica, with its own host and port); Redis, Key Vault,
-- App Insights, ACR and Blob stay the production region's, as they are not replicated
local function secondary_of(env, platform)
  local prod, sec = platform.region("production"), platform.region("secondary")
  for _, section in ipairs({"redis", "appinsights", "storage"}) do
    if type(env[section]) == "table" then env[section].resource_group = env[section].resource_group or prod.resource_group end
  end
  env.name, env.description = "twin-secondary", env.description .. ": the secondary region (failover target)"
  env.resource_group, env.location = sec.resource_group, sec.location
  env.aks.cluster, env.aks.context = sec.aks.cluster, env.aks.kubeconfig and sec.aks.cluster or nil
  local p = env.postgres
  p.server, p.host, p.port = sec.postgres.server, p.replica_host, p.replica_port
  p.replica, p.replica_host, p.replica_port = nil, nil, nil
  env.secondary, env.dns = nil, nil
  return env
end

--- environment([dir [, region]]) -> the `twin` environment (for --env twin), built from the state;
-- region "secondary": `twin-secondary`, the failover target of `twin` (for --env twin-secondary).
function M.environment(dir, region)
  if region ~= nil and region ~= "production" and region ~= "secondary" then
    error(core.error("usage", "twin.environment: region must be production or secondary, not " .. tostring(region)), 0)
  end
  dir = state.dir(dir)
  local st, cl = running_state(dir)
  local tw = M.handle(dir, st, cl)
  local platform = require("opsh.twin.platform")
  local prod = platform.region("production")
  -- the runbook's names (opsh.twin.platform): a rehearsal sends the requests production would get
  local env = {
    name = "twin", description = "The local twin in " .. dir,
    subscription = platform.subscription, tenant = platform.tenant,
    resource_group = prod.resource_group, location = prod.location, namespace = platform.namespace,
    deployments = {table.unpack(platform.deployments)},
    aks = {cluster = prod.aks.cluster, node_pool = "usernodepool"},
    keyvault = {name = prod.keyvault},
    appinsights = {app = prod.appinsights},
    acr = {name = prod.acr},
    -- the platform's names, even when the servers are left out (--without postgres): an environment has them
    postgres = {server = prod.postgres.server, replica = platform.region("secondary").postgres.server,
      database = prod.postgres.database, admin_user = prod.postgres.admin_user,
      password_secret = "database-password"},
    -- named secrets come from the twin's own state (opsh.connections' "twin" provider)
    secrets = {provider = "twin"},
    twin = {dir = dir, secrets = {}},
    secondary = "twin-secondary",
    dns = {zone = prod.dns.zone, record = prod.dns.record},
  }
  for _, c in ipairs(M.components()) do
    local rec = st.components[c.name]
    if rec and not rec.absent and c.environment then c.environment(tw, rec, env) end
  end
  if region == "secondary" then return secondary_of(env, platform) end
  return env
end

--- shell_exports([dir]) -> ordered list of {name, value} for `eval "$(opsh twin env --shell)"`.
function M.shell_exports(dir)
  dir = state.dir(dir)
  local st, cl = running_state(dir)
  local tw = M.handle(dir, st, cl)
  local out = {OPSH_TWIN_DIR = dir}
  for _, c in ipairs(M.components()) do
    local rec = st.components[c.name]
    if rec and not rec.absent and c.shell then c.shell(tw, rec, out) end
  end
  local list = {}
  for k, v in pairs(out) do list[#list + 1] = {k, v} end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

--- read_state([dir]) -> the state {collection -> {key -> object}}, version; update_state([dir,] fn) ->
-- fn's results. For other processes: through the API process.
function M.read_state(dir) return state.connect(state.dir(dir)):read() end

function M.update_state(dir, fn)
  if fn == nil then dir, fn = nil, dir end
  return state.connect(state.dir(dir)):update(fn)
end

--- client([dir]) -> the store's client (get, put, patch, delete, list, txn, watch) in another process.
function M.client(dir) return state.connect(state.dir(dir)) end

--- serve{dir=, port=}: the API process (run detached by `up`).
function M.serve(opts)
  quietly(require("opsh.twin.serve").serve, {dir = state.dir(opts.dir), port = opts.port})
end

return M
