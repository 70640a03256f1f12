-- monitoring-alerts against the ARM twin: a dry run plans four rules (exit 4) and writes none, the run
-- creates them with the environment's action group (read back from the twin's store), a second run sends
-- nothing, and a rule changed behind its back is put right alone.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("monitoring-alerts on the twin", function()
  local dir, store

  local function opsh(...) return P.opsh(dir, ...) end

  local function rules()
    local t = {}
    for _, it in ipairs(store:list("arm")) do
      if it.key:match("/microsoft%.insights/metricalerts/[^/]+$") then t[it.object.name] = it end
    end
    return t
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-monitoring-")
    twin.up({dir = dir, without = {"postgres", "azurite", "registry"}})
    store = twin.client(dir)
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("creates the four rules once, with the action group, and repairs drift", function()
    local r = opsh("--dry-run", "run", "monitoring-alerts")
    assert.equal(4, r.code, r.stderr)
    assert.same({}, rules())
    r = opsh("run", "monitoring-alerts", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.matches("changes=4", r.stderr)
    local all, n = rules(), 0
    for _, it in pairs(all) do
      n = n + 1
      local p = it.object.properties
      assert.matches("/actiongroups/devops%-alerts$", p.actions[1].actionGroupId:lower())
      assert.equal("PT5M", p.windowSize)
    end
    assert.equal(4, n)
    assert.matches("/managedclusters/aks%-legal%-production$",
      all["high-node-cpu-production"].object.properties.scopes[1]:lower())
    r = opsh("run", "monitoring-alerts", "-o", "json")
    assert.matches("changes=0", r.stderr)
    r = opsh("--dry-run", "run", "monitoring-alerts")
    assert.equal(0, r.code, r.stderr)
    local drifted = all["high-node-cpu-production"]
    drifted.object.properties.criteria.allOf[1].threshold = 95
    store:put("arm", drifted.key, drifted.object)
    r = opsh("run", "monitoring-alerts", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.matches("changes=1", r.stderr)
    assert.equal(80, rules()["high-node-cpu-production"].object.properties.criteria.allOf[1].threshold)
  end)
end)
