-- rotate-db-password on the twin (real PostgreSQL, the ARM, Key Vault and Kubernetes twins), each
-- result checked through an independent path: new opsh.pg connections with the credentials Key Vault
-- holds, the roles on the server, the deployments' restartedAt annotation in the twin's store.
-- --app: a probe opening a new connection every 100 ms with Key Vault's credentials of that moment
-- runs through the rotation with no failure; the retired role is refused. --admin: the old password is
-- refused, the new one works; a failure after the server change puts the old password back.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local opshm = require("opsh")
local pg = require("opsh.pg")
local connections = require("opsh.connections")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local script = P.script("rotate-db-password")

describe("rotate-db-password on the twin", function()
  local dir, env, store, kv

  local function opsh(...) return P.opsh(dir, ...) end

  local function connect(user, password)
    return pg.connect{host = env.postgres.host, port = env.postgres.port, user = user, password = password,
      dbname = env.postgres.database, sslrootcert = env.postgres.sslrootcert, connect_timeout = 5}
  end

  local function login_ok(user, password)
    local ok, err = pcall(function()
      local c <close> = connect(user, password)
      c:query("SELECT count(*) AS n FROM rot_t")
    end)
    return ok, err
  end

  local function admin_pw() return (kv:get("database-password")) end

  local function deployment(name)
    for _, it in ipairs(store:list("k8s.production.deployments")) do
      if it.object.metadata and it.object.metadata.name == name then return it.object end
    end
  end

  local function restarted_at(name)
    local d = deployment(name)
    local ann = d.spec.template.metadata and d.spec.template.metadata.annotations or {}
    return ann["kubectl.kubernetes.io/restartedAt"]
  end

  local function roles()
    local c <close> = connect(env.postgres.admin_user, admin_pw())
    local out = {}
    for _, r in ipairs(c:query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'legal_app%' ORDER BY 1")) do
      out[#out + 1] = r.rolname
    end
    return out
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops2-rotate-")
    twin.up({dir = dir, without = {"azurite", "registry"}})
    env = twin.environment(dir)
    store = twin.client(dir)
    store:put("k8s.knobs", "all", {pod_start_seconds = 1})
    store:put("arm.knobs", "knobs", {lro_seconds = 0.2})
    kv = require("opsh.azure").keyvault(env)
    local c <close> = connect(env.postgres.admin_user, connections.secret(env, "database-password"))
    c:exec("CREATE ROLE legal_app NOLOGIN; CREATE TABLE rot_t (id int); INSERT INTO rot_t VALUES (1); "
      .. "GRANT SELECT ON rot_t TO legal_app")
  end)
  lazy_teardown(function()
    connections.close()
    pcall(twin.down, {dir = dir})
    if os.getenv("KEEP") then print(dir) else fs.rmtree(dir) end
  end)

  it("plans --app and --admin in a dry run (exit 4) and changes nothing", function()
    local before = admin_pw()
    local u = opsh("run", script)
    assert.are.equal(2, u.code, u.stderr)
    assert.truthy(u.stderr:find("exactly one of --admin and --app", 1, true), u.stderr)
    local r = opsh("--dry-run", "run", script, "--app", "legal_app")
    assert.are.equal(4, r.code, r.stderr)
    r = opsh("--dry-run", "run", script, "--admin")
    assert.are.equal(4, r.code, r.stderr)
    assert.are.same({"legal_app"}, roles())
    assert.is_nil(kv:get("database-app-user", {missing = "nil"}))
    assert.is_nil(restarted_at("gateway"))
    assert.is_true(crypto.constant_time_equal(before, admin_pw()))
    assert.is_true((login_ok(env.postgres.admin_user, before)))
  end)

  it("--app rotates the alternating users with no failed connection and retires the previous role", function()
    local r = opsh("run", script, "--app", "legal_app", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("legal_app_a", json.decode(r.stdout)[1].in_use)
    assert.are.same({"legal_app", "legal_app_a", "legal_app_b"}, roles())
    assert.truthy(restarted_at("gateway"))
    local first = deployment("gateway").metadata.generation
    local old_pw, old_info = kv:get("database-app-password")
    assert.are.equal("legal_app_a", old_info.tags.user)

    -- the probe: Key Vault's credentials of that moment, a new connection every 100 ms
    local stop, attempts, failures, errors = false, 0, 0, {}
    -- and a consumer pod: it keeps the credentials it read at its start until gateway's rollout after a
    -- restart is complete (its old pods gone); a failure counts unless that rollout was complete by then
    local pod = {attempts = 0, errors = {}}
    local start = deployment("gateway").metadata.generation   -- restartedAt has a resolution of 1 s
    local function rolled()
      local d = deployment("gateway")
      local st, want = d.status or {}, d.spec.replicas
      return d.metadata.generation > start and (st.observedGeneration or 0) >= (d.metadata.generation or 0)
        and st.updatedReplicas == want and st.replicas == want and st.availableReplicas == want
    end
    local pod_task = opshm.spawn(function()
      local pw, info = kv:get("database-app-password")
      local fresh = false
      while not stop do
        if not fresh and rolled() then fresh = true; pw, info = kv:get("database-app-password") end
        pod.attempts = pod.attempts + 1
        local ok, err = login_ok(info.tags.user, pw)
        if not ok and (fresh or not rolled()) then
          pod.errors[#pod.errors + 1] = tostring(err)
        end
        opshm.sleep(0.1)
      end
    end)
    local probe = opshm.spawn(function()
      while not stop do
        attempts = attempts + 1
        local ok, err = pcall(function()
          local pw, info = kv:get("database-app-password")
          local c <close> = connect(info.tags.user, pw)
          c:query("SELECT count(*) AS n FROM rot_t")
        end)
        if not ok then failures = failures + 1; errors[#errors + 1] = tostring(err) end
        opshm.sleep(0.1)
      end
    end)
    r = opsh("run", script, "--app", "legal_app", "-o", "json")
    stop = true
    probe:wait()
    pod_task:wait()
    assert.are.equal(0, r.code, r.stderr)
    print(string.format("\nprobe: %d connections during the --app rotation, %d failed", attempts, failures))
    print(string.format("consumer pod: %d connections with its credentials, %d failed", pod.attempts, #pod.errors))
    assert.are.same({}, errors)
    assert.are.same({}, pod.errors)
    assert.is_true(attempts >= 3)
    assert.are.equal("legal_app_b", json.decode(r.stdout)[1].in_use)
    assert.are.equal("legal_app_a", json.decode(r.stdout)[1].retired)

    local new_pw, info = kv:get("database-app-password")
    assert.are.equal("legal_app_b", info.tags.user)
    assert.is_true(crypto.constant_time_equal(kv:get("database-app-user"), "legal_app_b"))
    assert.is_true((login_ok("legal_app_b", new_pw)))
    local ok, err = login_ok("legal_app_a", old_pw)
    assert.is_false(ok)
    assert.are.equal("pg_connect", err.kind)
    assert.is_true(deployment("gateway").metadata.generation > first)
    assert.truthy(restarted_at("document-service"))
  end)

  it("--app: a failure after the publish leaves working credentials in Key Vault and retires nothing", function()
    local before_pw, before_info = kv:get("database-app-password")
    local r = opsh("run", script, "--app", "legal_app", "--deployments", "gateway,no-such-deployment")
    assert.are.equal(1, r.code, r.stderr)
    assert.truthy(r.stderr:find("was not retired", 1, true), r.stderr)
    local pw, info = kv:get("database-app-password")
    assert.are.equal(before_info.tags.user, info.tags.user)         -- Key Vault put back
    assert.is_true(crypto.constant_time_equal(before_pw, pw))
    assert.is_true((login_ok(info.tags.user, pw)))
    assert.is_true(crypto.constant_time_equal(kv:get("database-app-user"), info.tags.user))
    -- the credentials published before the failure (gateway may have rolled onto them) still work
    local published = kv:versions("database-app-password")[2]
    local ppw, pinfo = kv:get("database-app-password", {version = published.version})
    assert.are_not.equal(info.tags.user, pinfo.tags.user)
    assert.is_true((login_ok(pinfo.tags.user, ppw)))
  end)

  it("--admin: refused without --yes off a terminal (consumers fail until they roll), before any change", function()
    local old = admin_pw()
    local r = opsh("run", script, "--admin")
    assert.are.equal(2, r.code, r.stderr)
    assert.truthy(r.stderr:find("--yes", 1, true), r.stderr)
    assert.is_true(crypto.constant_time_equal(old, admin_pw()))
    assert.is_true((login_ok(env.postgres.admin_user, old)))
  end)

  it("--admin: the old password is refused, the new one works and Key Vault holds it", function()
    local old = admin_pw()
    local r = opsh("--yes", "run", script, "--admin", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local window = json.decode(r.stdout)[1].window_seconds
    assert.is_number(window)
    print(string.format("\nadmin window: %.1f s (server change -> consumers rolled)", window))
    local new = admin_pw()
    assert.is_false(crypto.constant_time_equal(old, new))
    assert.is_false((login_ok(env.postgres.admin_user, old)))
    assert.is_true((login_ok(env.postgres.admin_user, new)))
  end)

  it("--admin: a failure after the server change puts the previous password back", function()
    local old = admin_pw()
    local r = opsh("--yes", "run", script, "--admin", "--deployments", "gateway,no-such-deployment")
    assert.are.equal(1, r.code, r.stderr)
    assert.truthy((r.stdout .. r.stderr):find("undone", 1, true), r.stdout .. r.stderr)
    assert.truthy(r.stderr:find("restored the previous admin password", 1, true), r.stderr)
    assert.is_true(crypto.constant_time_equal(old, admin_pw()))
    assert.is_true((login_ok(env.postgres.admin_user, old)))
  end)
end)
