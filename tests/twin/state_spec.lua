-- The twin's state served by `opsh twin serve`, reached from other processes through its API; partial
-- twins (--without); API twins on listeners of their own. Twins here run only what each test needs.
local opsh = require("opsh")
local fs = require("opsh.fs")
local http = require("opsh.http")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")

local here = fs.absolute(debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$"))
local FIXTURES = here .. "/fixtures"
local ONLY_API = "postgres,redis,azurite,registry"

local function opsh_cli(args, env, opts)
  local argv = {runtime.exe()}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return proc.run({argv = argv, env_add = env, check = false, timeout = 120, stdin = opts and opts.stdin})
end

-- a twin in a new directory, taken down and removed when the variable goes out of scope
local function new_twin(env, without)
  local dir = fs.tmpdir("opsh-twin-state-") .. "/twin"
  env = env or {}
  local up = opsh_cli({"twin", "up", "--dir", dir, "--without", without or ONLY_API}, env)
  local guard = setmetatable({dir = dir, up = up}, {__close = function()
    opsh_cli({"twin", "down", "--dir", dir}, env)
    fs.rmtree(fs.dirname(dir))
  end})
  return guard
end

describe("the twin's state API", function()
  it("loses none of 100 concurrent mutations from several processes, and a watcher sees each in order", function()
    local t <close> = new_twin()
    assert.are.equal(0, t.up.code, t.up.stderr)
    local client = twin.client(t.dir)
    local _, start = client:read()
    local events = {}
    local watcher = opsh.spawn(function()
      client:watch({collection = "counter", from = start}, function(ev)
        events[#events + 1] = ev
        if ev.object.n == 100 then return false end
      end)
    end)
    -- 4 processes x 25 read-modify-writes of one object, plus one object each
    local code = [[
      local twin = require("opsh.twin")
      local dir, w = ...
      for i = 1, 25 do
        twin.update_state(dir, function(s) s.counter.total = {n = ((s.counter.total or {}).n or 0) + 1} end)
        twin.client(dir):put("mine", w .. "-" .. i, {by = w})
      end
    ]]
    local workers = {}
    for w = 1, 4 do
      workers[w] = proc.spawn({argv = {runtime.exe(), "-e", code, t.dir, tostring(w)}})
    end
    for w = 1, 4 do
      local r = workers[w]:wait()
      assert.are.equal(0, r.code, r.stderr)
    end
    assert.are.equal(100, (client:get("counter", "total")).n)
    assert.are.equal(100, #(client:list("mine")))
    watcher:wait(30)
    assert.are.equal(100, #events)
    for i, ev in ipairs(events) do
      assert.are.equal(i, ev.object.n)
      if i > 1 then assert.is_true(ev.version > events[i - 1].version) end
      assert.are.equal(i == 1 and "ADDED" or "MODIFIED", ev.type)
    end
  end)

  it("lets one lifecycle command run at a time: three concurrent ups start one twin", function()
    local dir = fs.tmpdir("opsh-twin-state-") .. "/twin"
    local _ <close> = setmetatable({}, {__close = function()
      opsh_cli({"twin", "down", "--dir", dir})
      fs.rmtree(fs.dirname(dir))
    end})
    local ps = {}
    for i = 1, 3 do
      ps[i] = proc.spawn({argv = {runtime.exe(), "twin", "up", "--dir", dir, "--without", ONLY_API}})
    end
    local started, running = 0, 0
    for i = 1, 3 do
      local r = ps[i]:wait()
      assert.are.equal(0, r.code, r.stderr)
      if r.stdout:find("twin started", 1, true) then started = started + 1 end
      if r.stdout:find("twin already running", 1, true) then running = running + 1 end
    end
    assert.are.same({1, 2}, {started, running})
    local ep = json.decode(fs.read(dir .. "/api/endpoint.json"))
    assert.are.equal(ep.pid, twin.read_state(dir).components.api.pid)
  end)

  it("answers only the owner's token, kept in a file only the owner reads", function()
    local t <close> = new_twin()
    local ep = json.decode(fs.read(t.dir .. "/api/endpoint.json"))
    assert.are.equal(tonumber("600", 8), fs.stat(t.dir .. "/api/token").mode & tonumber("777", 8))
    assert.are.equal(tonumber("700", 8), fs.stat(t.dir .. "/store").mode & tonumber("777", 8))
    local ca = t.dir .. "/ca/ca.pem"
    local res = http.get(ep.url .. "/_twin/state", {ca = ca, raise_for_status = false})
    assert.are.equal(401, res.status)
    res = http.get(ep.url .. "/_twin/state", {ca = ca, raise_for_status = false,
      headers = {Authorization = "Bearer not-the-token"}})
    assert.are.equal(401, res.status)
    assert.are.equal(200, http.get(ep.url .. "/healthz", {ca = ca}).status)
  end)

  it("streams events from a version, and says 410 once the history no longer has it", function()
    local t <close> = new_twin({OPSH_TWIN_STORE_HISTORY = "20"})
    local client = twin.client(t.dir)
    local _, v0 = client:read()
    for i = 1, 30 do client:put("nodes", "n" .. (i % 3), {gen = i}) end
    local seen = {}
    client:watch({from = v0 + 25}, function(ev)
      seen[#seen + 1] = ev.version
      if #seen == 5 then return false end
    end)
    assert.are.same({v0 + 26, v0 + 27, v0 + 28, v0 + 29, v0 + 30}, seen)
    local ok, err = opsh.try(client.watch, client, {from = v0 + 1}, function() end)
    assert.is_false(ok)
    assert.are.equal(410, err.code)
    assert.matches("too old resource version", err.message)
    -- the raw protocol: JSON lines over a chunked response
    local lines = {}
    http.get(client.url .. "/_twin/state/nodes", {ca = client.ca, headers = {Authorization = client.auth},
      query = {watch = "1", from = v0 + 29}, on_line = function(line)
        lines[#lines + 1] = json.decode(line)
        return false
      end})
    assert.are.same({type = "MODIFIED", version = v0 + 30, collection = "nodes", key = "n0", object = {gen = 30}},
      lines[1])
  end)

  it("keeps the state across down and up, and reset clears it", function()
    local t <close> = new_twin()
    local client = twin.client(t.dir)
    local v = client:put("clusters", "aks-legal-twin", {nodes = 3})
    assert.are.equal(0, opsh_cli({"twin", "down", "--dir", t.dir}).code)
    assert.is_false(fs.exists(t.dir .. "/api"))
    local status = opsh_cli({"twin", "status", "--dir", t.dir})
    assert.are.equal(3, status.code)
    assert.are.equal(0, opsh_cli({"twin", "up", "--dir", t.dir, "--without", ONLY_API}).code)
    client = twin.client(t.dir)
    local obj, version = client:get("clusters", "aks-legal-twin")
    assert.are.same({nodes = 3}, obj)
    assert.are.equal(v, version)
    assert.is_true(client:put("clusters", "x", 1) > v)   -- versions go on increasing
    local r = opsh_cli({"twin", "reset", "--dir", t.dir, "--without", ONLY_API})
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(twin.client(t.dir):get("clusters", "aks-legal-twin"))
  end)

  it("survives its API process being killed: status tells, down cleans up, up brings the state back", function()
    local t <close> = new_twin(nil, "postgres,azurite,registry")
    local client = twin.client(t.dir)
    local v = client:put("clusters", "aks", {nodes = 2})
    local st = twin.read_state(t.dir)
    proc.signal_pid(st.components.api.pid, "KILL")
    require("opsh.net").wait_closed("127.0.0.1", st.components.api.port)
    local status = opsh_cli({"-o", "json", "twin", "status", "--dir", t.dir})
    assert.are.equal(3, status.code)
    local rows = {}
    for _, row in ipairs(json.decode(status.stdout)) do rows[row.component] = row.state end
    assert.are.same({"stopped", "running"}, {rows.api, rows.redis})
    assert.are.equal(0, opsh_cli({"twin", "down", "--dir", t.dir}).code)
    assert.is_false(require("opsh.net").port_open("127.0.0.1", st.components.redis.port))
    local up = opsh_cli({"twin", "up", "--dir", t.dir, "--without", ONLY_API})
    assert.are.equal(0, up.code, up.stderr)
    local obj, version = twin.client(t.dir):get("clusters", "aks")
    assert.are.same({{nodes = 2}, v}, {obj, version})
    assert.is_true(twin.read_state(t.dir).components.redis.absent)   -- the old run's record is gone
  end)

  it("starts a partial twin with --without, and status says what is absent", function()
    local t <close> = new_twin(nil, "postgres,azurite,registry")
    assert.are.equal(0, t.up.code, t.up.stderr)
    local st = twin.read_state(t.dir)
    assert.is_true(st.components.azurite.absent)
    assert.is_true(st.components.replica.absent)   -- it needs postgres
    assert.is_number(st.components.redis.port)
    local r = opsh_cli({"-o", "json", "twin", "status", "--dir", t.dir})
    assert.are.equal(0, r.code, r.stderr)
    local states = {}
    for _, row in ipairs(json.decode(r.stdout)) do states[row.component] = row.state .. " " .. (row.detail or "") end
    assert.matches("^absent left out %(%-%-without azurite%)", states.azurite)
    assert.matches("^absent left out %(needs postgres%)", states.replica)
    assert.matches("^running", states.redis)
    -- the same plan again is a no-op; leaving out the CA or the API process is refused
    assert.matches("already running", opsh_cli({"twin", "up", "--dir", t.dir, "--without", "postgres,azurite,registry"}).stdout)
    local bad = opsh_cli({"twin", "up", "--dir", t.dir, "--without", "api"})
    assert.are.equal(2, bad.code)
    assert.matches("'api' cannot be left out", bad.stderr)
    bad = opsh_cli({"twin", "up", "--dir", t.dir, "--without", "mysql"})
    assert.are.equal(2, bad.code)
    assert.matches("no component 'mysql'", bad.stderr)
  end)

  it("finds Azurite where `make deps` put it whatever HOME is", function()
    local home = fs.tmpdir("opsh-other-home-")
    local t <close> = new_twin({HOME = home, XDG_CACHE_HOME = false}, "postgres,redis,registry")
    fs.rmtree(home)
    assert.are.equal(0, t.up.code, t.up.stderr)
    local st = twin.read_state(t.dir)
    local res = http.get(st.components.azurite.endpoint .. "?comp=list", {ca = t.dir .. "/ca/ca.pem",
      raise_for_status = false})
    assert.are.equal(403, res.status)   -- Azurite answered (and wants a signature)
  end)
end)

describe("API twins and their listeners", function()
  it("gives each API twin that asks its own port, so two can answer the same path", function()
    local env = {OPSH_PATH = FIXTURES, OPSH_TWIN_APIS = "twinplug,twinapp,twinlog"}
    local t <close> = new_twin(env)
    assert.are.equal(0, t.up.code, t.up.stderr)
    local st = twin.read_state(t.dir)
    local api = st.components.api
    local ca = t.dir .. "/ca/ca.pem"
    local app, la = api.listeners.appinsights, api.listeners.loganalytics
    assert.are_not.equal(app, la)
    assert.are_not.equal(api.url, app)
    assert.are.same({service = "appinsights"}, http.get(app .. "/v1/query", {ca = ca}):json())
    assert.are.same({service = "loganalytics"}, http.get(la .. "/v1/query", {ca = ca}):json())
    -- neither catch-all nor path leaks to another listener
    assert.are.equal(404, http.get(api.url .. "/v1/query", {ca = ca, raise_for_status = false}).status)
    assert.are.equal(404, http.get(app .. "/elsewhere", {ca = ca, raise_for_status = false}).status)
    assert.are.equal("/elsewhere", http.get(la .. "/elsewhere", {ca = ca, raise_for_status = false}):json().missing)
    -- the shared listener's API twin changes the state through update_state; an in-process subscriber sees it
    local res = http.post(api.url .. "/echo/primary/replica", {ca = ca}):json()
    assert.are.equal("replica", res.primary)
    assert.are.equal("replica", twin.read_state(t.dir).platform.primary)
    local v = twin.client(t.dir):put("probe", "p1", {})
    twin.client(t.dir):delete("probe", "p1")
    local seen = http.get(la .. "/seen", {ca = ca}):json().events
    assert.are.same({v .. ":ADDED:p1", (v + 1) .. ":DELETED:p1"}, seen)
    -- their endpoints reach `twin env` and the shell exports
    local shell = opsh_cli({"twin", "env", "--shell", "--dir", t.dir}, env)
    assert.matches("export APPINSIGHTS_ENDPOINT='" .. app:gsub("%p", "%%%0") .. "'", shell.stdout)
    local e = json.decode(opsh_cli({"--env", "twin", "-o", "json", "env", "show"},
      {OPSH_PATH = FIXTURES, OPSH_TWIN_APIS = env.OPSH_TWIN_APIS, OPSH_TWIN_DIR = t.dir}).stdout)
    assert.are.equal(app, e.endpoints.query)
  end)

  it("refuses a route two API twins claim on one listener, naming both", function()
    local env = {OPSH_PATH = FIXTURES, OPSH_TWIN_APIS = "twinplug,twindup"}
    local t <close> = new_twin(env)
    assert.are.equal(1, t.up.code)
    assert.matches("API twin 'dup': GET /echo/{what} clashes with API twin 'echo' on the same listener", t.up.stderr)
    assert.is_false(fs.exists(t.dir .. "/api"))
  end)
end)
