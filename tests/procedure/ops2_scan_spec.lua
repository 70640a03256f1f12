-- scan-manifests (kubesec-style rules, on files and on live objects of the Kubernetes twin) and
-- scan-images (trivy when installed, a clear message otherwise), run as procedures through the CLI.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")
local scan = require("opsh.ops.scan")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/procedure"
local root = here .. "/../.."

local BAD = [[
apiVersion: apps/v1
kind: Deployment
metadata: {name: scan-bad, namespace: production}
spec:
  selector: {matchLabels: {app: scan-bad}}
  template:
    metadata: {labels: {app: scan-bad}}
    spec:
      hostNetwork: true
      volumes:
      - name: sock
        hostPath: {path: /var/run/docker.sock}
      containers:
      - name: app
        image: nginx:1.25
        securityContext:
          privileged: true
          allowPrivilegeEscalation: true
          capabilities: {add: [SYS_ADMIN]}
]]

local GOOD = [[
apiVersion: apps/v1
kind: Deployment
metadata: {name: scan-good, namespace: production}
spec:
  selector: {matchLabels: {app: scan-good}}
  template:
    metadata: {labels: {app: scan-good}}
    spec:
      serviceAccountName: scan-good
      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: nginx:1.25
        resources: {limits: {cpu: 500m, memory: 256Mi}, requests: {cpu: 100m, memory: 128Mi}}
        securityContext:
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
]]

-- a pod with limits on one container but not the other, running as root, in a List
local MIXED = json.encode({kind = "List", apiVersion = "v1", items = {
  {apiVersion = "v1", kind = "Pod", metadata = {name = "mixed"}, spec = {
    securityContext = {runAsUser = 0},
    containers = {
      {name = "a", image = "x", resources = {limits = {cpu = "1", memory = "1Gi"}}},
      {name = "b", image = "y", securityContext = {capabilities = {drop = {"NET_RAW"}}}},
    }}},
  {apiVersion = "v1", kind = "Service", metadata = {name = "svc"}, spec = {}},
}})

local function opsh(args, env_add)
  local argv = {runtime.exe()}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return proc.run{argv = argv, env_add = env_add, check = false, timeout = 60}
end

local function by_name(list)
  local t = {}
  for _, r in ipairs(list) do t[r.name] = r end
  return t
end

describe("scan-manifests on files", function()
  local dir
  setup(function()
    dir = fs.tmpdir("opsh-scan-spec-")
    fs.mkdir(dir .. "/m")
    fs.write(dir .. "/m/a-bad.yaml", BAD .. "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")
    fs.write(dir .. "/m/b-good.yml", GOOD)
    fs.write(dir .. "/m/c-mixed.json", MIXED)
    fs.write(dir .. "/m/notes.txt", "not a manifest")
  end)
  teardown(function() fs.rmtree(dir) end)

  it("scores known values: critical rules subtract, advice rules add only when every container passes", function()
    local r = opsh({"run", root .. "/scripts/scan-manifests.lua", "--path", dir .. "/m", "-o", "json"})
    assert.are.equal(3, r.code, r.stderr)   -- critical findings are problems
    local rows = by_name(json.decode(r.stdout))
    -- privileged -30, SYS_ADMIN -30, hostNetwork -9, hostPath -9, docker.sock -9, escalation -7
    assert.are.equal(-94, rows["scan-bad"].score)
    assert.are.equal(6, rows["scan-bad"].critical)
    -- nonroot 1, uid 1, ro root 1, limits 2, requests 2, drop any 1, drop ALL 1, SA 3, seccomp 1
    assert.are.equal(13, rows["scan-good"].score)
    assert.are.equal(0, rows["scan-good"].critical)
    -- root UID -7; limits only on one container (0); drop on one container only (0)
    assert.are.equal(-7, rows.mixed.score)
    assert.are.equal(3, #json.decode(r.stdout))    -- the ConfigMap and the Service carry no pod template
    local advice = {}
    for _, f in ipairs(rows["scan-bad"].findings) do advice[f.rule] = f.advice end
    assert.matches("privileged: false", advice.Privileged, 1, true)
    assert.truthy(r.stderr:find("scan-bad has 6 critical", 1, true), r.stderr)
  end)

  it("exits 0 for a clean workload and 3 below --min-score", function()
    local ok = opsh({"run", root .. "/scripts/scan-manifests.lua", "--path", dir .. "/m/b-good.yml"})
    assert.are.equal(0, ok.code, ok.stderr)
    assert.truthy(ok.stdout:find("scan-good", 1, true))
    assert.truthy(ok.stdout:find("ServiceAccountName", 1, true))
    local low = opsh({"run", root .. "/scripts/scan-manifests.lua", "--path", dir .. "/m/b-good.yml", "--min-score", "14"})
    assert.are.equal(3, low.code, low.stderr)
    assert.truthy(low.stderr:find("scores 13, below 14", 1, true), low.stderr)
  end)

  it("says which file is missing", function()
    local r = opsh({"run", root .. "/scripts/scan-manifests.lua", "--path", dir .. "/nope.yaml"})
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("no such file: " .. dir .. "/nope.yaml", 1, true), r.stderr)
    assert.is_nil(r.stderr:find("traceback", 1, true))
  end)

  it("unwraps CronJob templates and merges the pod's securityContext into each container", function()
    local cj = scan.scan({kind = "CronJob", metadata = {name = "cj"}, spec = {jobTemplate = {spec = {template = {
      spec = {securityContext = {runAsNonRoot = true}, containers = {{name = "c", image = "x"}}}}}}}})
    assert.are.equal(1, cj.score)
    assert.is_nil(scan.scan({kind = "Secret", metadata = {name = "s"}}))
  end)
end)

describe("scan-images", function()
  local dir
  setup(function()
    dir = fs.tmpdir("opsh-scan-img-")
    fs.mkdir(dir .. "/bin")
    fs.write(dir .. "/bin/trivy", [[#!/bin/sh
for a in "$@"; do img="$a"; done
echo "$@" >> "$(dirname "$0")/calls"
case "$img" in
  *bad*) echo '{"Results":[{"Vulnerabilities":[{"Severity":"CRITICAL"},{"Severity":"HIGH"},{"Severity":"HIGH"},{"Severity":"LOW"}]}]}';;
  *broken*) echo "FATAL unable to find the image" >&2; exit 1;;
  *) echo '{"Results":[{"Vulnerabilities":null}]}';;
esac
]], {mode = tonumber("755", 8)})
  end)
  teardown(function() fs.rmtree(dir) end)

  it("says clearly that trivy is missing, in one line, exit 1", function()
    local r = opsh({"run", root .. "/scripts/scan-images.lua", "--image", "a/bad:1"}, {PATH = "/usr/bin:/bin"})
    assert.are.equal(1, r.code)
    assert.truthy(r.stderr:find("trivy is not installed", 1, true), r.stderr)
    assert.is_nil(r.stderr:find("traceback", 1, true))
  end)

  it("counts vulnerabilities per severity and fails on --fail-on", function()
    local path = dir .. "/bin:/usr/bin:/bin"
    local r = opsh({"run", root .. "/scripts/scan-images.lua", "--image", "a/bad:1,a/good:2,a/broken:3", "-o", "json"},
      {PATH = path})
    assert.are.equal(3, r.code, r.stderr)
    local rows = {}
    for _, row in ipairs(json.decode(r.stdout)) do rows[row.image] = row end
    assert.are.same({1, 2, 0, 1, "fail"}, {rows["a/bad:1"].CRITICAL, rows["a/bad:1"].HIGH, rows["a/bad:1"].MEDIUM,
      rows["a/bad:1"].LOW, rows["a/bad:1"].status})
    assert.are.equal("ok", rows["a/good:2"].status)
    assert.are.equal("scan failed", rows["a/broken:3"].status)
    assert.truthy(r.stderr:find("unable to find the image", 1, true), r.stderr)
    local good = opsh({"run", root .. "/scripts/scan-images.lua", "--image", "a/good:2"}, {PATH = path})
    assert.are.equal(0, good.code, good.stderr)
    local none = opsh({"run", root .. "/scripts/scan-images.lua", "--image", "a/bad:1", "--fail-on", "NONE"}, {PATH = path})
    assert.are.equal(0, none.code, none.stderr)
  end)

  it("refuses an image reference that would read as an option", function()
    local r = opsh({"run", root .. "/scripts/scan-images.lua", "--image=--output=/tmp/x"}, {PATH = dir .. "/bin:/usr/bin:/bin"})
    assert.are.equal(2, r.code, r.stderr)
    assert.is_nil(fs.exists(dir .. "/bin/calls") and fs.read(dir .. "/bin/calls"):find("output", 1, true))
  end)
end)

describe("scan-manifests and scan-images on the live twin cluster", function()
  local dir, c
  lazy_setup(function()
    dir = fs.tmpdir("opsh-scan-twin-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    c = P.k8s(dir)
    c:apply(BAD)
    c:apply(GOOD)
    fs.mkdir(dir .. "/bin")
    fs.write(dir .. "/bin/trivy", "#!/bin/sh\nfor a in \"$@\"; do img=\"$a\"; done\necho \"$img\" >> \"$(dirname \"$0\")/calls\"\n"
      .. "echo '{\"Results\":[]}'\n", {mode = tonumber("755", 8)})
  end)
  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("scores the live Deployments as it scores their files", function()
    local r = opsh({"--env", "twin", "run", root .. "/scripts/scan-manifests.lua", "--namespace", "production", "-o", "json"},
      {OPSH_TWIN_DIR = dir})
    assert.are.equal(3, r.code, r.stderr)
    local rows = by_name(json.decode(r.stdout))
    assert.are.equal(-94, rows["scan-bad"].score)
    assert.are.equal(13, rows["scan-good"].score)
    for _, row in pairs(rows) do assert.are.equal("production", row.namespace) end
  end)

  it("scans each image of the live workloads once", function()
    local r = opsh({"--env", "twin", "run", root .. "/scripts/scan-images.lua", "--namespace", "production", "-o", "json"},
      {OPSH_TWIN_DIR = dir, PATH = dir .. "/bin:/usr/bin:/bin"})
    assert.are.equal(0, r.code, r.stderr)
    local images, seen = json.decode(r.stdout), {}
    for _, row in ipairs(images) do
      assert.is_nil(seen[row.image]); seen[row.image] = true
    end
    assert.truthy(seen["nginx:1.25"])
    local calls = {}
    for line in fs.read(dir .. "/bin/calls"):gmatch("[^\n]+") do calls[#calls + 1] = line end
    assert.are.equal(#images, #calls)
  end)
end)
