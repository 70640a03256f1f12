-- dr-failover: the runbook's Failover to Secondary Region, checked before the one step that cannot be
-- undone and measured against the runbook's RPO/RTO table. The runbook switches DNS first and deploys
-- last, so traffic reaches a region that is not serving yet; here everything is read and checked first
-- (replica, lag, Key Vault, the secondary cluster, its ingress, the DNS record), then the replica is
-- promoted, the connection string repointed, the workloads applied to the secondary cluster and waited
-- for, and only then the public record switched.
return {
  description = "Fail over to the secondary region: promote the replica, repoint Key Vault, run the "
    .. "workloads on the secondary cluster, switch DNS; RPO and RTO reported against the runbook's targets "
    .. "(runbook: Disaster Recovery)",
  categories = {"recovery"},
  flags = {"destructive"},
  args = {
    to = {help = "the environment to fail over to (default: the environment's `secondary`)"},
    ingress = {help = "the secondary cluster's LoadBalancer Service whose address the DNS record gets",
      default = "gateway"},
    manifests = {help = "files or directories of the workloads to run on the secondary cluster (default: "
      .. "read live from the failing cluster; give this when it cannot be read)", type = "list"},
    url_secret = {help = "the Key Vault secret holding the database connection string ('' to leave it)",
      default = "database-url"},
    max_lag = {help = "refuse to promote a replica further behind than this (the RPO it would give)",
      type = "duration", default = "5m"},
    force = {help = "promote even when the replica is further behind than --max-lag", type = "boolean"},
    timeout = {help = "how long to wait for each workload on the secondary cluster", type = "duration",
      default = "20m"},
  },
  examples = {"opsh --env production run dr-failover --dry-run",
    "opsh --env production run dr-failover --yes",
    "opsh --env production run dr-failover --manifests=backup/production --yes"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local core = require("opsh._core")
    local azure = require("opsh.azure")
    local k8s = require("opsh.k8s")
    local dr = require("opsh.ops.dr")
    local scan = require("opsh.ops.scan")
    local dryrun = require("opsh.dryrun").active()
    local started = core.hrtime()
    local src = ctx.env
    local to = args.to or src.secondary
    if not to then opsh.raise("usage", string.format("environment '%s' names no secondary; pass --to ENV", src.name)) end
    if to == src.name then opsh.raise("usage", "--to names the environment being failed over itself") end
    local dst = require("opsh.env").load(to)
    local dns = src.dns or {}
    if not (dns.zone and dns.record) then
      opsh.raise("usage", string.format("environment '%s' has no dns.zone and dns.record: the public record "
        .. "cannot be switched", src.name))
    end
    local server, primary = dst.postgres.server, src.postgres.server
    ctx.lock({"postgres:" .. primary, "postgres:" .. server, "dns:" .. dns.zone .. "/" .. (dns.record == "@" and "apex" or dns.record)}, {wait = 60})

    -- everything is read and checked before the promotion
    local plan = ctx.step("check the replica, Key Vault, the secondary cluster and DNS", function()
      local p = {}
      local replica = azure.postgres.get{env = dst, server = server}
      if replica.properties.state ~= "Ready" then
        opsh.raise("conflict", string.format("%s is %s, not Ready", server, tostring(replica.properties.state)))
      end
      local role = tostring(replica.properties.replicationRole or "")
      p.promote = role:lower():find("replica", 1, true) ~= nil
      p.replication = dr.replication(src, dst)
      if p.promote then
        local lag = p.replication.lag_seconds
        if lag == nil and not args.force then
          opsh.raise("conflict", string.format("how far %s is behind %s cannot be measured (%s, and it has not "
            .. "heard from it since it started); pass --force to promote anyway", server, primary,
            p.replication.primary_reachable and string.format("%d bytes not received", p.replication.behind_bytes or 0)
            or "the primary is unreachable"))
        end
        if lag and lag > args.max_lag and not args.force then
          opsh.raise("conflict", string.format("%s is %s behind %s (more than --max-lag %s); promoting it loses "
            .. "that much: pass --force to go on", server, dr.duration(lag), primary, dr.duration(args.max_lag)))
        end
      elseif p.replication.in_recovery then
        opsh.raise("conflict", string.format("%s is in recovery but Azure calls it %s", server, role))
      end
      p.option = p.replication.primary_reachable and "planned" or "forced"
      if args.url_secret ~= "" then
        p.vault = azure.keyvault(src)
        local current, info = p.vault:get(args.url_secret, {missing = "nil"})
        p.url_before, p.url_version = current, info and info.version
        p.url = dr.repointed_url(current, dst)
      end
      p.kube = k8s.client{kubeconfig = dst.aks.kubeconfig, context = dst.aks.context or dst.aks.cluster,
        namespace = dst.namespace}
      local svc = p.kube:get("services", args.ingress, {missing_ok = true})
      local lb = svc and svc.status and svc.status.loadBalancer and svc.status.loadBalancer.ingress
      p.ip = type(lb) == "table" and lb[1] and lb[1].ip
      if not p.ip then
        opsh.raise("conflict", string.format("Service %s in %s/%s has no load-balancer address to point DNS at",
          args.ingress, dst.aks.cluster, dst.namespace))
      end
      if args.manifests and #args.manifests > 0 then
        p.objects = scan.load(args.manifests)
      else
        local ok, objs = pcall(function()
          local kube = k8s.client{kubeconfig = src.aks.kubeconfig, context = src.aks.context or src.aks.cluster,
            namespace = src.namespace}
          return (scan.live(kube, dr.KINDS, {namespace = src.namespace}))
        end)
        if not ok then
          opsh.raise("unavailable", string.format("the workloads cannot be read from %s (%s); pass --manifests "
            .. "with your manifests or a k8s-backup", src.aks.cluster, core.is_error(objs) and objs.message or tostring(objs)))
        end
        p.objects = objs
      end
      p.dns_before = azure.dns.addresses(azure.dns.a_record{env = src})
      return p
    end, {target = server})
    local rep = plan.replication
    ctx.log.info(string.format("%s: %s", server, plan.promote and string.format("replica, %s%s", rep.exact
      and "nothing to lose (every byte of WAL received)" or (dr.duration(rep.lag_seconds) .. " behind (estimate)"),
      rep.unreplayed_bytes and rep.unreplayed_bytes > 0 and string.format("; %d bytes to replay", rep.unreplayed_bytes) or "")
      or "already promoted"))

    ctx.step(plan.promote and string.format("promote %s (%s)", server, plan.option)
      or string.format("promote %s: a primary already", server), function()
      if not plan.promote then return end
      azure.postgres.promote{env = dst, server = server, resource_group = dst.postgres.resource_group or dst.resource_group,
        option = plan.option}
    end, {destructive = true, target = server})
    local promoted_at = core.hrtime()
    if not dryrun then
      ctx.step("check " .. server .. " takes writes", function() dr.writable(dst, 120) end, {target = server})
    end

    local url_version = plan.url_version
    if plan.vault then
      local same = plan.url_before and core.reveal(plan.url_before) == core.reveal(plan.url)
      ctx.step(string.format("point %s in Key Vault at %s", args.url_secret, dr.url_host(plan.url)), function()
        if same then return end
        local info = plan.vault:set(args.url_secret, plan.url, {content_type = "text/plain"})
        url_version = info.version or url_version
      end, {target = args.url_secret, undo = plan.url_before and function()
        plan.vault:set(args.url_secret, plan.url_before, {content_type = "text/plain"})
      end or nil})
    end

    local docs = dr.workloads(plan.objects, dst.namespace, url_version)
    local deployments = {}
    ctx.step(string.format("apply %d workload object(s) to %s", #docs, dst.aks.cluster), function()
      for _, doc in ipairs(docs) do
        local rec = plan.kube:resource(doc.kind, doc.apiVersion)
        local have = plan.kube:get(rec, doc.metadata.name, {namespace = dst.namespace, missing_ok = true})
        local ann = have and have.metadata and have.metadata.annotations or {}
        if ann[dr.DIGEST] ~= doc.metadata.annotations[dr.DIGEST] then
          plan.kube:apply(doc, {field_manager = "opsh-dr", namespace = dst.namespace})
        end
        if doc.kind == "Deployment" then deployments[#deployments + 1] = doc.metadata.name end
      end
    end, {target = dst.aks.cluster})
    if not dryrun then
      ctx.step(string.format("wait for %d deployment(s) on %s", #deployments, dst.aks.cluster), function()
        local tasks = {}
        for _, d in ipairs(deployments) do
          tasks[#tasks + 1] = opsh.spawn(function() plan.kube:rollout_status(d, {timeout = args.timeout}) end)
        end
        for _, t in ipairs(tasks) do t:wait() end
      end, {target = dst.aks.cluster})
    end

    local record = dns.record == "@" and dns.zone or (dns.record .. "." .. dns.zone)
    ctx.step(string.format("point %s at %s", record, plan.ip), function()
      if #plan.dns_before == 1 and plan.dns_before[1] == plan.ip then return end
      azure.dns.set_a_record{env = src, ips = {plan.ip}}
    end, {target = record, undo = #plan.dns_before > 0 and function()
      azure.dns.set_a_record{env = src, ips = plan.dns_before}
    end or nil})

    local rto = core.hrtime() - started
    local rows = {}
    for _, component in ipairs({"Database", "Full DR Failover"}) do
      local t = dr.target(component)
      local met = (rep.lag_seconds or math.huge) <= t.rpo and rto <= t.rto
      if not plan.promote then met = rto <= t.rto end
      rows[#rows + 1] = {component = component,
        rpo = plan.promote and (dr.duration(rep.lag_seconds) .. (rep.exact and "" or " (estimate)")) or "(promoted before)",
        rpo_target = dr.duration(t.rpo), rto = dr.duration(rto), rto_target = dr.duration(t.rto),
        verdict = dryrun and "(dry run)" or (met and "met" or "MISSED")}
      if not dryrun and not met then
        ctx.problem(string.format("%s: RPO %s / RTO %s misses the runbook's %s / %s", component, rows[#rows].rpo,
          rows[#rows].rto, rows[#rows].rpo_target, rows[#rows].rto_target))
      end
    end
    ctx.log.info(string.format("promoted after %s; healthy and DNS switched after %s",
      dr.duration(promoted_at - started), dr.duration(rto)), {behind_bytes = rep.behind_bytes})
    ctx.out(rows, {columns = {"component", "rpo", "rpo_target", "rto", "rto_target", "verdict"}})
  end,
}
