-- opsh twin against the real servers it starts: PostgreSQL primary + replica, Redis (TLS),
-- Azurite, docker-registry and the API process; driven through the library and the real CLI,
-- psql and redis-cli.
local opsh = require("opsh")
local fs = require("opsh.fs")
local json = require("opsh.json")
local net = require("opsh.net")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local alive = S.alive

local function opsh_cli(args, env)
  local argv = {runtime.exe()}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return proc.run({argv = argv, env_add = env, check = false, timeout = 120})
end

local function exports(dir)
  local env = {}
  for _, kv in ipairs(twin.shell_exports(dir)) do env[kv[1]] = kv[2] end
  return env
end

describe("opsh twin", function()
  local dir, st

  setup(function()
    dir = fs.tmpdir("opsh-twin-spec-")
    st = twin.up({dir = dir})
  end)

  teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("starts every component healthy, each on its own loopback port", function()
    local rows, healthy = twin.status(dir)
    local names = {}
    for _, r in ipairs(rows) do names[#names + 1] = r.component .. "=" .. r.state end
    assert.is_true(healthy, table.concat(names, " "))
    assert.are.equal(7, #rows)
    local ports = {}
    for name, rec in pairs(st.components) do
      if rec.port then
        assert.is_nil(ports[rec.port], name .. " shares a port")
        ports[rec.port] = name
        assert.is_true((net.port_open("127.0.0.1", rec.port)))
      end
    end
    assert.are.equal("postgres", st.platform.primary)
  end)

  it("keeps its state, with the credentials, in the API process's store, which only its owner reads", function()
    assert.are.equal(tonumber("700", 8), fs.stat(dir .. "/store").mode & tonumber("777", 8))
    for _, f in ipairs({"store/snapshot.json", "store/log.jsonl", "api/token", "ca/ca.key"}) do
      assert.are.equal(tonumber("600", 8), fs.stat(dir .. "/" .. f).mode & tonumber("777", 8), f)
    end
    local saved = twin.read_state(dir)
    assert.are.equal(st.components.redis.port, saved.components.redis.port)
    assert.are.equal(st.components.redis.password, saved.components.redis.password)
    assert.is_false(fs.exists(dir .. "/state.json"))
  end)

  it("is idempotent: a second up leaves the running twin as it is", function()
    local again, what = twin.up({dir = dir})
    assert.are.equal("running", what)
    assert.are.equal(st.components.postgres.pid, again.components.postgres.pid)
  end)

  it("serves legaldb over TLS to the real psql with verify-full, and refuses another CA", function()
    local env = exports(dir)
    assert.are.equal("verify-full", env.PGSSLMODE)
    local r = proc.run({argv = {"psql", "-Atc", "SELECT count(*) FROM documents"}, env_add = env})
    assert.are.equal("2000", r.stdout:match("%S+"))
    local other = require("opsh.crypto").x509.create_ca({cn = "someone else"})
    local ca = dir .. "/other-ca.pem"
    fs.write(ca, other.cert_pem)
    env.PGSSLROOTCERT = ca
    local bad = proc.run({argv = {"psql", "-Atc", "SELECT 1"}, env_add = env, check = false})
    assert.are_not.equal(0, bad.code)
    assert.matches("certificate verify failed", bad.stderr)
  end)

  it("runs a streaming replica that is read-only and follows the primary", function()
    local pg = require("opsh.pg")
    local p, r = st.components.postgres, st.components.replica
    local function connect(rec)
      return pg.connect({host = rec.host, port = rec.port, user = rec.user, dbname = rec.dbname,
        password = opsh.secret(rec.password), sslmode = "verify-full", sslrootcert = st.components.ca.ca})
    end
    local primary <close> = connect(p)
    local replica <close> = connect(r)
    assert.is_true(replica:query("SELECT pg_is_in_recovery() AS r")[1].r)
    primary:query("INSERT INTO audit_events (actor, action) VALUES ($1, $2)", "spec", "replicated?")
    local seen = S.poll(function()
      return replica:query("SELECT count(*)::int AS n FROM audit_events WHERE actor = 'spec'")[1].n
    end, function(n) return n == 1 end)
    assert.are.equal(1, seen)
    local ok, err = opsh.try(replica.query, replica, "INSERT INTO audit_events (actor, action) VALUES ('x', 'y')")
    assert.is_false(ok)
    assert.are.equal("25006", err.sqlstate)   -- read_only_sql_transaction
  end)

  it("serves Redis over TLS only, with its password, to opsh.redis and the real redis-cli", function()
    local redis = require("opsh.redis")
    local rec = st.components.redis
    local r <close> = redis.connect({host = rec.host, port = rec.port, tls = true, ca = st.components.ca.ca,
      password = opsh.secret(rec.password)})
    assert.are.equal("PONG", r:ping())
    local ok, err = opsh.try(redis.connect, {host = rec.host, port = rec.port, tls = true,
      ca = st.components.ca.ca, password = opsh.secret("wrong")})
    assert.is_false(ok)
    assert.are.equal("auth", err.kind)
    local env = exports(dir)
    local cli = proc.run({argv = {"redis-cli", "--tls", "--cacert", env.OPSH_TWIN_CA, "-p", tostring(rec.port),
      "ping"}, env_add = {REDISCLI_AUTH = env.REDISCLI_AUTH}})
    assert.are.equal("PONG", cli.stdout:match("%S+"))
  end)

  it("seeds the registry with repositories of more than ten tags each", function()
    local http = require("opsh.http")
    local base = "https://" .. st.components.registry.login_server
    local ca = st.components.ca.ca
    local catalog = http.get(base .. "/v2/_catalog", {ca = ca}):json().repositories
    local want = {}
    for i, r in ipairs(require("opsh.twin.seed").repositories) do want[i] = r end
    table.sort(want)
    table.sort(catalog)
    assert.are.same(want, catalog)
    local tags = http.get(base .. "/v2/legal-platform/web/tags/list", {ca = ca}):json().tags
    assert.are.equal(12, #tags)
  end)

  it("serves Blob Storage (Azurite) over TLS, refusing unsigned requests", function()
    local http = require("opsh.http")
    local res = http.get(st.components.azurite.endpoint .. "?comp=list", {ca = st.components.ca.ca,
      raise_for_status = false})
    assert.are.equal(403, res.status)
    assert.matches("AccountKey=", exports(dir).AZURE_STORAGE_CONNECTION_STRING)
  end)

  it("runs the API process, which redacts credentials from its state view", function()
    local http = require("opsh.http")
    local api = st.components.api
    assert.are.equal("ok", http.get(api.url .. "/healthz", {ca = st.components.ca.ca}).body)
    local view = http.get(api.url .. "/twin/v1/state", {ca = st.components.ca.ca})
    assert.is_nil(view.body:find(st.components.postgres.password, 1, true))
    assert.is_nil(view.body:find(st.components.redis.password, 1, true))
    assert.are.equal(st.components.redis.port, view:json().components.redis.port)
  end)

  it("is the `twin` environment for --env twin, and prints shell exports for the real tools", function()
    local r = opsh_cli({"--env", "twin", "-o", "json", "env", "show"}, {OPSH_TWIN_DIR = dir})
    assert.are.equal(0, r.code, r.stderr)
    local env = json.decode(r.stdout)
    assert.are.equal(st.components.postgres.port, env.postgres.port)
    assert.are.equal("verify-full", env.postgres.sslmode)
    assert.are.equal("<redacted>", env.twin.postgres_password)
    local sh = opsh_cli({"twin", "env", "--shell", "--dir", dir})
    assert.are.equal(0, sh.code)
    for _, name in ipairs({"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT",
      "REDISCLI_AUTH", "OPSH_REDIS_URL", "OPSH_TWIN_CA", "AZURE_STORAGE_CONNECTION_STRING", "OPSH_TWIN_DIR",
      "OPSH_PG_REPLICA_HOST", "OPSH_PG_REPLICA_PORT"}) do
      assert.matches("export " .. name .. "='", sh.stdout)
    end
    local through_shell = proc.run({argv = {"bash", "-c", 'eval "$(' .. runtime.exe() .. ' twin env --shell --dir '
      .. dir .. ')" && psql -Atc "SELECT current_database()" && psql -h "$OPSH_PG_REPLICA_HOST" '
      .. '-p "$OPSH_PG_REPLICA_PORT" -Atc "SELECT pg_is_in_recovery()"'}})
    assert.are.same({"legaldb", "t"}, {through_shell.stdout:match("^(%S+)\n(%S+)")})
  end)

  it("resets to the seeded state, also from a shell that exported the twin's variables", function()
    local env = exports(dir)
    proc.run({argv = {"psql", "-c", "DELETE FROM documents WHERE id > 10"}, env_add = env})
    local old_pid = st.components.postgres.pid
    -- PGSSLROOTCERT (in the root-only CA folder) must not reach pg_basebackup, which runs as postgres
    local r = proc.run({argv = {"bash", "-c", 'eval "$(' .. runtime.exe() .. ' twin env --shell --dir ' .. dir
      .. ')" && exec ' .. runtime.exe() .. ' twin reset --dir ' .. dir}, check = false, timeout = 120})
    assert.are.equal(0, r.code, r.stderr)
    st = twin.read_state(dir)
    assert.are_not.equal(old_pid, st.components.postgres.pid)
    assert.is_false(alive(old_pid))
    local n = proc.run({argv = {"psql", "-Atc", "SELECT count(*) FROM documents"}, env_add = exports(dir)})
    assert.are.equal("2000", n.stdout:match("%S+"))
  end)

  it("goes down leaving no process, no port and no data behind", function()
    local pids, ports = {}, {}
    for _, rec in pairs(st.components) do
      if rec.pid then pids[#pids + 1] = rec.pid end
      if rec.port then ports[#ports + 1] = rec.port end
    end
    assert.is_true(twin.down({dir = dir}))
    for _, pid in ipairs(pids) do assert.is_false(alive(pid), "pid " .. pid .. " still running") end
    for _, port in ipairs(ports) do assert.is_false((net.port_open("127.0.0.1", port))) end
    for _, sub in ipairs({"postgres", "replica", "redis", "azurite", "registry", "api"}) do
      assert.is_false(fs.exists(dir .. "/" .. sub), sub .. " left behind")
    end
    -- as root the servers' directories live in /var/tmp/opsh-twin-<hash>: that goes too
    for _, path in ipairs({st.components.postgres.dir, st.components.replica.dir,
      fs.dirname(st.components.postgres.dir)}) do
      if path ~= dir then assert.is_false(fs.exists(path), path .. " left behind") end
    end
    assert.is_false(twin.down({dir = dir}))
    local r = opsh_cli({"twin", "status", "--dir", dir})
    assert.are.equal(3, r.code)
    local e = opsh_cli({"--env", "twin", "env", "show"}, {OPSH_TWIN_DIR = dir})
    assert.are.equal(1, e.code)
    assert.matches("the twin is not running in " .. dir:gsub("%p", "%%%0"), e.stderr)
  end)
end)

describe("opsh twin failures", function()
  it("cleans up everything it started when a component fails to start", function()
    local dir = fs.tmpdir("opsh-twin-fail-")
    local bin = dir .. "/bin"
    fs.mkdir(bin)
    fs.write(bin .. "/docker-registry", "#!/bin/sh\nsleep 0.5\necho 'registry: bad config' >&2\nexit 1\n",
      {mode = tonumber("755", 8)})
    local r = opsh_cli({"twin", "up", "--dir", dir .. "/twin"}, {PATH = bin .. ":" .. os.getenv("PATH")})
    assert.are.equal(1, r.code)
    assert.matches("registry: docker%-registry exited before it listened on %d+: registry: bad config", r.stderr)
    local left = fs.list(dir .. "/twin")
    assert.are.same({".lock", "ca", "store"}, left)
    local store = require("opsh.twin.store").load_files(dir .. "/twin/store")
    assert.is_nil(store.components)   -- nothing recorded as running
    fs.rmtree(dir)
  end)

  it("gives usage errors for unknown twin commands and arguments", function()
    local r = opsh_cli({"twin", "upp"})
    assert.are.equal(2, r.code)
    assert.matches("unknown twin command 'upp'", r.stderr)
    r = opsh_cli({"twin", "up", "--bogus"})
    assert.are.equal(2, r.code)
  end)
end)

describe("opsh twin API plug-ins", function()
  it("mounts an API twin module named in OPSH_TWIN_APIS, which can change the shared state", function()
    local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$")
    local root = fs.absolute(here) .. "/fixtures"
    local dir = fs.tmpdir("opsh-twin-plug-")
    local env = {OPSH_PATH = root, OPSH_TWIN_APIS = "twinplug", OPSH_TWIN_DIR = dir}
    local up = opsh_cli({"twin", "up"}, env)
    local _ <close> = setmetatable({}, {__close = function()
      opsh_cli({"twin", "down"}, env)
      fs.rmtree(dir)
    end})
    assert.are.equal(0, up.code, up.stderr)
    -- echo shares the main listener; bundled API twins with a listener of their own are listed with theirs
    assert.matches("https://127.0.0.1:%d+ %(.-echo", up.stdout)
    local st = twin.read_state(dir)
    local http = require("opsh.http")
    local ca = st.components.ca.ca
    assert.are.same({word = "hi", client = "anonymous"}, http.get(st.components.api.url .. "/echo/hi", {ca = ca}):json())
    local res = http.post(st.components.api.url .. "/echo/primary/replica", {ca = ca}):json()
    assert.are.equal("replica", res.primary)
    assert.are.equal("replica", twin.read_state(dir).platform.primary)
    local shell = opsh_cli({"twin", "env", "--shell"}, env)
    assert.matches("export ECHO_TWIN='yes'", shell.stdout)
    local e = json.decode(opsh_cli({"--env", "twin", "-o", "json", "env", "show"}, env).stdout)
    assert.are.equal("https://127.0.0.1:1/echo", e.endpoints.arm)
  end)
end)
