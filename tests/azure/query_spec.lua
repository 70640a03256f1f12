-- opsh.azure.query (azure.insights / azure.logs) against the query twin (lua/opsh/twin/query): the
-- runbook's queries, typed cells, timespans, KQL the twin refuses, partial results, auth failures.
local fs = require("opsh.fs")
local http = require("opsh.http")
local time = require("opsh.time")
local twin = require("opsh.twin")
local azure = require("opsh.azure")

local function one_line(e)
  local m = tostring(type(e) == "table" and e.message or e)
  assert.is_nil(m:find("\n"), m)
  return m
end

describe("opsh.azure.query against the query twin", function()
  local dir, env

  lazy_setup(function()
    dir = fs.tmpdir("opsh-query-twin")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    env = twin.environment(dir)
    azure.reset()
  end)

  lazy_teardown(function()
    azure.reset()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("fills the environment's endpoints and answers the runbook's exceptions-by-type query", function()
    assert.matches("^https://", env.endpoints.appinsights)
    assert.matches("^https://", env.endpoints.loganalytics)
    local rows = azure.insights(env):query("exceptions | where timestamp > ago(24h) | summarize count() by type")
    assert.same({{name = "type", type = "string"}, {name = "count_", type = "long"}}, rows.columns)
    assert.is_true(#rows >= 2)
    -- the same counts computed here from the raw rows, with one fixed cut-off
    local cut = time.format(os.time() - 86400)
    local raw = azure.insights(env):query("exceptions | where timestamp > datetime(" .. cut .. ") | project type")
    local want = {}
    for _, r in ipairs(raw) do want[r.type] = (want[r.type] or 0) + 1 end
    local got = {}
    for _, r in ipairs(azure.insights(env):query("exceptions | where timestamp > datetime(" .. cut
      .. ") | summarize count() by type")) do
      assert.equal("integer", math.type(r.count_))
      got[r.type] = r.count_
    end
    assert.same(want, got)
  end)

  it("runs a query in a dry run (a POST that only reads) and plans no change", function()
    local dryrun = require("opsh.dryrun")
    local records, rows = dryrun.with(function()
      return azure.insights(env):query("requests | summarize count()")
    end)
    assert.same({}, records)
    assert.is_true(rows[1].count_ > 0)
  end)

  it("types cells by column: ISO datetimes, numbers, booleans, dynamic as decoded JSON", function()
    local rows = azure.insights(env):query("requests | take 3")
    assert.equal(3, #rows)
    local r = rows[1]
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", r.timestamp)
    assert.equal("number", type(r.duration))
    assert.equal("boolean", type(r.success))
    assert.equal("integer", math.type(r.itemCount))
    assert.same({region = "westeurope"}, r.customDimensions)
    assert.equal("timestamp", rows.columns[1].name)
    assert.equal("datetime", rows.columns[1].type)
  end)

  it("avg(duration), count() by bin(timestamp, 5m) agrees with the raw requests", function()
    local cut = time.format(os.time() - 6 * 3600)
    local raw = azure.logs and azure.insights(env):query("requests | where timestamp > datetime(" .. cut
      .. ") | project timestamp, duration")
    local sums, counts = {}, {}
    for _, r in ipairs(raw) do
      local b = time.parse(r.timestamp) // 300 * 300
      sums[b] = (sums[b] or 0) + r.duration
      counts[b] = (counts[b] or 0) + 1
    end
    local rows = azure.insights(env):query("requests | where timestamp > datetime(" .. cut
      .. ") | summarize avg(duration), count() by bin(timestamp, 5m) | render timechart")
    assert.is_true(#rows > 10)
    for _, r in ipairs(rows) do
      local b = time.parse(r.timestamp)
      assert.equal(counts[b], r.count_)
      assert.near(sums[b] / counts[b], r.avg_duration, 1e-6)
    end
  end)

  it("runs the kube-audit query on the workspace and applies the timespan", function()
    local rows = azure.logs(env):query("AzureDiagnostics | where Category == 'kube-audit' | take 100")
    assert.equal(100, #rows)
    for _, r in ipairs(rows) do assert.equal("kube-audit", r.Category) end
    local day = azure.logs(env):query("AzureDiagnostics | summarize min(TimeGenerated), count()", {timespan = "P1D"})
    local all = azure.logs(env):query("AzureDiagnostics | count")
    assert.is_true(time.parse(day[1].min_TimeGenerated) >= os.time() - 86400 - 5)
    assert.is_true(day[1].count_ < all[1].Count)
    local mem = azure.insights(env):query("performanceCounters | where name == 'Memory' | render timechart",
      {timespan = "PT1H"})
    assert.is_true(#mem >= 10 and #mem <= 13)
  end)

  it("raises a one-line azure error naming unsupported KQL", function()
    local ok, e = pcall(azure.insights(env).query, azure.insights(env), "requests | join (exceptions) on operation_Id")
    assert.is_false(ok)
    assert.equal("azure", e.kind)
    assert.equal(400, e.status)
    assert.truthy(one_line(e):find("unsupported operator 'join'", 1, true))
    ok, e = pcall(azure.logs(env).query, azure.logs(env), "AzureDiagnostics | where nosuch == 1")
    assert.is_false(ok)
    assert.truthy(one_line(e):find("unknown column 'nosuch'", 1, true))
  end)

  it("surfaces a partial result as an error with the rows received", function()
    twin.client(dir):put("query.knobs", "knobs", {row_limit = 10})
    local ok, e = pcall(azure.insights(env).query, azure.insights(env), "requests | take 50")
    twin.client(dir):put("query.knobs", "knobs", {})
    assert.is_false(ok)
    assert.equal("azure", e.kind)
    assert.equal("PartialError", e.code)
    assert.is_true(e.partial)
    assert.equal(10, #e.rows)
    assert.truthy(one_line(e):find("record count limit 10", 1, true))
  end)

  it("refuses a token for another audience and a missing token with one-line errors", function()
    local c = azure.logs(env)
    c.http = http.client{base_url = env.endpoints.loganalytics, ca = env.endpoints.ca, raise_for_status = false,
      auth = azure.credential(env):auth("arm")}
    local ok, e = pcall(c.query, c, "AzureDiagnostics | take 1")
    assert.is_false(ok)
    assert.equal(401, e.status)
    assert.truthy(one_line(e):find("InvalidAuthenticationTokenAudience", 1, true))
    c.http = http.client{base_url = env.endpoints.loganalytics, ca = env.endpoints.ca, raise_for_status = false}
    ok, e = pcall(c.query, c, "AzureDiagnostics | take 1")
    assert.is_false(ok)
    assert.equal(401, e.status)
    assert.truthy(one_line(e):find("AuthenticationFailed", 1, true))
  end)

  it("answers GET ?query=&timespan= and the workspace by its ID as by its resource ID", function()
    local qtwin = require("opsh.twin.query")
    local c = http.client{base_url = env.endpoints.appinsights, ca = env.endpoints.ca,
      auth = azure.credential(env):auth("appinsights")}
    local doc = c:request{method = "GET", url = "/v1/apps/" .. qtwin.APP_ID .. "/query",
      query = {query = "requests | count", timespan = "PT6H"}}:json()
    assert.equal("PrimaryResult", doc.tables[1].name)
    assert.same({{name = "Count", type = "long"}}, doc.tables[1].columns)
    local n = doc.tables[1].rows[1][1]
    assert.is_true(n > 50 and n < 400, tostring(n))
    local by_id = azure.logs(env, qtwin.WORKSPACE_ID):query("AzureDiagnostics | count")
    local by_rid = azure.logs(env):query("AzureDiagnostics | count")
    assert.matches("^/subscriptions/", env.monitor.workspace)
    assert.same(by_rid[1], by_id[1])
  end)

  it("refuses a workspace that is neither an ID nor a resource ID", function()
    local ok, e = pcall(azure.logs, env, "log-legal-production")
    assert.is_false(ok)
    assert.equal("usage", e.kind)
  end)
end)
