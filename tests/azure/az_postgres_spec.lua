-- Fidelity: az 2.45's `postgres flexible-server` commands against the ARM twin, with the real effects
-- checked on the twin's PostgreSQL through psql: the admin password is the role's password, stopping
-- replication (az 2.45's promote) promotes the twin replica and the old primary stops taking writes.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/az_helpers.lua")
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local twin = require("opsh.twin")

local RG, SERVER = "rg-legal-production", "psql-legal-production"

local function psql(env, sql, opts)
  opts = opts or {}
  return proc.run({argv = {"psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql}, check = false, timeout = 60,
    env = {PATH = os.getenv("PATH"), PGHOST = opts.host or env.PGHOST, PGPORT = opts.port or env.PGPORT,
      PGUSER = env.PGUSER, PGDATABASE = env.PGDATABASE, PGSSLMODE = "verify-full", PGSSLROOTCERT = env.PGSSLROOTCERT,
      PGPASSWORD = opts.password or env.PGPASSWORD}})
end

describe("az postgres flexible-server against the ARM twin", function()
  if not H.have_az() then pending("az is not installed (make deps)"); return end
  local dir, env
  local G = {"--resource-group", RG, "--name", SERVER}
  local function az(...)
    local args = {...}
    return H.az(env, table.unpack(args))
  end
  local function with_g(...)
    local args = {"postgres", "flexible-server", ...}
    for _, a in ipairs(G) do args[#args + 1] = a end
    return args
  end

  setup(function() dir, env = H.up({"azurite", "registry"}) end)
  teardown(function() H.down(dir) end)

  it("lists and shows the servers with the runbook's queries", function()
    local list = az("postgres", "flexible-server", "list", "--query", "[].{n:name,s:state,r:replicationRole}", "-o", "json")
    table.sort(list, function(a, b) return a.n < b.n end)
    assert.are.same({{n = SERVER, s = "Ready", r = "Primary"}, {n = SERVER .. "-replica", s = "Ready", r = "AsyncReplica"}}, list)
    assert.are.same({}, az("postgres", "flexible-server", "list", "--query", "[?state=='Disabled'].name", "-o", "json"))
    local row = az(table.unpack(with_g("show", "--query", "{State:state, Storage:storage.storageSizeGb}", "-o", "json")))
    assert.are.same({State = "Ready", Storage = 128}, row)
  end)

  it("changes the SKU and grows the storage; a decrease is refused", function()
    local s = az(table.unpack(with_g("update", "--sku-name", "Standard_D8ds_v5", "--tier", "GeneralPurpose", "-o", "json")))
    assert.are.same({name = "Standard_D8ds_v5", tier = "GeneralPurpose"}, s.sku)
    s = az(table.unpack(with_g("update", "--storage-size", "256", "-o", "json")))
    assert.are.equal(256, s.storage.storageSizeGb)
    assert.are.equal(256, H.arm(dir, H.rid(RG, "Microsoft.DBforPostgreSQL/flexibleServers", SERVER)).properties.storage.storageSizeGB)
    assert.matches("smaller", H.az_fail(env, table.unpack(with_g("update", "--storage-size", "64"))))
  end)

  it("sets the admin password (read from a file, never on argv) as the role's password on the twin server", function()
    local file = dir .. "/new-password"
    fs.write(file, "Tw1n-Rotated-Passw0rd", {mode = tonumber("600", 8)})
    az(table.unpack(with_g("update", "--admin-password", "@" .. file, "-o", "none")))
    assert.are.equal("1", (psql(env, "SELECT 1", {password = "Tw1n-Rotated-Passw0rd"}).stdout:gsub("%s", "")))
    assert.are_not.equal(0, psql(env, "SELECT 1").code)   -- the old password no longer works
    -- the twin's secrets give the new one (opsh.connections' "twin" provider)
    assert.are.equal("Tw1n-Rotated-Passw0rd", twin.client(dir):get("components", "postgres").password)
    env.PGPASSWORD = "Tw1n-Rotated-Passw0rd"
  end)

  it("shows and sets a parameter: max_connections applied to the twin server at its restart, as Azure does", function()
    assert.are.equal("859", tostring(az("postgres", "flexible-server", "parameter", "show", "-g", RG, "--server-name", SERVER,
      "--name", "max_connections", "--query", "value", "-o", "tsv")))
    local before = psql(env, "SHOW max_connections").stdout:gsub("%s", "")
    local want = tostring(tonumber(before) + 37)
    local p = az("postgres", "flexible-server", "parameter", "set", "-g", RG, "--server-name", SERVER,
      "--name", "max_connections", "--value", want, "-o", "json")
    assert.are.same({want, "user-override", true}, {p.value, p.source, p.isConfigPendingRestart})
    -- a postmaster parameter: written (ALTER SYSTEM), pending until the server restarts
    assert.are.equal(before, (psql(env, "SHOW max_connections").stdout:gsub("%s", "")))
    assert.are.equal("t", (psql(env, "SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'").stdout:gsub("%s", "")))
    az(table.unpack(with_g("restart", "-o", "none")))
    assert.are.equal(want, (psql(env, "SHOW max_connections").stdout:gsub("%s", "")))
    -- the streaming replica follows (a hot standby with fewer connections than its primary stops replaying)
    local rep = twin.client(dir):get("components", "replica")
    assert.are.equal(0, psql(env, "CREATE TABLE after_restart (x int)").code)
    assert.is_truthy(H.eventually(function()
      return psql(env, "SELECT to_regclass('after_restart') IS NOT NULL", {host = rep.host, port = rep.port}).stdout:match("t")
    end))
    assert.is_false(az("postgres", "flexible-server", "parameter", "show", "-g", RG, "--server-name", SERVER,
      "--name", "max_connections", "-o", "json").isConfigPendingRestart)
    -- a dynamic one takes effect at once
    p = az("postgres", "flexible-server", "parameter", "set", "-g", RG, "--server-name", SERVER,
      "--name", "work_mem", "--value", "8192", "-o", "json")
    assert.is_false(p.isConfigPendingRestart)
    assert.are.equal("8MB", (psql(env, "SHOW work_mem").stdout:gsub("%s", "")))
    assert.matches("allowed values", H.az_fail(env, "postgres", "flexible-server", "parameter", "set", "-g", RG,
      "--server-name", SERVER, "--name", "max_connections", "--value", "1"))
  end)

  it("lists backups; a point-in-time restore is a new server with the data of that time, a geo-restore the latest", function()
    local backups = az(table.unpack(with_g("backup", "list", "-o", "json")))
    assert.are.equal(3, #backups)
    assert.are.equal(0, psql(env, "CREATE TABLE pitr (n int); INSERT INTO pitr SELECT generate_series(1, 3)").code)
    require("opsh").sleep(0.3)
    local t = psql(env, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')")
    local point = t.stdout:gsub("%s", "")
    require("opsh").sleep(0.3)
    assert.are.equal(0, psql(env, "INSERT INTO pitr SELECT generate_series(4, 10)").code)
    local restored = az("postgres", "flexible-server", "restore", "-g", RG, "--name", SERVER .. "-restored",
      "--source-server", SERVER, "--restore-time", point, "-o", "json")
    assert.are.same({SERVER .. "-restored", "Ready"}, {restored.name, restored.state})
    -- the ARM object leads to a real server: checked through its own connection
    local stored = H.arm(dir, H.rid(RG, "Microsoft.DBforPostgreSQL/flexibleServers", SERVER .. "-restored"))
    local at = {host = stored.properties.fullyQualifiedDomainName, port = tostring(stored.properties.twin.port)}
    assert.are_not.equal(env.PGPORT, at.port)
    assert.are.equal("3|3", (psql(env, "SELECT count(*), max(n) FROM pitr", at).stdout:gsub("%s", "")))
    assert.are.equal("f", (psql(env, "SELECT pg_is_in_recovery()", at).stdout:gsub("%s", "")))
    assert.are.equal(0, psql(env, "INSERT INTO pitr VALUES (100)", at).code)   -- promoted: read-write
    at.password = "not-the-password"
    assert.are_not.equal(0, psql(env, "SELECT 1", at).code)
    assert.are.equal("10", (psql(env, "SELECT count(*) FROM pitr").stdout:gsub("%s", "")))   -- the source untouched

    local source = H.rid(RG, "Microsoft.DBforPostgreSQL/flexibleServers", SERVER)
    local geo = az("postgres", "flexible-server", "geo-restore", "-g", RG, "--name", SERVER .. "-geo",
      "--source-server", source, "--location", "northeurope", "-o", "json")
    assert.are.same({"Ready", "northeurope"}, {geo.state, geo.location})
    stored = H.arm(dir, H.rid(RG, "Microsoft.DBforPostgreSQL/flexibleServers", SERVER .. "-geo"))
    assert.are.equal("GeoRestore", stored.properties.restoredFrom.createMode)
    local geo_at = {host = stored.properties.fullyQualifiedDomainName, port = tostring(stored.properties.twin.port)}
    assert.are.equal("10|10", (psql(env, "SELECT count(*), max(n) FROM pitr", geo_at).stdout:gsub("%s", "")))

    -- before the base backup: the backup itself (no table yet), the nearest the twin can do
    local early = az("postgres", "flexible-server", "restore", "-g", RG, "--name", SERVER .. "-early",
      "--source-server", SERVER, "--restore-time", os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 3600), "-o", "json")
    assert.are.equal("Ready", early.state)
    stored = H.arm(dir, H.rid(RG, "Microsoft.DBforPostgreSQL/flexibleServers", SERVER .. "-early"))
    local early_at = {host = stored.properties.fullyQualifiedDomainName, port = tostring(stored.properties.twin.port)}
    assert.are.equal("0", (psql(env, "SELECT count(*) FROM pg_class WHERE relname = 'pitr'", early_at).stdout:gsub("%s", "")))

    -- deleting a restored server stops it; `twin down` stops the others (twin_spec: nothing left running)
    az("postgres", "flexible-server", "delete", "-g", RG, "--name", SERVER .. "-early", "--yes")
    assert.are_not.equal(0, psql(env, "SELECT 1", early_at).code)
    assert.is_nil(twin.client(dir):get("components", "restore:" .. SERVER .. "-early"))
  end)

  it("lists the replica and promotes it (stop-replication): pg_promote on the twin replica, old primary read-only", function()
    local replicas = az(table.unpack(with_g("replica", "list", "--query", "[].name", "-o", "json")))
    assert.are.same({SERVER .. "-replica"}, replicas)
    local st = twin.client(dir):get("components", "replica")
    assert.are.equal("t", (psql(env, "SELECT pg_is_in_recovery()", {host = st.host, port = st.port}).stdout:gsub("%s", "")))
    local s = az("postgres", "flexible-server", "replica", "stop-replication", "-g", RG .. "-secondary",
      "--name", SERVER .. "-replica", "--yes", "-o", "json")
    assert.are.equal("None", s.replicationRole)
    assert.are.equal("f", (psql(env, "SELECT pg_is_in_recovery()", {host = st.host, port = st.port}).stdout:gsub("%s", "")))
    local write = psql(env, "CREATE TABLE after_failover (x int)")
    assert.are_not.equal(0, write.code)
    assert.matches("read%-only", write.stderr)
    assert.are.equal("replica", twin.client(dir):get("platform", "primary"))
    assert.matches("not a replica", H.az_fail(env, "postgres", "flexible-server", "replica", "stop-replication",
      "-g", RG .. "-secondary", "--name", SERVER .. "-replica", "--yes"))
  end)
end)
