-- scan-images: vulnerability counts per image with trivy, when trivy is installed.
return {
  description = "Scan container images for vulnerabilities with trivy\n"
    .. "Replaces the runbook's `trivy image` loop (Security Operations). Images come from --image or, "
    .. "without it, from the live workloads of the environment's cluster. Needs trivy on PATH: without it "
    .. "the run stops with a one-line message saying so (exit 1). Exits 3 when an image has findings at "
    .. "or above --fail-on.",
  categories = {"security"},
  flags = {"read-only"},
  args = {
    image = {help = "images to scan; without it, the images of the live workloads", type = "list"},
    namespace = {help = "namespace of the live workloads (default: the client's)"},
    severity = {help = "severities trivy reports", type = "list", default = "CRITICAL,HIGH,MEDIUM,LOW"},
    fail_on = {help = "lowest severity that is a problem", choices = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE"},
      default = "CRITICAL"},
    timeout = {help = "per-image scan timeout", type = "duration", default = "10m"},
  },
  examples = {
    "opsh run scan-images --image myacr.azurecr.io/legal-api:1.4.2",
    "opsh --env production run scan-images --namespace legal-app --fail-on HIGH",
  },
  run = function(ctx, args)
    local opsh = require("opsh")
    local proc = require("opsh.proc")
    local json = require("opsh.json")
    local fs = require("opsh.fs")

    local trivy
    for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
      local p = dir .. "/trivy"
      local st = fs.stat(p)
      if st and st.type ~= "dir" then trivy = p; break end
    end
    if not trivy then
      opsh.raise("unavailable", "trivy is not installed (not on PATH): install it "
        .. "(https://aquasecurity.github.io/trivy/) to scan images; scan-manifests needs no tool")
    end

    local images = {}
    if args.image and #args.image > 0 then
      for _, i in ipairs(args.image) do
        if i:sub(1, 1) == "-" then opsh.raise("usage", "--image: an image reference cannot start with '-': " .. i) end
        images[#images + 1] = i
      end
    else
      local c = require("opsh.k8s").client{namespace = args.namespace}
      local scan = require("opsh.ops.scan")
      local seen = {}
      for _, item in ipairs((scan.live(c, {"deployments", "statefulsets", "daemonsets", "cronjobs"}))) do
        local spec = scan.pod_spec(item) or {}
        for _, field in ipairs({"initContainers", "containers"}) do
          for _, ct in ipairs(spec[field] or {}) do
            if ct.image and not seen[ct.image] then seen[ct.image] = true; images[#images + 1] = ct.image end
          end
        end
      end
      table.sort(images)
    end
    if #images == 0 then ctx.log.info("no images to scan"); return end

    local order = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}
    local rank = {CRITICAL = 4, HIGH = 3, MEDIUM = 2, LOW = 1, UNKNOWN = 0, NONE = 99}
    local rows = {}
    for _, image in ipairs(images) do
      local r = proc.run{argv = {trivy, "image", "--quiet", "--format", "json",
        "--severity", table.concat(args.severity, ","), image},
        check = false, read = true, stderr = "capture", timeout = args.timeout}
      local row = {image = image, CRITICAL = 0, HIGH = 0, MEDIUM = 0, LOW = 0, UNKNOWN = 0, status = "ok"}
      local ok, report = pcall(json.decode, r.stdout or "")
      if r.code ~= 0 or not ok or type(report) ~= "table" then
        row.status = "scan failed"
        ctx.problem(string.format("trivy could not scan %s (exit %s): %s", image, tostring(r.code),
          ((r.stderr or ""):gsub("%s+$", ""):match("[^\n]*$") or "no output")))
      else
        local results = type(report.Results) == "table" and report.Results or {}
        for _, res in ipairs(results) do
          local vulns = type(res.Vulnerabilities) == "table" and res.Vulnerabilities or {}
          for _, v in ipairs(vulns) do
            local sev = row[v.Severity] and v.Severity or "UNKNOWN"
            row[sev] = row[sev] + 1
          end
        end
        for _, sev in ipairs(order) do
          if row[sev] > 0 and rank[sev] >= rank[args.fail_on] then
            row.status = "fail"
            ctx.problem(string.format("%s has %d %s vulnerabilities", image, row[sev], sev))
          end
        end
      end
      rows[#rows + 1] = row
    end
    ctx.out(rows, {columns = {"image", "CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN", "status"}})
  end,
}
