-- metrics on the twin: every row's figures and sparkline are those of the series the App Insights query
-- twin and the ARM twin's metrics return for the same query, read again here through the clients.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local twin = require("opsh.twin")
local runtime = require("opsh.runtime")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("metrics on the twin", function()
  local dir

  local function opsh(...) return P.opsh(dir, ...) end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops3-metrics-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  local function rows_of(r)
    assert.equal(0, r.code, r.stderr)
    local t = {}
    for _, row in ipairs(json.decode(r.stdout)) do t[row.source .. "/" .. row.metric] = row end
    return t
  end

  local function check_row(row, values)
    assert.equal(#values, row.points)
    assert.same(values, row.values)
    local lo, hi, sum = math.huge, -math.huge, 0
    for _, v in ipairs(values) do lo, hi, sum = math.min(lo, v), math.max(hi, v), sum + v end
    assert.near(hi, row.max, 0.01)
    assert.near(sum / #values, row.avg, 0.01)
    assert.near(values[#values], row.last, 0.01)
    -- one bar a point; the lowest point is ▁ and the highest █
    local bars = {}
    for ch in row.trend:gmatch(utf8.charpattern) do bars[#bars + 1] = ch end
    assert.equal(#values, #bars)
    for i, v in ipairs(values) do
      if hi > lo and v == hi then assert.equal("█", bars[i]) end
      if v == lo then assert.equal("▁", bars[i]) end
    end
  end

  it("shows the database and AKS metrics series the ARM twin returns", function()
    local rows = rows_of(opsh("run", "metrics", "-o", "json"))
    -- the same request through the client, over the window the run reported, from another process
    local span = rows["psql-legal-production/cpu_percent"]
    assert.equal(span.from, rows["aks-legal-production/node_cpu_usage_percentage"].from)
    local to = require("opsh.time").parse(span.to) + 1
    local timespan = span.from .. "/" .. os.date("!%Y-%m-%dT%H:%M:%SZ", to)
    local file = dir .. "/read.lua"
    fs.write(file, ([[
      local azure, json = require("opsh.azure"), require("opsh.json")
      local env = require("opsh.env").load("twin")
      local out = {}
      local function take(id, names)
        local doc = azure.monitor.metrics{env = env, resource = id, metrics = names, timespan = TIMESPAN, interval = "PT5M"}
        for _, m in ipairs(doc.value) do
          local v = {}
          for _, p in ipairs(m.timeseries[1].data) do v[#v + 1] = p.average end
          out[m.name.value] = v
        end
      end
      take(azure.postgres.get{env = env}.id, {"cpu_percent", "memory_percent", "storage_percent"})
      take(azure.aks.get{env = env}.id, {"node_cpu_usage_percentage"})
      print(json.encode(out))
    ]]):gsub("TIMESPAN", string.format("%q", timespan)), nil)
    local r = proc.run{argv = {runtime.exe(), "--env", "twin", file}, env_add = {OPSH_TWIN_DIR = dir}, check = false, timeout = 60}
    assert.equal(0, r.code, r.stderr)
    local want = json.decode(r.stdout)
    for _, m in ipairs({"cpu_percent", "memory_percent", "storage_percent"}) do
      check_row(rows["psql-legal-production/" .. m], want[m])
    end
    check_row(rows["aks-legal-production/node_cpu_usage_percentage"], want.node_cpu_usage_percentage)
  end)

  it("shows the App Insights requests and exceptions buckets the query twin returns", function()
    -- both reads bucket by the clock hour: if an hour starts between them the buckets shift, so read again
    local rows, r
    for _ = 1, 2 do
      local hour = os.date("!%H")
      rows = rows_of(opsh("run", "metrics", "--part", "app", "--since", "6h", "--interval", "PT1H", "-o", "json"))
      local file = dir .. "/q.lua"
      fs.write(file, [[
        local azure, json = require("opsh.azure"), require("opsh.json")
        local app = azure.insights((require("opsh.env").load("twin")))
        local function counts(kql)
          local v = {}
          for _, r in ipairs(app:query(kql)) do v[#v + 1] = r.n end
          return v
        end
        print(json.encode({
          requests = counts("requests | where timestamp > ago(21600s) | summarize n = count() by bin(timestamp, 60m) | order by timestamp asc"),
          exceptions = counts("exceptions | where timestamp > ago(21600s) | summarize n = count() by bin(timestamp, 60m) | order by timestamp asc")}))
      ]])
      r = proc.run{argv = {runtime.exe(), "--env", "twin", file}, env_add = {OPSH_TWIN_DIR = dir}, check = false, timeout = 60}
      assert.equal(0, r.code, r.stderr)
      if os.date("!%H") == hour then break end
    end
    local want = json.decode(r.stdout)
    assert.truthy(#want.requests > 1)
    -- the two ago() windows start moments apart: the first (partial) bucket may lose a row between them,
    -- every later bucket is the same
    for _, name in ipairs({"requests", "exceptions"}) do
      local row = rows["appinsights/" .. name]
      assert.equal(#want[name], #row.values)
      for i = 2, #want[name] do assert.equal(want[name][i], row.values[i]) end
      check_row(row, row.values)
    end
  end)

  it("refuses an interval it cannot bucket with a usage error", function()
    local r = opsh("run", "metrics", "--interval", "5m")
    assert.equal(2, r.code)
    assert.matches("interval", r.stderr)
  end)
end)
