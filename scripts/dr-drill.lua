-- dr-drill: dr-failover rehearsed on the twin, end to end, with its result checked through other paths
-- than the ones the failover used, and the twin put back as it was (`opsh twin reset`, keeping the
-- components it was started without). Production is never touched: the drill refuses any other
-- environment.
return {
  description = "Rehearse the failover on the twin: a marker written to the primary, dr-failover run, the "
    .. "result checked (marker and a write on the promoted server, Key Vault, DNS, the secondary's "
    .. "workloads), RPO/RTO reported, then the twin reset (runbook: Disaster Recovery)",
  categories = {"recovery"},
  flags = {"destructive"},
  args = {
    keep = {help = "leave the twin failed over (no reset) to look around; `opsh twin reset` puts it back",
      type = "boolean"},
    timeout = {help = "how long to wait for each workload on the secondary cluster", type = "duration",
      default = "10m"},
  },
  examples = {"opsh --env twin run dr-drill --yes", "opsh --env twin run dr-drill --keep --yes"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local core = require("opsh._core")
    local azure = require("opsh.azure")
    local k8s = require("opsh.k8s")
    local crypto = require("opsh.crypto")
    local script = require("opsh.script")
    local twin = require("opsh.twin")
    local dr = require("opsh.ops.dr")
    local rotate = require("opsh.ops.rotate")
    local dryrun = require("opsh.dryrun").active()
    local src = ctx.env
    if type(src.twin) ~= "table" or not src.twin.dir then
      opsh.raise("usage", string.format("dr-drill rehearses on the twin only (--env twin), and resets what it "
        .. "fails over; '%s' is not a twin: run dr-failover there", src.name))
    end
    if not src.secondary then opsh.raise("usage", string.format("environment '%s' names no secondary", src.name)) end
    local dst = require("opsh.env").load(src.secondary)

    local token = "drill-" .. os.date("!%Y%m%dT%H%M%SZ") .. "-" .. crypto.hex_encode(crypto.random_bytes(4))
    ctx.step("write marker " .. token .. " to " .. src.postgres.server, function()
      local c <close> = rotate.admin(src)
      c:exec("CREATE TABLE IF NOT EXISTS opsh_dr_drill (token text PRIMARY KEY, written timestamptz NOT NULL DEFAULT now())")
      c:query("INSERT INTO opsh_dr_drill (token) VALUES ($1)", token)
    end, {target = src.postgres.server})

    local failover = script.load("dr-failover")
    local fargs = script.parse_args(failover, {timeout = args.timeout}, "dr-failover")
    ctx.section("failover")
    failover.run(ctx, fargs)
    if dryrun then return end

    local checks = {}
    local function check(what, fn)
      local ok, res = pcall(fn)
      local good = ok and res == true
      local detail = ok and (good and "" or tostring(res)) or (core.is_error(res) and res.message or tostring(res))
      checks[#checks + 1] = {check = what, result = good and "ok" or "FAILED", detail = detail}
      if not good then ctx.problem(string.format("drill: %s: %s", what, detail)) end
    end
    ctx.step("check the failover through other paths", function()
      check("the marker is on the promoted server", function()
        local c <close> = rotate.admin(dst)
        return #c:query("SELECT 1 FROM opsh_dr_drill WHERE token = $1", token) == 1 or "the marker is missing"
      end)
      check("the promoted server takes a write", function()
        local c <close> = rotate.admin(dst)
        c:query("INSERT INTO opsh_dr_drill (token) VALUES ($1)", token .. "-after")
        return true
      end)
      check("Key Vault's database-url names the promoted server", function()
        local url = azure.keyvault(src):get("database-url")
        local host, port = dr.host_port(dst)
        local have = dr.url_host(url)
        return have == host .. ":" .. port or ("it names " .. tostring(have))
      end)
      local kube = k8s.client{kubeconfig = dst.aks.kubeconfig, context = dst.aks.context, namespace = dst.namespace}
      check("the DNS record points at the secondary ingress", function()
        local svc = kube:get("services", "gateway")
        local ip = svc.status.loadBalancer.ingress[1].ip
        local have = azure.dns.addresses(azure.dns.a_record{env = src})
        return (#have == 1 and have[1] == ip) or ("it holds " .. table.concat(have, ","))
      end)
      check("the secondary runs the primary's deployments, all available", function()
        local prod = k8s.client{kubeconfig = src.aks.kubeconfig, context = src.aks.context, namespace = src.namespace}
        local wrong = {}
        for d in prod:iter("deployments") do
          local s = kube:get("deployments", d.metadata.name, {missing_ok = true})
          local want = d.spec.replicas
          local have = s and s.status and s.status.availableReplicas or 0
          if not s or s.spec.replicas ~= want or have ~= want then
            wrong[#wrong + 1] = string.format("%s %s/%s", d.metadata.name, tostring(have), tostring(want))
          end
        end
        return #wrong == 0 or table.concat(wrong, ", ")
      end)
    end, {target = dst.name})
    ctx.section("drill checks")
    ctx.out(checks, {columns = {"check", "result", "detail"}})

    if args.keep then
      ctx.log.info("the twin is left failed over (--keep); `opsh twin reset` puts it back")
      return
    end
    ctx.step("reset the twin", function()
      local t0 = core.hrtime()
      -- the twin's own work while it starts again is not recorded (twin.reset is quiet); the reset is
      twin.reset({dir = src.twin.dir, without = twin.left_out(src.twin.dir)})
      require("opsh.audit").record{kind = "twin", action = "twin reset " .. src.twin.dir, target = src.twin.dir,
        result = "ok"}
      ctx.log.info(string.format("twin reset in %s", dr.duration(core.hrtime() - t0)))
    end, {target = src.twin.dir})
  end,
}
