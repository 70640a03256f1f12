-- opsh.kql against the twin's seed rows: every operator's result is recomputed here in plain Lua.
local kql = require("opsh.kql")
local seed = require("opsh.twin.query.seed")

local NOW = 1796472000 -- 2026-12-05T12:00:00Z
local T = seed.tables(NOW)
local W = seed.workspace(NOW)

local function run(q) return kql.execute(q, T, {now = NOW}) end
local function filter(rows, f)
  local out = {}
  for _, r in ipairs(rows) do if f(r) then out[#out + 1] = r end end
  return out
end
local function names(columns)
  local out = {}
  for i, c in ipairs(columns) do out[i] = c.name .. ":" .. c.type end
  return out
end

describe("opsh.kql", function()
  it("has seed data over the last 3 days", function()
    assert.is_true(#T.requests.rows > 1000)
    assert.is_true(#T.exceptions.rows > 50)
    assert.is_true(#W.AzureDiagnostics.rows > 500)
    assert.same(seed.tables(NOW).requests.rows[7], T.requests.rows[7])
  end)

  it("where: comparisons, and/or, ago(), between, has/contains/startswith, in, isnotempty", function()
    local rows = run("requests | where timestamp > ago(24h) and (resultCode == '500' or duration >= 3000)")
    local want = filter(T.requests.rows, function(r)
      return r.timestamp > NOW - 86400 and (r.resultCode == "500" or r.duration >= 3000) end)
    assert.equal(#want, #rows)
    assert.is_true(#want > 0)
    assert.equal(#filter(T.requests.rows, function(r) return r.duration >= 100 and r.duration <= 200 end),
      #run("requests | where duration between (100 .. 200)"))
    assert.equal(#filter(T.requests.rows, function(r) return r.name:lower():find("api/doc", 1, true) end),
      #run("requests | where name contains 'API/DOC'"))
    assert.equal(#filter(T.requests.rows, function(r) return r.name:match("documents$") end),
      #run("requests | where name has 'documents'"))
    assert.equal(0, #run("requests | where name has 'docu'"))
    assert.equal(#filter(T.requests.rows, function(r) return r.name:sub(1, 4) == "POST" end),
      #run("requests | where name startswith 'post'"))
    assert.equal(#filter(T.requests.rows, function(r) return r.resultCode == "404" or r.resultCode == "500" end),
      #run("requests | where resultCode in ('404', '500')"))
    assert.equal(#filter(T.requests.rows, function(r) return not r.success end),
      #run("requests | where not(success)"))
    assert.equal(#T.requests.rows, #run("requests | where isnotempty(operation_Name)"))
    assert.equal(0, #run("requests | where isempty(operation_Name)"))
    assert.equal(#filter(W.AzureDiagnostics.rows, function(r) return r.Category == "kube-audit" end),
      #kql.execute("AzureDiagnostics | where Category == 'kube-audit'", W, {now = NOW}))
  end)

  it("datetime() and timespan() literals, quoted or not", function()
    local cut = NOW - 7200
    local iso = os.date("!%Y-%m-%dT%H:%M:%SZ", cut)
    local want = #filter(T.requests.rows, function(r) return r.timestamp >= cut end)
    assert.equal(want, #run("requests | where timestamp >= datetime(" .. iso .. ")"))
    assert.equal(want, #run("requests | where timestamp >= datetime('" .. iso .. "')"))
    assert.equal(want, #run("requests | where timestamp >= now() - timespan(2h)"))
    assert.equal(#filter(T.requests.rows, function(r) return r.timestamp >= NOW - 86400 end),
      #run("requests | where timestamp >= ago(timespan(1))"))
  end)

  it("summarize count() by type over exceptions in the last 24h", function()
    local rows, columns = run("exceptions | where timestamp > ago(24h) | summarize count() by type")
    assert.same({"type:string", "count_:long"}, names(columns))
    local want = {}
    for _, r in ipairs(T.exceptions.rows) do
      if r.timestamp > NOW - 86400 then want[r.type] = (want[r.type] or 0) + 1 end
    end
    local got = {}
    for _, r in ipairs(rows) do got[r.type] = r.count_ end
    assert.same(want, got)
  end)

  it("summarize avg(duration), count() by bin(timestamp, 5m)", function()
    local rows, columns = run("requests | summarize avg(duration), count() by bin(timestamp, 5m)")
    assert.same({"timestamp:datetime", "avg_duration:real", "count_:long"}, names(columns))
    local sums, counts = {}, {}
    for _, r in ipairs(T.requests.rows) do
      local b = r.timestamp // 300 * 300
      sums[b] = (sums[b] or 0) + r.duration
      counts[b] = (counts[b] or 0) + 1
    end
    local n = 0
    for _, r in ipairs(rows) do
      n = n + 1
      assert.equal(counts[r.timestamp], r.count_)
      assert.near(sums[r.timestamp] / counts[r.timestamp], r.avg_duration, 1e-9)
    end
    local buckets = 0
    for _ in pairs(counts) do buckets = buckets + 1 end
    assert.equal(buckets, n)
  end)

  it("summarize sum, min, max, dcount, countif, percentile(s) with names", function()
    local rows, columns = run("requests | summarize total = sum(duration), min(duration), max(duration), "
      .. "dcount(operation_Name), failed = countif(success == false), percentile(duration, 95), "
      .. "percentiles(duration, 50, 99)")
    assert.same({"total:real", "min_duration:real", "max_duration:real", "dcount_operation_Name:long",
      "failed:long", "percentile_duration_95:real", "percentile_duration_50:real", "percentile_duration_99:real"},
      names(columns))
    local d, sum, seen, ops, failed = {}, 0, {}, 0, 0
    for i, r in ipairs(T.requests.rows) do
      d[i] = r.duration
      sum = sum + r.duration
      if not seen[r.operation_Name] then seen[r.operation_Name] = true; ops = ops + 1 end
      if not r.success then failed = failed + 1 end
    end
    table.sort(d)
    local function nearest(p) return d[math.ceil(p / 100 * #d)] end
    local r = rows[1]
    assert.near(sum, r.total, 1e-6)
    assert.equal(d[1], r.min_duration)
    assert.equal(d[#d], r.max_duration)
    assert.equal(ops, r.dcount_operation_Name)
    assert.equal(failed, r.failed)
    assert.equal(nearest(95), r.percentile_duration_95)
    assert.equal(nearest(50), r.percentile_duration_50)
    assert.equal(nearest(99), r.percentile_duration_99)
  end)

  it("extend, project, take/limit, count", function()
    local rows, columns = run("requests | extend seconds = duration / 1000 | project name, seconds | take 5")
    assert.same({"name:string", "seconds:real"}, names(columns))
    assert.equal(5, #rows)
    for i, r in ipairs(rows) do
      assert.equal(T.requests.rows[i].name, r.name)
      assert.near(T.requests.rows[i].duration / 1000, r.seconds, 1e-12)
      assert.is_nil(r.duration)
    end
    assert.equal(3, #run("requests | limit 3"))
    assert.same({{Count = #T.exceptions.rows}}, (run("exceptions | count")))
  end)

  it("top n by, order by / sort by asc and desc", function()
    local rows = run("requests | top 3 by duration")
    local d = {}
    for i, r in ipairs(T.requests.rows) do d[i] = r.duration end
    table.sort(d, function(a, b) return a > b end)
    assert.same({d[1], d[2], d[3]}, {rows[1].duration, rows[2].duration, rows[3].duration})
    rows = run("requests | order by duration asc | take 2")
    assert.same({d[#d], d[#d - 1]}, {rows[1].duration, rows[2].duration})
    rows = run("requests | sort by timestamp | take 1")
    assert.equal(T.requests.rows[#T.requests.rows].timestamp, rows[1].timestamp)
  end)

  it("render is ignored; run() gives ISO datetimes and JSON-ready rows", function()
    local t = kql.run("performanceCounters | where name == 'Memory' | render timechart", T, {now = NOW})
    local want = filter(T.performanceCounters.rows, function(r) return r.name == "Memory" end)
    assert.equal(#want, #t.rows)
    assert.equal("PrimaryResult", t.name)
    assert.equal("timestamp", t.columns[1].name)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", t.rows[1][1])
    assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", want[1].timestamp), t.rows[1][1])
  end)

  it("unsupported operators and functions raise errors naming them", function()
    local cases = {
      ["requests | join (exceptions) on operation_Id"] = "unsupported operator 'join'",
      ["requests | mv-expand x"] = "unsupported operator 'mv-expand'",
      ["requests | project-away name"] = "unsupported operator 'project-away'",
      ["requests | order by name nulls first"] = "unsupported clause 'nulls first/last'",
      ["requests | where strcmp(name, 'x') == 0"] = "unsupported function 'strcmp'",
      ["requests | summarize stdev(duration)"] = "unsupported aggregation function 'stdev'",
      ["requests | where nosuch > 1"] = "unknown column 'nosuch'",
      ["nosuch | take 1"] = "unknown table 'nosuch'",
      ["requests | where avg(duration) > 1"] = "only valid in summarize",
      ["let x = 1; requests"] = "unsupported statement 'let'",
    }
    for q, msg in pairs(cases) do
      local ok, err = pcall(run, q)
      assert.is_false(ok, q)
      assert.equal("usage", err.kind, q)
      assert.truthy(tostring(err.message):find(msg, 1, true), q .. " -> " .. tostring(err.message))
    end
  end)
end)
