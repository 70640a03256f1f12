-- cost-report on the twin: the cost rows and total are those of the Cost Management query twin, the
-- node estimate follows the ARM twin's pools, the servers and caches are all listed, and the autoscaler
-- action is planned by --dry-run (nothing written), applied with --apply-autoscaler, and gone after.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local twin = require("opsh.twin")
local runtime = require("opsh.runtime")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("cost-report on the twin", function()
  local dir, store

  local function opsh(...) return P.opsh(dir, ...) end

  local function pools()
    local t = {}
    for _, it in ipairs(store:list("arm")) do
      if it.key:match("/managedclusters/aks%-legal%-production/agentpools/[^/]+$") then t[it.object.name] = it.object.properties end
    end
    return t
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops3-cost-")
    twin.up({dir = dir, without = {"postgres", "azurite", "registry"}})
    store = twin.client(dir)
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("reports cost by resource, the node estimate and the servers, matching the twin", function()
    local r = opsh("run", "cost-report", "--from", "2026-11-01", "--to", "2026-11-30", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local res = json.decode(r.stdout)
    -- the same query through the client in another process
    local file = dir .. "/q.lua"
    fs.write(file, [[
      local azure = require("opsh.azure")
      local rows = azure.cost.query{env = (require("opsh.env").load("twin")), from = "2026-11-01", to = "2026-11-30"}
      print(require("opsh.json").encode(rows))
    ]])
    local q = proc.run{argv = {runtime.exe(), "--env", "twin", file}, env_add = {OPSH_TWIN_DIR = dir}, check = false, timeout = 60}
    assert.equal(0, q.code, q.stderr)
    local want, sum = {}, 0
    for _, row in ipairs(json.decode(q.stdout)) do want[row.ResourceId] = row.Cost; sum = sum + row.Cost end
    assert.truthy(next(want))
    local n = 0
    for i, c in ipairs(res.costs) do
      n = n + 1
      assert.equal(want[c.id], c.cost)
      if i > 1 then assert.truthy(res.costs[i - 1].cost >= c.cost) end
    end
    for _ in pairs(want) do n = n - 1 end
    assert.equal(0, n)
    assert.near(sum, res.total, 0.001)
    assert.equal("EUR", res.currency)
    assert.same({"EUR"}, (function() local k = {}; for c in pairs(res.totals) do k[#k + 1] = c end; return k end)())
    assert.near(sum, res.totals.EUR, 0.001)
    -- one estimate row a pool, its count the twin's, monthly = count × hourly × 730
    local have = pools()
    local total = 0
    for _, e in ipairs(res.nodes) do
      assert.equal(have[e.pool].count, e.count)
      assert.near(e.count * e.hourly * 730, e.monthly, 0.01)
      total = total + e.monthly
    end
    assert.equal(#res.nodes, (function() local k = 0; for _ in pairs(have) do k = k + 1 end; return k end)())
    assert.near(total, res.node_total, 0.01)
    -- every PostgreSQL server and Redis cache with its connections; the twin's all have some
    local kinds = {}
    for _, s in ipairs(res.servers) do
      kinds[s.kind] = (kinds[s.kind] or 0) + 1
      assert.truthy(s.connections > 0)
    end
    assert.truthy(kinds.postgres >= 1 and kinds.redis >= 1)
    local auto = 0
    for _, a in ipairs(res.actions) do
      assert.is_not.equal("unused postgres", a.action)
      if a.action == "autoscaler" then
        auto = auto + 1
        assert.is_false(have[a.pool].enableAutoScaling or false)
        assert.truthy(a.min <= have[a.pool].count and have[a.pool].count <= a.max)
      end
    end
    assert.truthy(auto >= 1)
  end)

  it("plans the autoscaler change in a dry run, applies it with --apply-autoscaler, and then has none left", function()
    local before = pools()
    local r = opsh("run", "cost-report", "--apply-autoscaler", "--dry-run")
    assert.equal(4, r.code, r.stderr)
    assert.matches("agentPools/usernodepool", r.stdout, 1, true)
    assert.same(before, pools())
    r = opsh("run", "cost-report", "--apply-autoscaler", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local planned = {}
    for _, a in ipairs(json.decode(r.stdout).actions) do
      if a.action == "autoscaler" then planned[a.pool] = a end
    end
    for name, a in pairs(planned) do
      local p = pools()[name]
      assert.is_true(p.enableAutoScaling)
      assert.equal(a.min, p.minCount)
      assert.equal(a.max, p.maxCount)
    end
    local again = json.decode(opsh("run", "cost-report", "-o", "json").stdout)
    for _, a in ipairs(again.actions) do assert.is_not.equal("autoscaler", a.action) end
  end)

  it("totals each currency apart when the account bills in several, and never sums across them", function()
    local ids = {}
    for _, it in ipairs(store:list("arm")) do
      if it.key:match("/providers/microsoft%.cache/redis/[^/]+$") then ids[#ids + 1] = it.object.name end
    end
    assert.truthy(#ids > 0)
    local knob = {}
    for _, name in ipairs(ids) do knob[name] = "USD" end
    store:put("arm.knobs", "knobs", {cost_currency = knob})
    local r = opsh("run", "cost-report", "--from", "2026-11-01", "--to", "2026-11-30", "-o", "json")
    store:put("arm.knobs", "knobs", {})
    assert.equal(0, r.code, r.stderr)
    local res = json.decode(r.stdout)
    local want = {}
    for _, c in ipairs(res.costs) do want[c.currency] = (want[c.currency] or 0) + c.cost end
    assert.truthy(want.USD and want.EUR)
    assert.near(want.USD, res.totals.USD, 0.001)
    assert.near(want.EUR, res.totals.EUR, 0.001)
    assert.is_nil(res.total)
    assert.is_nil(res.currency)
    store:put("arm.knobs", "knobs", {cost_currency = knob})
    local t = opsh("run", "cost-report", "--from", "2026-11-01", "--to", "2026-11-30")
    store:put("arm.knobs", "knobs", {})
    assert.equal(0, t.code, t.stderr)
    assert.matches("\ntotal [%d.]+ EUR; [%d.]+ USD\n", t.stdout)
  end)

  it("names a cache with no connections as unused, with its delete command and its cost in the period", function()
    local cache
    for _, it in ipairs(store:list("arm")) do
      if it.key:match("/providers/microsoft%.cache/redis/[^/]+$") then cache = it.object end
    end
    store:put("arm.knobs", "knobs", {metric_values = {[cache.name] = {connectedclients = 0}}})
    local r = opsh("run", "cost-report", "--from", "2026-11-01", "--to", "2026-11-30", "-o", "json")
    store:put("arm.knobs", "knobs", {})
    assert.equal(0, r.code, r.stderr)
    local res = json.decode(r.stdout)
    local unused = {}
    for _, a in ipairs(res.actions) do
      if a.action:match("^unused") then unused[#unused + 1] = a end
    end
    assert.equal(1, #unused)
    assert.equal("unused redis", unused[1].action)
    assert.equal(cache.name, unused[1].target)
    assert.equal("az redis delete --ids " .. cache.id, unused[1].command)
    local cost
    for _, c in ipairs(res.costs) do if c.id:lower() == cache.id:lower() then cost = c end end
    assert.equal(string.format("%.2f %s in the period", cost.cost, cost.currency), unused[1].saving)
    for _, s in ipairs(res.servers) do
      if s.name == cache.name then assert.equal(0, s.connections) else assert.truthy(s.connections > 0) end
    end
  end)

  it("refuses a date it cannot read with a usage error", function()
    local r = opsh("run", "cost-report", "--from", "November")
    assert.equal(2, r.code)
    assert.matches("%-%-from", r.stderr)
  end)
end)
