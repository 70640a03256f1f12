-- metrics: the runbook's "Monitoring" metric commands as tables a person can read. App Insights requests
-- and exceptions by time bucket (azure.insights), the cluster's node CPU and the database's CPU, memory
-- and storage (Azure Monitor metrics), each series a row with its last, average and maximum and a
-- sparkline of the points. Read-only.
local azure = require("opsh.azure")

local BARS = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"}

local function sparkline(values)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do lo, hi = math.min(lo, v), math.max(hi, v) end
  local out = {}
  for i, v in ipairs(values) do
    out[i] = BARS[hi > lo and math.floor((v - lo) / (hi - lo) * 7 + 0.5) + 1 or 1]
  end
  return table.concat(out)
end

local function summary(source, metric, values)
  local sum, max = 0, nil
  for _, v in ipairs(values) do
    sum = sum + v
    max = (max == nil or v > max) and v or max
  end
  local function r(x) return x and math.floor(x * 100 + 0.5) / 100 end
  return {source = source, metric = metric, points = #values, last = r(values[#values]),
    avg = #values > 0 and r(sum / #values) or nil, max = r(max), trend = sparkline(values), values = values}
end

local function iso_minutes(s)
  local h, m = s:match("^PT(%d+)H$"), s:match("^PT(%d+)M$")
  return h and tonumber(h) * 60 or m and tonumber(m) or nil
end

return {
  description = "App Insights requests/exceptions, AKS node CPU and database CPU/memory/storage as tables "
    .. "with a sparkline (runbook: Monitoring and Alerts / metrics)",
  categories = {"monitoring"},
  flags = {"read-only"},
  args = {
    part = {help = "which views", choices = {"all", "app", "aks", "database"}, default = "all"},
    since = {help = "how far back", type = "duration", default = "1h"},
    interval = {help = "the bucket (ISO 8601: PT5M, PT1H)", default = "PT5M"},
  },
  run = function(ctx, args)
    local env = ctx.env
    local minutes = iso_minutes(args.interval)
    if not minutes then require("opsh").raise("usage", "--interval must be PT<n>M or PT<n>H") end
    local rows = {}
    local want = function(p) return args.part == "all" or args.part == p end

    if want("app") then
      local app = azure.insights(env)
      local ago = string.format("ago(%ds)", args.since)
      local req = ctx.step("App Insights requests", function()
        return app:query("requests | where timestamp > " .. ago .. " | summarize n = count(), d = avg(duration) by bin(timestamp, "
          .. minutes .. "m) | order by timestamp asc")
      end)
      local counts, durations = {}, {}
      for _, r in ipairs(req) do
        counts[#counts + 1], durations[#durations + 1] = tonumber(r.n) or 0, tonumber(r.d) or 0
      end
      rows[#rows + 1] = summary("appinsights", "requests", counts)
      rows[#rows + 1] = summary("appinsights", "request duration ms", durations)
      local ex = ctx.step("App Insights exceptions", function()
        return app:query("exceptions | where timestamp > " .. ago .. " | summarize n = count() by bin(timestamp, "
          .. minutes .. "m) | order by timestamp asc")
      end)
      local ec = {}
      for _, r in ipairs(ex) do ec[#ec + 1] = tonumber(r.n) or 0 end
      rows[#rows + 1] = summary("appinsights", "exceptions", ec)
    end

    local function monitor(source, id, names)
      local doc = azure.monitor.metrics{env = env, resource = id, metrics = names, timespan = args.since,
        interval = args.interval, aggregation = "Average"}
      for _, m in ipairs(doc.value or {}) do
        local values, first, last = {}, nil, nil
        for _, p in ipairs(((m.timeseries or {})[1] or {}).data or {}) do
          if p.average then
            values[#values + 1] = p.average
            first, last = first or p.timeStamp, p.timeStamp
          end
        end
        local row = summary(source, m.name and m.name.value or "?", values)
        row.from, row.to = first, last
        rows[#rows + 1] = row
      end
    end
    if want("aks") then
      ctx.step("AKS node CPU", function()
        monitor(env.aks.cluster, azure.aks.get{env = env}.id, {"node_cpu_usage_percentage"})
      end)
    end
    if want("database") then
      ctx.step("database CPU, memory, storage", function()
        monitor(env.postgres.server, azure.postgres.get{env = env}.id, {"cpu_percent", "memory_percent", "storage_percent"})
      end)
    end
    ctx.out(rows, {columns = {"source", "metric", "points", "last", "avg", "max", "trend"}})
  end,
}
