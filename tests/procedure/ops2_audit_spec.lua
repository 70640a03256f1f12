-- audit-logs against the ARM twin and the Log Analytics twin: the diagnostic setting is in the twin's
-- store (read directly), a second run leaves it alone, a dry run writes nothing, and the kube-audit
-- rows come back decoded, filtered by verb, newest first.
local fs = require("opsh.fs")
local json = require("opsh.json")
local twin = require("opsh.twin")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local script = P.script("audit-logs")

describe("audit-logs on the twin", function()
  local dir

  local function opsh(...) return P.opsh(dir, ...) end

  local function setting(name)
    for key, obj in pairs(twin.read_state(dir).arm or {}) do
      if key:match("/managedclusters/aks%-legal%-production/providers/microsoft%.insights/diagnosticsettings/"
          .. name:gsub("%-", "%%-") .. "$") then
        return obj
      end
    end
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops2-audit-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
  end)
  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("plans the setting in a dry run (exit 4) without writing it", function()
    local r = opsh("--dry-run", "run", script)
    assert.are.equal(4, r.code, r.stderr)
    assert.truthy(r.stdout:find("/diagnosticSettings/audit-logs?api-version=", 1, true), r.stdout)
    assert.is_nil(setting("audit-logs"))
  end)

  it("enables kube-audit and kube-audit-admin once, and shows the newest rows", function()
    local r = opsh("run", script, "--limit", "7", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local s = setting("audit-logs")
    assert.truthy(s, "the setting is in the twin's store")
    local cats = {}
    for _, l in ipairs(s.properties.logs) do if l.enabled then cats[l.category] = true end end
    assert.is_true(cats["kube-audit"] and cats["kube-audit-admin"])
    assert.matches("/workspaces/log%-legal%-production$", s.properties.workspaceId)
    local rows = json.decode(r.stdout)
    assert.are.equal(7, #rows)
    for i = 2, #rows do assert.is_true(rows[i - 1].time >= rows[i].time) end
    for _, row in ipairs(rows) do assert.is_string(row.verb); assert.is_string(row.user) end

    local again = opsh("run", script, "--limit", "1")
    assert.are.equal(0, again.code, again.stderr)
    assert.matches("enable kube%-audit, kube%-audit%-admin to the workspace%s+no change", again.stdout)
    assert.are.same(s, setting("audit-logs"))
  end)

  it("filters by verb", function()
    local r = opsh("run", script, "--enable=false", "--verb", "delete,patch", "--limit", "20", "-o", "json")
    assert.are.equal(0, r.code, r.stderr)
    local rows = json.decode(r.stdout)
    assert.is_true(#rows > 0)
    for _, row in ipairs(rows) do assert.is_true(row.verb == "delete" or row.verb == "patch", row.verb) end
  end)
end)
