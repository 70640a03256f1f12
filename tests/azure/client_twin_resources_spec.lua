-- opsh.azure's resource modules against the ARM twin with its real servers (PostgreSQL primary and
-- replica, Redis): the runbook's reads and changes, and their real effects — the admin password is
-- what the server then takes, Redis answers to the regenerated key, the promoted replica takes writes.
local opsh = require("opsh")
local fs = require("opsh.fs")
local crypto = require("opsh.crypto")
local twin = require("opsh.twin")
local azure = require("opsh.azure")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/azure"
local S = dofile(here .. "/../support/helpers.lua")

describe("opsh.azure resources against the ARM twin", function()
  local dir, env

  lazy_setup(function()
    dir = fs.tmpdir("opsh-azure-twin-res")
    twin.up({dir = dir, without = {"azurite", "registry"}})
    env = twin.environment(dir)
    azure.reset()
    twin.client(dir):put("arm.knobs", "knobs", {lro_seconds = 0.2})
  end)

  lazy_teardown(function()
    azure.reset()
    require("opsh.connections").close()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  describe("postgres", function()
    it("reads the server, grows storage (never shrinks it), resizes", function()
      local pg = azure.postgres.get{env = env}
      assert.equal("psql-legal-production", pg.name)
      local size = pg.properties.storage.storageSizeGB
      local err = S.catch(azure.postgres.grow_storage, {env = env, size_gb = size - 1})
      assert.equal("usage", err.kind)
      local grown = azure.postgres.grow_storage{env = env, size_gb = size * 2}
      assert.equal(size * 2, grown.properties.storage.storageSizeGB)
      local resized = azure.postgres.update_sku{env = env, sku = "Standard_D8ds_v5", tier = "GeneralPurpose"}
      assert.equal("Standard_D8ds_v5", resized.sku.name)
      assert.truthy(#azure.postgres.list{env = env} >= 1)
    end)

    it("parameters, backups and an on-demand backup", function()
      local p = azure.postgres.parameter{env = env, name = "max_connections"}
      assert.truthy(p.properties.value)
      local set = azure.postgres.set_parameter{env = env, name = "max_connections", value = 300}
      assert.equal("300", tostring(set.properties.value))
      local before = #azure.postgres.backups{env = env}
      azure.postgres.backup{env = env, name = "ondemand-spec"}
      assert.equal(before + 1, #azure.postgres.backups{env = env})
    end)

    it("sets the admin password from an opsh.secret: the server then takes it", function()
      local password = crypto.random_password(24, {url = true})
      azure.postgres.set_admin_password{env = env, password = password}
      local conn <close> = require("opsh.pg").connect{host = env.postgres.host, port = env.postgres.port,
        dbname = env.postgres.database, user = env.postgres.admin_user, password = password,
        sslmode = "verify-full", sslrootcert = env.postgres.sslrootcert}
      assert.equal(1, conn:query("SELECT 1 AS one")[1].one)
    end)

    it("lists the replica and promotes it: it then takes writes", function()
      local names = {}
      for _, r in ipairs(azure.postgres.replicas{env = env}) do names[#names + 1] = r.name end
      assert.same({"psql-legal-production-replica"}, names)
      local promoted = azure.postgres.promote{env = env}
      assert.equal("None", promoted.properties.replica and promoted.properties.replica.role
        or promoted.properties.replicationRole)
      local fresh = twin.environment(dir)
      local conn <close> = require("opsh.pg").connect{host = fresh.postgres.replica_host,
        port = fresh.postgres.replica_port, dbname = fresh.postgres.database, user = fresh.postgres.admin_user,
        password = fresh.twin.postgres_password, sslmode = "verify-full", sslrootcert = fresh.postgres.sslrootcert}
      assert.is_false(conn:query("SELECT pg_is_in_recovery() AS r")[1].r)
    end)
  end)

  it("redis: keys are secrets, and the server answers to a regenerated key", function()
    local cache = azure.redis.get{env = env}
    assert.equal("redis-legal-production", cache.name)
    local keys = azure.redis.keys{env = env}
    assert.is_true(opsh.is_secret(keys.primaryKey))
    local after = azure.redis.regenerate_key{env = env, key = "Primary"}
    assert.is_true(opsh.is_secret(after.primaryKey))
    assert.is_false(after.primaryKey == keys.primaryKey)
    local r = env.twin.redis or {}
    local host = env.redis and env.redis.host or r.host
    local port = env.redis and env.redis.port or r.port
    local client = require("opsh.redis").connect{host = host, port = port, tls = env.redis.tls ~= false,
      ca = env.redis.ca, password = after.primaryKey}
    assert.equal("PONG", client:call("PING"))
    client:close()
  end)

  it("monitor: an alert created, listed, deleted; action group, metrics, diagnostic setting, retention", function()
    local cluster = azure.aks.get{env = env}
    local alert = azure.monitor.put_alert{env = env, name = "spec-node-cpu", scope = cluster.id, severity = 2,
      criteria = {{metric = "node_cpu_usage_percentage", operator = "GreaterThan", threshold = 80}}}
    assert.equal("spec-node-cpu", alert.name)
    local names = {}
    for _, a in ipairs(azure.monitor.alerts{env = env}) do names[a.name] = true end
    assert.is_true(names["spec-node-cpu"])
    azure.monitor.delete_alert{env = env, name = "spec-node-cpu"}
    assert.is_nil(azure.monitor.alert{env = env, name = "spec-node-cpu"})
    assert.truthy(azure.monitor.action_group{env = env}.name)
    local m = azure.monitor.metrics{env = env, resource = cluster.id, metrics = {"node_cpu_usage_percentage"},
      timespan = 1800, interval = "PT5M"}
    assert.equal("table", type(m.value))
    local ds = azure.monitor.diagnostic_setting{env = env, resource = cluster.id, name = "audit"}
    assert.equal(env.monitor.workspace:lower(), ds.properties.workspaceId:lower())
    assert.equal(90, azure.monitor.set_retention{env = env, days = 90}.properties.RetentionInDays)
  end)

  it("dns: the A record switched, then read back", function()
    azure.dns.set_a_record{env = env, ips = {"203.0.113.44"}}
    assert.same({"203.0.113.44"}, azure.dns.addresses(azure.dns.a_record{env = env}))
  end)

  it("cost and storage: usage details, a grouped query, blob soft delete", function()
    assert.equal("table", type(azure.cost.usage{env = env}))
    local rows = azure.cost.query{env = env}
    assert.equal("table", type(rows))
    local svc = azure.storage.set_blob_properties{env = env, account = "stalegalproduction",
      delete_retention_days = 14, versioning = true}
    assert.same({enabled = true, days = 14}, svc.properties.deleteRetentionPolicy)
    assert.is_true(azure.storage.blob_properties{env = env, account = "stalegalproduction"}.properties.isVersioningEnabled)
  end)
end)
