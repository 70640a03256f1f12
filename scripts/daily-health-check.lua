-- daily-health-check: the runbook's morning health check, seven checks at once, each with a verdict.
return {
  description = "Daily health check: cluster, pods, usage, database, exceptions, certificates, HPAs (runbook: Daily Operations)",
  categories = {"daily"},
  flags = {"read-only"},
  args = {},
  run = function(ctx)
    local health = require("opsh.ops.health")
    local results = health.run(ctx)
    ctx.out(results, {columns = {"check", "verdict", "summary", "detail"}})
    for _, r in ipairs(results) do
      if r.verdict == "fail" then ctx.problem(r.check .. ": " .. r.summary .. (r.detail and (" — " .. r.detail) or "")) end
    end
  end,
}
