-- opsh.connections against a real twin: ctx.pg(), ctx.pg{replica = true}, ctx.redis() and
-- env:secret(name), with credentials from the provider the environment names.
local connections = require("opsh.connections")
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

describe("opsh.connections", function()
  local dir, env

  setup(function()
    dir = fs.tmpdir("opsh-conn-spec-")
    twin.up({dir = dir, without = "azurite,registry"})
    env = twin.environment(dir)
  end)

  teardown(function()
    connections.close()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  local function opsh(args, env_add)
    local argv = {runtime.exe()}
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    env_add = env_add or {}
    env_add.OPSH_TWIN_DIR = dir
    return proc.run{argv = argv, env_add = env_add, check = false, timeout = 60}
  end

  it("gives the primary over verified TLS with the password from the environment's provider", function()
    local pool = connections.pg(env)
    local row = pool:with(function(c)
      return c:query("SELECT ssl, pg_is_in_recovery() AS replica FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[1]
    end)
    assert.is_true(row.ssl)
    assert.is_false(row.replica)
    assert.equal(pool, connections.pg(env))          -- one pool per environment and role
    assert.equal(7, pool:query("SELECT $1::int + 1 AS n", 6)[1].n)
    assert.equal("SELECT 1", pool:exec("SELECT 1").command)
    assert.equal(0, pool:stats().busy)
  end)

  it("gives the replica when asked", function()
    local row = connections.pg(env, {replica = true}):with(function(c)
      return c:query("SELECT pg_is_in_recovery() AS replica")[1]
    end)
    assert.is_true(row.replica)
  end)

  it("gives Redis over TLS with the key from the provider", function()
    local r = connections.redis(env)
    assert.equal("PONG", r:call("PING"))
    assert.equal(r, connections.redis(env))
  end)

  it("resolves named secrets as secrets, and says how to override a missing one", function()
    local s = connections.secret(env, "database-password")
    assert.is_true(require("opsh").is_secret(s))
    local err = S.catch(connections.secret, env, "no-such-secret")
    assert.equal("config", err.kind)
    assert.truthy(tostring(err):find("OPSH_SECRET_NO_SUCH_SECRET", 1, true))
  end)

  it("explains a Key Vault provider this opsh cannot reach", function()
    local kv_env = {name = "cloud", keyvault = {name = "kv", url = "https://127.0.0.1:1"}}
    local err = S.catch(connections.secret, kv_env, "database-password")
    assert.equal("connect", err.kind)
    assert.truthy(tostring(err):find("OPSH_SECRET_DATABASE_PASSWORD", 1, true))
  end)

  it("reaches ctx.pg(), ctx.redis() and opsh.env():pg() from a procedure and from ad-hoc code", function()
    local file = dir .. "/probe.lua"
    fs.write(file, [[
return {
  description = "probe", categories = {"test"}, flags = {"read-only"},
  run = function(ctx)
    local n = ctx.pg():with(function(c) return c:query("SELECT 41 + 1 AS n")[1].n end)
    local m = ctx.pg{replica = true}:with(function(c) return c:query("SELECT 1 AS m")[1].m end)
    local e = require("opsh").env():pg():with(function(c) return c:query("SELECT 2 AS e")[1].e end)
    io.stdout:write(n, " ", m, " ", e, " ", ctx.redis():call("PING"), "\n")
  end,
}]])
    local r = opsh({"--env", "twin", "run", file})
    assert.equal(0, r.code, r.stderr)
    assert.equal("42 1 2 PONG\n", r.stdout)
  end)

  it("lets OPSH_SECRET_<NAME> override the provider", function()
    local r = opsh({"--env", "twin", "-e", "require('opsh').env():pg():with(function(c) c:query('SELECT 1') end)"},
      {OPSH_SECRET_DATABASE_PASSWORD = "wrong-password"})
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("password authentication failed", 1, true), r.stderr)
    assert.is_nil(r.stderr:find("wrong-password", 1, true))
  end)
end)
