-- pg-backup against the ARM twin (CA + API process only): the backup is in the twin's store (read
-- directly, not through the procedure), a second run with the same name sends nothing, a dry run
-- changes nothing and exits 4.
local fs = require("opsh.fs")
local json = require("opsh.json")
local twin = require("opsh.twin")
local platform = require("opsh.twin.platform")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local script = P.script("pg-backup")
local restore = P.script("pg-restore")

describe("pg-backup and pg-restore on the twin", function()
  local dir

  local function opsh(...) return P.opsh(dir, ...) end

  local function backups()
    local names = {}
    for key in pairs(twin.read_state(dir).arm or {}) do
      local n = key:match("/flexibleservers/psql%-legal%-production/backups/([^/]+)$")
      if n then names[#names + 1] = n end
    end
    table.sort(names)
    return names
  end

  local function has(list, name)
    for _, n in ipairs(list) do if n == name then return true end end
    return false
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops2-backup-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
  end)
  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("plans the backup in a dry run (exit 4) and changes nothing", function()
    local before = backups()
    local r = opsh("--dry-run", "run", script, "--name", "spec-dry")
    assert.are.equal(4, r.code, r.stderr)
    assert.truthy(r.stdout:find("/backups/spec-dry?api-version=", 1, true), r.stdout)
    assert.are.same(before, backups())
  end)

  it("takes the backup, lists it, and a second run with the same name changes nothing", function()
    local before = backups()
    assert.is_false(has(before, "spec-1"))
    local r = opsh("run", script, "--name", "spec-1", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local after = backups()
    assert.are.equal(#before + 1, #after)
    assert.is_true(has(after, "spec-1"))
    local listed = {}
    for _, row in ipairs(json.decode(r.stdout)) do listed[row.name] = row end
    assert.are.equal("Customer On-Demand", listed["spec-1"].type)

    local again = opsh("run", script, "--name", "spec-1")
    assert.are.equal(0, again.code, again.stderr)
    assert.truthy(again.stdout:find("0 change(s)", 1, true), again.stdout)
    assert.are.same(after, backups())
    local dry = opsh("--dry-run", "run", script, "--name", "spec-1")
    assert.are.equal(0, dry.code, dry.stderr)   -- nothing planned
  end)

  it("refuses a bad name before anything is sent", function()
    local before = backups()
    local r = opsh("run", script, "--name", "bad/name")
    assert.are.equal(2, r.code, r.stderr)
    assert.are.same(before, backups())
  end)

  local function server(name)
    return (twin.read_state(dir).arm or {})[
      platform.resource_id("rg-legal-production", "Microsoft.DBforPostgreSQL/flexibleServers", name)]
  end

  it("restores to a point in time into a new server, once", function()
    assert.is_nil(server("psql-spec-pitr"))
    local r = opsh("run", restore, "--target", "psql-spec-pitr", "--time", "2026-12-05T10:00:00Z", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local s = server("psql-spec-pitr")
    assert.truthy(s, "the new server is in the twin's store")
    assert.are.equal("PointInTimeRestore", s.properties.restoredFrom.createMode)
    assert.matches("^2026%-12%-05T10:00:00", s.properties.restoredFrom.pointInTimeUTC)
    assert.are.equal("Ready", json.decode(r.stdout)[1].state)
    local again = opsh("run", restore, "--target", "psql-spec-pitr", "--time", "2026-12-05T10:00:00Z")
    assert.are.equal(0, again.code, again.stderr)
    assert.truthy(again.stdout:find("0 change(s)", 1, true), again.stdout)
  end)

  it("plans a geo-restore in a dry run without creating it, then creates it in the region", function()
    local dry = opsh("--dry-run", "run", restore, "--target", "psql-spec-geo", "--geo", "--location", "westus2")
    assert.are.equal(4, dry.code, dry.stderr)
    assert.is_nil(server("psql-spec-geo"))
    local r = opsh("run", restore, "--target", "psql-spec-geo", "--geo", "--location", "westus2")
    assert.are.equal(0, r.code, r.stderr)
    local s = server("psql-spec-geo")
    assert.are.equal("westus2", s.location)
    assert.are.equal("GeoRestore", s.properties.restoredFrom.createMode)
  end)

  it("refuses the source as target, --geo without --location, and a bad time, before sending", function()
    for _, args in ipairs({{"--target", "psql-legal-production"}, {"--target", "psql-x1", "--geo"},
        {"--target", "psql-x2", "--time", "yesterday"}}) do
      local r = opsh("run", restore, table.unpack(args))
      assert.are.equal(2, r.code, r.stderr)
    end
    assert.is_nil(server("psql-x1"))
  end)
end)
