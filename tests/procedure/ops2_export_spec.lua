-- pg-export / pg-import against the twin's real PostgreSQL and Azurite: the blob restores with
-- pg_restore into a fresh database with the same row counts (counted directly), its recorded SHA-256
-- is the SHA-256 of the blob's bytes (downloaded directly), a failing dump commits no blob, a dry run
-- changes nothing, and a failed import drops the database it created.
local fs = require("opsh.fs")
local json = require("opsh.json")
local crypto = require("opsh.crypto")
local twin = require("opsh.twin")
local connections = require("opsh.connections")
local backup = require("opsh.ops.backup")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local export = P.script("pg-export")
local import = P.script("pg-import")

describe("pg-export and pg-import on the twin", function()
  local dir, env, account

  local function opsh(...) return P.opsh(dir, ...) end

  local function q(db, sql, exec)
    local c <close> = require("opsh.pg").connect{host = env.postgres.host, port = env.postgres.port,
      user = env.postgres.admin_user, password = connections.secret(env, "database-password"), dbname = db,
      sslrootcert = env.postgres.sslrootcert}
    if exec then return c:exec(sql) end
    return c:query(sql)
  end

  local function databases()
    local out = {}
    for _, r in ipairs(q("postgres", "SELECT datname FROM pg_database ORDER BY 1")) do out[#out + 1] = r.datname end
    return out
  end

  local function blobs()
    local names = {}
    for _, b in ipairs(account:list("backups") or {}) do names[#names + 1] = b.name end
    table.sort(names)
    return names
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops2-export-")
    twin.up({dir = dir, without = {"redis", "registry"}})
    env = twin.environment(dir)
    account = backup.blob_account(env)
    account:create_container("backups")
    q(env.postgres.database, "CREATE TABLE exp_a (id int PRIMARY KEY, note text); "
      .. "INSERT INTO exp_a SELECT g, md5(g::text) FROM generate_series(1, 20000) g; "
      .. "CREATE TABLE exp_b (k text); INSERT INTO exp_b VALUES ('x'), ('y'), ('z')", true)
  end)
  lazy_teardown(function()
    connections.close()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("plans an export in a dry run without writing a blob (exit 4)", function()
    local before = blobs()
    local r = opsh("--dry-run", "run", export, "--name", "spec/dry.dump")
    assert.are.equal(4, r.code, r.stderr)
    assert.are.same(before, blobs())
  end)

  it("streams the dump to Blob and restores it into a fresh database with the same row counts", function()
    local r = opsh("run", export, "--name", "spec/full.dump", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local row = json.decode(r.stdout)[1]
    local data = account:get("backups", "spec/full.dump")
    assert.are.equal(#data, row.bytes)
    assert.are.equal(crypto.sha256_hex(data), row.sha256)
    assert.are.equal(row.sha256, account:properties("backups", "spec/full.dump").metadata.sha256)
    assert.are.equal("PGDMP", data:sub(1, 5))     -- pg_dump's custom format

    local i = opsh("run", import, "--blob", "spec/full.dump", "--database", "exp_copy", "-o", "json")
    assert.are.equal(0, i.code, i.stderr)
    assert.are.equal("yes", json.decode(i.stdout)[1].verified)
    for _, t in ipairs({"exp_a", "exp_b"}) do
      assert.are.equal(q(env.postgres.database, "SELECT count(*) AS n FROM " .. t)[1].n,
        q("exp_copy", "SELECT count(*) AS n FROM " .. t)[1].n)
    end
    assert.are.equal(20000, q("exp_copy", "SELECT count(*) AS n FROM exp_a")[1].n)

    local again = opsh("run", import, "--blob", "spec/full.dump", "--database", "exp_copy")
    assert.are.equal(1, again.code)
    assert.truthy(again.stderr:find("exists", 1, true), again.stderr)
    assert.are.equal(20000, q("exp_copy", "SELECT count(*) AS n FROM exp_a")[1].n)
    local dup = opsh("run", export, "--name", "spec/full.dump")
    assert.are.equal(1, dup.code)
    assert.truthy(dup.stderr:find("never overwrites", 1, true), dup.stderr)
  end)

  it("commits no blob when pg_dump fails", function()
    local before = blobs()
    local r = opsh("run", export, "--database", "no_such_db", "--name", "spec/broken.dump")
    assert.are.equal(1, r.code)
    assert.truthy(r.stderr:find("pg_dump failed", 1, true), r.stderr)
    assert.are.same(before, blobs())
  end)

  it("drops the database it created when the checksum does not match (undo)", function()
    local data = account:get("backups", "spec/full.dump")
    account:put("backups", "spec/tampered.dump", {data = data, metadata = {sha256 = string.rep("0", 64)}})
    local before = databases()
    local r = opsh("run", import, "--blob", "spec/tampered.dump", "--database", "exp_tampered")
    assert.are.equal(1, r.code)
    assert.truthy(r.stderr:find("SHA-256", 1, true), r.stderr)
    assert.truthy(r.stdout:find("undone", 1, true), r.stdout)
    assert.are.same(before, databases())
  end)
end)
