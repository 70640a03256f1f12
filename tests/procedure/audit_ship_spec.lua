-- The environment's `audit` section: a run's audit lines copied, when it ends, to a PostgreSQL table on
-- the twin's real server and to a blob in the twin's Azurite; read back by this process through its own
-- connections and compared with the local file. A dry run copies nothing; a bad table name stops the run
-- before anything; a copy that fails warns and leaves the run's outcome alone.
local fs = require("opsh.fs")
local json = require("opsh.json")
local pg = require("opsh.pg")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")
local backup = require("opsh.ops.backup")

describe("audit lines copied to the environment's table and container", function()
  local dir, root, env, logfile

  local function write_env(audit)
    fs.write(root .. "/environments/audited.lua", string.format([[
local e = require("opsh.twin").environment()
e.name, e.description = "audited", "the twin, audited to a table and a container"
e.audit = %s
return e
]], audit))
  end

  local function run(...)
    local argv = {runtime.exe(), "--env", "audited"}
    for _, a in ipairs({...}) do argv[#argv + 1] = a end
    return proc.run{argv = argv, check = false, timeout = 120,
      env_add = {OPSH_TWIN_DIR = dir, OPSH_PATH = root, OPSH_AUDIT_LOG = logfile}}
  end

  local function admin()
    local p = env.postgres
    return pg.connect{host = p.host, port = p.port, user = p.admin_user, dbname = p.database,
      password = env.twin.postgres_password, sslmode = "verify-full", sslrootcert = p.sslrootcert}
  end

  local function rows(sql)
    local c <close> = admin()
    return c:query(sql)
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-audit-ship-")
    twin.up({dir = dir, without = {"replica", "redis", "registry"}})
    env = twin.environment(dir)
    root = dir .. "/root"
    fs.mkdir(root .. "/environments", {parents = true})
    fs.mkdir(root .. "/scripts", {parents = true})
    logfile = dir .. "/audit.log"
    fs.write(root .. "/scripts/touch.lua", [[
return {description = "two writes", categories = {"test"}, flags = {"mutating"}, run = function(ctx)
  ctx.step("write", function()
    local p = ctx.pg()
    p:exec("CREATE TABLE IF NOT EXISTS touched (n int)")
    p:query("INSERT INTO touched VALUES ($1)", 1)
  end)
end}
]])
    write_env('{table = "opsh_audit", container = "audit"}')
  end)

  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("copies each line of a run to the table and to one blob, as the local file has them", function()
    local r = run("run", "touch")
    assert.are.equal(0, r.code, r.stderr)
    local local_lines = {}
    for l in fs.read(logfile):gmatch("[^\n]+") do local_lines[#local_lines + 1] = json.decode(l) end
    assert.are.equal(2, #local_lines)
    local got = rows("SELECT environment, procedure, step, kind, action, line FROM opsh_audit ORDER BY id")
    assert.are.equal(2, #got)
    for i, row in ipairs(got) do
      assert.are.equal("audited", row.environment)
      assert.are.equal("touch", row.procedure)
      assert.are.equal("write", row.step)
      assert.are.equal("pg", row.kind)
      assert.are.same(local_lines[i], type(row.line) == "string" and json.decode(row.line) or row.line)
    end
    local account = backup.blob_account(env)
    local blobs = account:list("audit", {prefix = "audited/"})
    assert.are.equal(1, #blobs)
    local text = account:get("audit", blobs[1].name)
    assert.are.equal(fs.read(logfile), text)
    assert.matches("Z%-touch%-", blobs[1].name)
  end)

  it("gives machines the step rows on the totals' JSON log line, stdout staying the records", function()
    local r = run("-o", "json", "--log-format", "json", "run", "touch")
    assert.are.equal(0, r.code, r.stderr)
    local totals
    for l in r.stderr:gmatch("[^\n]+") do
      local rec = json.decode(l)
      if rec.step_rows then totals = rec end
    end
    assert.truthy(totals, r.stderr)
    assert.are.equal(1, totals.steps)
    assert.are.equal(2, totals.changes)
    assert.are.same({"write", "done", 2}, {totals.step_rows[1].step, totals.step_rows[1].status,
      totals.step_rows[1].changes})
    assert.is_nil(r.stdout:find("step_rows", 1, true))
  end)

  it("copies nothing in a dry run", function()
    local r = run("--dry-run", "run", "touch")
    assert.are.equal(4, r.code, r.stderr)
    assert.are.equal(4, rows("SELECT count(*)::int AS n FROM opsh_audit")[1].n)
    assert.are.equal(2, #backup.blob_account(env):list("audit", {prefix = "audited/"}))
  end)

  it("refuses a table name that is not one, before the run changes anything", function()
    write_env('{table = "opsh_audit; DROP TABLE touched"}')
    local r = run("run", "touch")
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("audit%.table 'opsh_audit; DROP TABLE touched' is not a table name", r.stderr)
    assert.are.equal(2, rows("SELECT count(*)::int AS n FROM touched")[1].n)
  end)

  it("warns, naming the local file, when a copy fails, and the run still succeeds", function()
    write_env('{table = "opsh_audit", database = "no_such_database"}')
    local r = run("run", "touch")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("audit: 2 line%(s%) not copied to table opsh_audit: .*no_such_database.*; they are in "
      .. logfile:gsub("%p", "%%%0"), r.stderr)
    assert.are.equal(3, rows("SELECT count(*)::int AS n FROM touched")[1].n)
    assert.are.equal(4, rows("SELECT count(*)::int AS n FROM opsh_audit")[1].n)
  end)
end)
