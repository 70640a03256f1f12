-- The Key Vault twin's seeded secrets are the twin's real credentials (here Redis's; PostgreSQL's
-- through the same seed with a stand-in state), and the ARM twin's key changes leave them alone.
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local twin = require("opsh.twin")
local azure = require("opsh.azure")

local function same(a, b)
  return proc.run{argv = {"sh", "-c", 'test "$A" = "$B"'}, env = {A = a, B = b}}.code == 0
end

describe("the Key Vault twin's seeded secrets", function()
  local dir, env

  lazy_setup(function()
    dir = fs.tmpdir("opsh-kv-seed")
    twin.up({dir = dir, without = {"postgres", "azurite", "registry"}})
    env = twin.environment(dir)
    azure.reset()
  end)

  lazy_teardown(function()
    azure.reset()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("holds the twin Redis's password as redis-primary-key; the ARM twin's regenerateKey does not change it", function()
    local vault = azure.keyvault(env)
    local before, info = vault:get("redis-primary-key")
    assert.truthy(same(before, env.twin.secrets["redis-primary-key"]))
    azure.redis.regenerate_key{env = env, key = "Primary"}
    local after, info2 = vault:get("redis-primary-key")
    assert.equal(info.version, info2.version)
    assert.truthy(same(before, after))
    assert.is_nil(vault:get("database-password", {missing = "nil"}))   -- no PostgreSQL in this twin
  end)

  it("seeds database-password and a database-url without the password from PostgreSQL's state", function()
    local store_mod = require("opsh.twin.store")
    local kvtwin = require("opsh.twin.keyvault")
    local store = store_mod.open(dir .. "/seed-store")
    local tw = {store = store, read_state = function()
      return {components = {postgres = {password = "pg-secret-value", user = "adminuser", host = "127.0.0.1",
        port = 5433, dbname = "legaldb"}}}
    end}
    kvtwin.seed(tw)
    local pw = store:get("keyvault", "kv-legal-production/database-password")
    assert.equal("pg-secret-value", pw.versions[1].value)
    local url = store:get("keyvault", "kv-legal-production/database-url").versions[1].value
    assert.equal("postgresql://adminuser@127.0.0.1:5433/legaldb?sslmode=verify-full", url)
    kvtwin.seed(tw)
    assert.equal(1, #store:get("keyvault", "kv-legal-production/database-password").versions)
    store:close()
  end)
end)
