-- audit-logs: AKS audit logs to Log Analytics (diagnostic setting), and the recent kube-audit rows.
return {
  description = "Enable AKS audit logs to Log Analytics and show recent kube-audit rows\n"
    .. "Replaces the runbook's `az monitor diagnostic-settings create` for kube-audit and the audit query "
    .. "(Security Operations > Audit Logging). The diagnostic setting is written only when it is missing "
    .. "or differs (workspace, categories): a second run changes nothing. The query needs the Log "
    .. "Analytics client (azure.logs); without it the run says so and only the setting is handled.",
  categories = {"security"},
  flags = {"mutating"},
  args = {
    setting = {help = "diagnostic setting name", default = "audit-logs"},
    categories = {help = "log categories to enable", type = "list", default = "kube-audit,kube-audit-admin"},
    enable = {help = "create or update the diagnostic setting", type = "boolean", default = true},
    since = {help = "how far back to query kube-audit rows", type = "duration", default = "24h"},
    limit = {help = "rows to show", type = "integer", default = 50},
    verb = {help = "only these verbs (e.g. delete,patch)", type = "list"},
  },
  examples = {"opsh --env production run audit-logs", "opsh --env production run audit-logs --enable=false --verb delete"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local azure = require("opsh.azure")
    local envt = ctx.env
    if args.limit < 1 then opsh.raise("usage", "--limit must be at least 1") end
    if not args.setting:match("^[%w%-_]+$") then opsh.raise("usage", "--setting may hold letters, digits, - and _") end
    local cluster = ctx.step("read the AKS cluster", function() return azure.aks.get{} end, {target = envt.aks.cluster})
    local arm = azure.arm(envt)
    local path = cluster.id .. "/providers/Microsoft.Insights/diagnosticSettings/" .. args.setting
    local workspace = envt.monitor and envt.monitor.workspace

    if args.enable then
      local current = ctx.step("read diagnostic setting " .. args.setting, function()
        return arm:get(path, {api_version = azure.monitor.DIAGNOSTICS_API, missing_ok = true})
      end, {target = args.setting})
      local same = false
      if current and current.properties then
        local enabled = {}
        for _, l in ipairs(current.properties.logs or {}) do
          if l.enabled then enabled[l.category] = true end
        end
        same = tostring(current.properties.workspaceId or ""):lower() == tostring(workspace or ""):lower()
        for _, c in ipairs(args.categories) do same = same and enabled[c] == true end
      end
      ctx.step("enable " .. table.concat(args.categories, ", ") .. " to the workspace", function()
        if same then return current end
        return azure.monitor.diagnostic_setting{resource = cluster.id, name = args.setting, logs = args.categories}
      end, {target = args.setting})
    end

    local ok_logs, logs = pcall(function() return azure.logs and azure.logs(envt) end)
    if not ok_logs or not logs then
      ctx.log.warn("the kube-audit query needs the Log Analytics client (azure.logs), not in this build")
      return
    end
    local want
    if args.verb and #args.verb > 0 then
      want = {}
      for _, v in ipairs(args.verb) do want[v:lower()] = true end
    end
    local kql = 'AzureDiagnostics | where Category == "kube-audit" | order by TimeGenerated desc'
      .. (want and "" or string.format(" | take %d", args.limit)) .. " | project TimeGenerated, log_s"
    local rows = ctx.step("query kube-audit rows", function()
      return logs:query(kql, {timespan = string.format("PT%dS", math.floor(args.since))})
    end)
    local json = require("opsh.json")
    local out = {}
    for _, row in ipairs(rows) do
      local ok, ev = pcall(json.decode, row.log_s or "")
      if ok and type(ev) == "table" and (not want or want[tostring(ev.verb):lower()]) then
        local ref, user, status = ev.objectRef or {}, ev.user or {}, ev.responseStatus or {}
        out[#out + 1] = {time = row.TimeGenerated, verb = ev.verb, user = user.username,
          resource = ref.resource, namespace = ref.namespace, name = ref.name, code = status.code}
        if #out >= args.limit then break end
      end
    end
    ctx.out(out, {columns = {"time", "verb", "user", "resource", "namespace", "name", "code"}})
  end,
}
