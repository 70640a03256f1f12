-- scan-manifests: kubesec-style security scoring of workload manifests, from files or the live cluster.
return {
  description = "Score Kubernetes workloads against kubesec-style security rules, with advice\n"
    .. "Replaces the runbook's `kubesec scan` (Security Operations). Rules are built in: privileged, "
    .. "SYS_ADMIN, hostNetwork/hostPID/hostIPC, hostPath, the runtime socket, allowPrivilegeEscalation, "
    .. "root UID (critical, negative points); runAsNonRoot, UID > 10000, readOnlyRootFilesystem, "
    .. "CPU/memory limits and requests, capabilities drop, service account, seccomp (positive points). "
    .. "Reads files (--path) or the live objects of the environment's cluster. Exits 3 when a workload "
    .. "has a critical finding or scores below --min-score.",
  categories = {"security"},
  flags = {"read-only"},
  args = {
    path = {help = "manifest files or directories (YAML, JSON); without it, the live cluster", type = "list"},
    namespace = {help = "namespace of the live objects (default: the client's)"},
    all_namespaces = {help = "live objects of every namespace", type = "boolean", default = false},
    min_score = {help = "a workload scoring below this is a problem", type = "integer", default = 0},
    details = {help = "list every matched rule and piece of advice", type = "boolean", default = true},
  },
  examples = {
    "opsh run scan-manifests --path k8s/",
    "opsh --env production run scan-manifests --namespace legal-app --min-score 3",
  },
  run = function(ctx, args)
    local scan = require("opsh.ops.scan")
    local objects
    if args.path and #args.path > 0 then
      objects = scan.load(args.path)
    else
      local c = require("opsh.k8s").client{namespace = args.namespace}
      local skipped
      objects, skipped = scan.live(c, {"deployments", "statefulsets", "daemonsets", "cronjobs", "jobs", "pods"},
        {all_namespaces = args.all_namespaces or nil})
      for _, kind in ipairs(skipped) do ctx.log.info("the server does not serve " .. kind .. "; skipped") end
    end
    local results, findings = {}, {}
    for _, obj in ipairs(objects) do
      local r = scan.scan(obj)
      if r then
        r.source = obj._source
        results[#results + 1] = r
        for _, rule in ipairs(r.matched) do
          findings[#findings + 1] = {workload = r.kind .. "/" .. tostring(r.name), rule = rule.id,
            points = rule.points, matched = true, why = rule.reason, advice = rule.points < 0 and rule.advice or ""}
        end
        for _, rule in ipairs(r.advice) do
          if rule.points > 0 then
            findings[#findings + 1] = {workload = r.kind .. "/" .. tostring(r.name), rule = rule.id,
              points = rule.points, matched = false, why = rule.reason, advice = rule.advice}
          end
        end
        if r.critical > 0 then
          ctx.problem(string.format("%s/%s has %d critical finding(s), score %d", r.kind, r.name, r.critical, r.score))
        elseif r.score < args.min_score then
          ctx.problem(string.format("%s/%s scores %d, below %d", r.kind, r.name, r.score, args.min_score))
        end
      end
    end
    local rows = {}
    for _, r in ipairs(results) do
      rows[#rows + 1] = {kind = r.kind, namespace = r.namespace, name = r.name, score = r.score,
        critical = r.critical, advice = #r.advice, source = r.source}
    end
    if ctx.output ~= "table" then
      for i, r in ipairs(rows) do
        local list = {}
        for _, f in ipairs(findings) do
          if f.workload == r.kind .. "/" .. tostring(r.name) then list[#list + 1] = f end
        end
        rows[i].findings = list
      end
      ctx.out(rows)
      return
    end
    ctx.out(rows, {columns = {"kind", "namespace", "name", "score", "critical", "advice"}})
    if args.details and #findings > 0 then
      ctx.section("Findings")
      local shown = {}
      for _, f in ipairs(findings) do
        if f.matched or f.points > 0 then
          shown[#shown + 1] = {workload = f.workload, rule = f.rule, points = f.points,
            status = f.matched and (f.points < 0 and "CRITICAL" or "ok") or "advice",
            advice = f.matched and f.points > 0 and "" or f.advice}
        end
      end
      ctx.out(shown, {columns = {"workload", "rule", "points", "status", "advice"}})
    end
  end,
}
