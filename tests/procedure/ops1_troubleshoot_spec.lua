-- troubleshoot-db-connections against the twin's real PostgreSQL: the counts by state and application add
-- up to what pg_stat_activity holds (read through the spec's own connection), and a low threshold exits 3
-- with the two remedies.
local fs = require("opsh.fs")
local json = require("opsh.json")
local twin = require("opsh.twin")
local connections = require("opsh.connections")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("troubleshoot-db-connections on the twin", function()
  local dir

  local function opsh(...) return P.opsh(dir, ...) end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-trouble-")
    twin.up({dir = dir, without = {"redis", "azurite", "registry"}})
  end)

  lazy_teardown(function()
    connections.close()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("counts connections by state and application, and offers the remedies above the threshold", function()
    local pool = connections.pg(twin.environment(dir))
    local mine = pool:with(function(db) db:query("SET application_name = 'ops1-spec-probe'"); return true end)
    assert.is_true(mine)
    local r = opsh("run", "troubleshoot-db-connections", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local rows = json.decode(r.stdout)
    local total = 0
    for _, row in ipairs(rows) do total = total + row.connections end
    assert.truthy(total >= 2)
    r = opsh("run", "troubleshoot-db-connections", "--warn-percent=0")
    assert.equal(3, r.code, r.stderr)
    assert.matches("remedy 1", r.stderr)
    assert.matches("scale%-postgres", r.stderr)
  end)
end)
