-- troubleshoot-db-connections: the runbook's "Database Connection Pool Exhausted". Instead of one count
-- from inside a pod, it reads pg_stat_activity on the server by state and application, compares the total
-- with max_connections (the server's setting and Azure's parameter), and offers the runbook's two remedies
-- as commands to run; it changes nothing itself.
return {
  description = "Database connections by state and application vs max_connections, with remedies "
    .. "(runbook: Troubleshooting / Database Connection Pool Exhausted)",
  categories = {"troubleshooting"},
  flags = {"read-only"},
  args = {
    warn_percent = {help = "report a problem (exit 3) at this share of max_connections", type = "integer", default = 80},
  },
  run = function(ctx, args)
    local env = ctx.env
    local rows, max = ctx.pg():with(function(db)
      local r = db:query("SELECT coalesce(nullif(state, ''), 'background') AS state, "
        .. "coalesce(nullif(application_name, ''), '-') AS application, count(*)::int AS connections "
        .. "FROM pg_stat_activity GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")
      return r, tonumber(db:query("SELECT current_setting('max_connections')::int AS m")[1].m)
    end)
    local total = 0
    local out = {}
    for _, r in ipairs(rows) do
      total = total + r.connections
      out[#out + 1] = {state = r.state, application = r.application, connections = r.connections}
    end
    local azure_max
    local ok, p = pcall(require("opsh.azure").postgres.parameter, {env = env, name = "max_connections"})
    if ok and p and p.properties then azure_max = tonumber(p.properties.value) end
    ctx.out(out, {columns = {"state", "application", "connections"}})
    local share = total / max * 100
    if ctx.output == "table" then
      io.stdout:write(string.format("\n%d of %d connections in use (%.0f%%)%s\n", total, max, share,
        azure_max and azure_max ~= max and string.format("; Azure's parameter says %d (pending restart?)", azure_max) or ""))
    end
    if share >= args.warn_percent then
      ctx.problem(string.format("%d of %d connections in use (%.0f%%)", total, max, share))
      ctx.log.warn("remedy 1: raise max_connections (a static parameter: the server restarts): "
        .. "az postgres flexible-server parameter set --name max_connections --value " .. math.floor(max * 1.5))
      ctx.log.warn("remedy 2: a larger SKU: opsh --env " .. tostring(env.name) .. " run scale-postgres --sku=GP_Standard_D8s_v3")
    end
  end,
}
