-- dr-failover and dr-drill on the twin (real PostgreSQL primary and streaming replica, the ARM, Key Vault
-- and Kubernetes twins, the twin Redis for the lease). Each result is checked through another path than
-- the procedure's: new opsh.pg connections to both servers, Key Vault and the DNS record read by this
-- process, the secondary cluster's deployments compared with the primary cluster's.
local pg = require("opsh.pg")
local fs = require("opsh.fs")
local json = require("opsh.json")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
local k8s = require("opsh.k8s")
local connections = require("opsh.connections")
local dr = require("opsh.ops.dr")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local failover = P.script("dr-failover")
local drill = P.script("dr-drill")

describe("dr-failover and dr-drill on the twin", function()
  local dir, env, sec

  local function run(...) return P.exec(dir, ...) end

  local function load_envs()
    azure.reset()
    env = twin.environment(dir)
    sec = twin.environment(dir, "secondary")
  end

  local function connect(e)
    local p = e.postgres
    return pg.connect{host = p.host, port = p.port, user = p.admin_user, dbname = p.database,
      password = connections.secret(env, "database-password"), sslmode = "verify-full", sslrootcert = p.sslrootcert}
  end

  -- true when the environment's server is a read-only replica (in recovery)
  local function in_recovery(e)
    local c <close> = connect(e)
    return c:query("SELECT pg_is_in_recovery() AS r")[1].r
  end

  -- true when a write on the environment's server commits
  local function takes_write(e)
    return (pcall(function()
      local c <close> = connect(e)
      c:exec("CREATE TABLE IF NOT EXISTS dr_spec (n int)")
      c:query("INSERT INTO dr_spec VALUES (1)")
    end))
  end

  local function dns_ips() return azure.dns.addresses(azure.dns.a_record{env = env}) end
  local function db_url() return dr.url_host((azure.keyvault(env):get("database-url"))) end

  local function kube(e)
    return k8s.client{kubeconfig = e.aks.kubeconfig, context = e.aks.context, namespace = e.namespace,
      cache_dir = dir .. "/cache"}
  end

  local function replicas(e)
    local out = {}
    for d in kube(e):iter("deployments") do out[d.metadata.name] = d.spec.replicas end
    return out
  end

  local function gateway_ip(e) return kube(e):get("services", "gateway").status.loadBalancer.ingress[1].ip end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops3-dr-")
    twin.up({dir = dir, without = {"azurite", "registry"}})
    load_envs()
  end)

  lazy_teardown(function()
    azure.reset()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("refuses bad targets with one line and exit 2, before anything", function()
    local r = run("--env", "twin", "run", failover, "--to", "twin", "--yes")
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("names the environment being failed over itself", r.stderr)
    r = run("--env", "twin", "run", failover, "--to", "twin-secondry", "--yes")
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("did you mean 'twin%-secondary'", r.stderr)
    r = run("--env", "production", "run", drill, "--yes")
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("rehearses on the twin only", r.stderr)
    assert.is_nil(r.stderr:find("traceback", 1, true))
    assert.is_true(in_recovery(sec))
  end)

  it("plans in a dry run (exit 4) and changes nothing", function()
    local before_dns, before_url, before_replicas = dns_ips(), db_url(), replicas(sec)
    local r = run("--env", "twin", "--dry-run", "run", failover)
    assert.are.equal(4, r.code, r.stderr)
    assert.matches("PATCH .*flexibleServers/psql%-legal%-production%-replica", r.stdout)
    assert.matches("PUT .*dnsZones/legal%-platform%.com/A/@", r.stdout)
    assert.is_true(in_recovery(sec))
    assert.are.same(before_dns, dns_ips())
    assert.are.equal(before_url, db_url())
    assert.are.same(before_replicas, replicas(sec))
  end)

  it("refuses to promote a replica further behind than --max-lag, changing nothing", function()
    -- a commit the replica has replayed, then the replica cut off from the primary and a commit it misses
    assert.is_true(takes_write(env))
    local rc <close> = connect(sec)
    local n = (function() local c <close> = connect(env); return c:query("SELECT count(*)::int AS n FROM dr_spec")[1].n end)()
    for _ = 1, 100 do
      local okq, rows = pcall(rc.query, rc, "SELECT count(*)::int AS n FROM dr_spec")
      if okq and rows[1].n == n then break end
      require("opsh").sleep(0.1)
    end
    local conninfo = rc:query("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")[1].setting
    rc:exec("ALTER SYSTEM SET primary_conninfo = ''")
    rc:query("SELECT pg_reload_conf()")
    local ok, err = pcall(function()
      for _ = 1, 100 do
        if #rc:query("SELECT 1 FROM pg_stat_wal_receiver") == 0 then break end
        require("opsh").sleep(0.1)
      end
      assert.is_true(takes_write(env))
      require("opsh").sleep(1.5)
      local r = run("--env", "twin", "run", failover, "--max-lag", "1s", "--yes")
      assert.are.equal(1, r.code, r.stderr)
      assert.matches("behind psql%-legal%-production .*%-%-force", r.stderr)
      assert.is_true(in_recovery(sec))
      assert.are_not.equal("20.82.3.77", dns_ips()[1])
    end)
    rc:exec("ALTER SYSTEM SET primary_conninfo = '" .. conninfo:gsub("'", "''") .. "'")
    rc:query("SELECT pg_reload_conf()")
    if not ok then error(err, 0) end
  end)

  it("dr-drill fails over, checks the result through other paths, and resets the twin", function()
    local prod_ip = dns_ips()[1]
    local r = run("--env", "twin", "run", drill, "--yes", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(5, select(2, r.stdout:gsub('"result": ?"ok"', "")), r.stdout)
    assert.matches('"verdict": ?"met"', r.stdout)
    assert.is_nil(r.stdout:find("FAILED", 1, true))
    -- the reset is one audit line: the twin's own servers starting again are not the platform's changes
    local reset_lines = 0
    for _, line in ipairs(require("opsh.audit").lines(dir .. "/audit.log")) do
      if line.step == "reset the twin" then reset_lines = reset_lines + 1 end
    end
    assert.are.equal(1, reset_lines)
    -- reset: the replica streams again, the record and the connection string are production's
    load_envs()
    assert.is_true(in_recovery(sec))
    assert.is_true(takes_write(env))
    assert.are.same({prod_ip}, dns_ips())
    assert.are.equal(env.postgres.host .. ":" .. env.postgres.port, db_url())
  end)

  it("undoes the Key Vault change when the secondary does not become healthy; the promotion stays", function()
    local url = db_url()
    local before_dns = dns_ips()
    local r = run("--env", "twin", "run", failover, "--timeout", "1ms", "--yes")
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("not undone", r.stdout)
    assert.matches("undone", r.stdout)
    assert.are.equal(url, db_url())
    assert.are.same(before_dns, dns_ips())
    assert.is_false(in_recovery(sec))
  end)

  it("fails over: the former replica takes writes, the old primary refuses them, Key Vault, DNS and the "
    .. "secondary's workloads follow; a second run changes nothing", function()
    local r = run("--env", "twin", "run", failover, "--yes", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local report = json.decode(r.stdout:match("^(%b[])"))
    assert.are.equal(2, #report)
    for _, row in ipairs(report) do assert.are.equal("met", row.verdict) end
    assert.is_true(takes_write(sec))
    assert.is_false(takes_write(env))
    assert.are.equal(sec.postgres.host .. ":" .. sec.postgres.port, db_url())
    assert.are.same({gateway_ip(sec)}, dns_ips())
    local want, have = replicas(env), replicas(sec)
    assert.is_true(next(want) ~= nil)
    for name, n in pairs(want) do assert.are.equal(n, have[name], name) end
    r = run("--env", "twin", "run", failover, "--yes")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("0 change%(s%)", r.stdout)
    assert.matches("a primary already", r.stdout)
  end)
end)
