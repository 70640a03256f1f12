-- The real kubectl (1.32, through the Google Cloud SDK's version dispatcher) against the Kubernetes twin:
-- every runbook form that talks to an API server, each with its expected effect, each run with a fresh
-- HOME (kubectl caches discovery there). What kubectl changes the twin's store holds, and what is changed
-- through the store or a raw API call kubectl sees.
local fs = require("opsh.fs")
local http = require("opsh.http")
local json = require("opsh.json")
local proc = require("opsh.proc")
local twin = require("opsh.twin")
local yaml = require("opsh.yaml")

local NS = "production"

describe("kubectl against the Kubernetes twin", function()
  local dir, kubeconfig, client, home

  local function kubectl(...)
    local r = proc.run({argv = {"kubectl", ...}, env_add = {HOME = home, KUBECONFIG = kubeconfig, KUBECACHEDIR = false},
      check = false, timeout = 90})
    return r
  end

  local function ok(...)
    local r = kubectl(...)
    assert(r.code == 0, "kubectl " .. table.concat({...}, " ") .. " exited " .. tostring(r.code) .. ": " .. tostring(r.stderr))
    return r.stdout, r.stderr
  end

  local function lines(s)
    local t = {}
    for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
    return t
  end

  local function pods(label)
    local items = {}
    for _, it in ipairs(client:list("k8s.production.pods")) do
      local o = it.object
      if not label or (o.metadata.labels or {}).app == label then items[#items + 1] = o end
    end
    return items
  end

  local function wait_for(what, fn, seconds)
    local deadline = require("opsh.time").monotonic() + (seconds or 30)
    while true do
      local v = fn()
      if v then return v end
      assert(require("opsh.time").monotonic() < deadline, "timed out waiting for " .. what)
      require("opsh").sleep(0.2)
    end
  end

  setup(function()
    dir = fs.tmpdir("opsh-k8s-kubectl-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    for _, kv in ipairs(twin.shell_exports(dir)) do if kv[1] == "KUBECONFIG" then kubeconfig = kv[2] end end
    client = twin.client(dir)
    client:put("k8s.knobs", "all", {pod_start_seconds = 0.5})
  end)

  teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  before_each(function() home = fs.tmpdir("opsh-kubectl-home-") end)
  after_each(function() fs.rmtree(home) end)

  it("exports a KUBECONFIG with both clusters, a certificate user and a token user", function()
    assert.are.equal(dir .. "/api/k8s/kubeconfig", kubeconfig)
    assert.are.equal(tonumber("600", 8), fs.stat(kubeconfig).mode & tonumber("777", 8))
    local out = ok("config", "get-contexts", "-o", "name")
    for _, c in ipairs({"aks-legal-production", "aks-legal-production-token", "aks-legal-production-secondary",
        "aks-legal-production-secondary-token"}) do
      assert.truthy(out:find(c .. "\n", 1, true), c)
    end
    local v = json.decode((ok("version", "-o", "json")))
    assert.are.equal("32", v.serverVersion.minor)
    local env = twin.environment(dir)
    assert.are.equal(kubeconfig, env.aks.kubeconfig)
    assert.are.equal("aks-legal-production", env.aks.context)
  end)

  it("answers 401 to a request without a client certificate or the token", function()
    local bad = dir .. "/bad-kubeconfig"
    local cfg = yaml.decode(fs.read(kubeconfig))
    cfg.users[2].user.token = "not-the-token"
    cfg["current-context"] = "aks-legal-production-token"
    fs.write(bad, yaml.encode(cfg))
    local r = proc.run({argv = {"kubectl", "get", "pods", "-n", NS}, env_add = {HOME = home, KUBECONFIG = bad}, check = false, timeout = 60})
    assert.are_not.equal(0, r.code)
    assert.truthy(r.stderr:find("You must be logged in to the server", 1, true), r.stderr)
    assert.truthy(ok("--context", "aks-legal-production-token", "get", "pods", "-n", NS):find("web-", 1, true))
  end)

  it("get pods: table, --no-headers, -o wide, -o yaml, --all-namespaces, --field-selector, -l", function()
    local out = ok("get", "pods", "-n", NS)
    local l = lines(out)
    assert.truthy(l[1]:find("^NAME%s+READY%s+STATUS%s+RESTARTS%s+AGE"), l[1])
    assert.truthy(out:find("OOMKilled", 1, true))
    assert.truthy(out:find("Completed", 1, true))
    local no_headers = lines((ok("get", "pods", "-n", NS, "--no-headers")))
    assert.are.equal(#l - 1, #no_headers)
    assert.falsy(no_headers[1]:find("^NAME"))
    local running = 0
    for _, x in ipairs(no_headers) do if x:find(" Running ") then running = running + 1 end end
    assert.are.equal(14, running)
    assert.truthy(ok("get", "pods", "-n", NS, "-o", "wide"):find("NODE%s+NOMINATED NODE"))
    local doc = yaml.decode((ok("get", "pods", "-n", NS, "-o", "yaml")))
    assert.are.equal("List", doc.kind)
    assert.are.equal(#no_headers, #doc.items)
    local all = ok("get", "pods", "--all-namespaces")
    assert.truthy(all:find("^NAMESPACE%s+NAME"))
    assert.truthy(all:find("\nproduction%s+web%-"))
    local failed = lines((ok("get", "pods", "-n", NS, "--field-selector", "status.phase=Failed", "--no-headers")))
    assert.are.equal(2, #failed)
    local web = lines((ok("get", "pods", "-n", NS, "-l", "app=web", "--no-headers")))
    for _, x in ipairs(web) do assert.truthy(x:find("^web%-"), x) end
    local r = kubectl("get", "pods", "-n", NS, "--field-selector", "spec.foo=bar")
    assert.are_not.equal(0, r.code)
    assert.truthy(r.stderr:find("field label not supported: spec.foo", 1, true), r.stderr)
  end)

  it("top nodes and top pods --sort-by=cpu|memory from metrics.k8s.io", function()
    local nodes = lines((ok("top", "nodes")))
    assert.truthy(nodes[1]:find("^NAME%s+CPU%(cores%)%s+CPU%(%%%)%s+MEMORY%(bytes%)"), nodes[1])
    assert.are.equal(6 + 1, #nodes)
    for _, sort in ipairs({{"cpu", 2, "m$"}, {"memory", 3, "Mi$"}}) do
      local rows = lines((ok("top", "pods", "-n", NS, "--sort-by=" .. sort[1])))
      local prev = math.huge
      for i = 2, #rows do
        local cols = {}
        for c in rows[i]:gmatch("%S+") do cols[#cols + 1] = c end
        local v = tonumber((cols[sort[2]]:gsub("%a+$", "")))
        assert.is_true(v <= prev, sort[1] .. " not sorted: " .. rows[i])
        prev = v
      end
      assert.truthy(rows[2]:find("^ai%-service"), rows[2])
    end
  end)

  it("get hpa, -o yaml, patch hpa (merge and the runbook's strategic form)", function()
    local out = ok("get", "hpa", "-n", NS)
    assert.truthy(out:find("web%-hpa%s+Deployment/web%s+cpu: 45%%/70%%%s+3%s+10"), out)
    local doc = yaml.decode((ok("get", "hpa", "-n", NS, "-o", "yaml")))
    assert.are.equal("autoscaling/v2", doc.items[1].apiVersion)
    ok("patch", "hpa", "web-hpa", "-n", NS, "-p", '{"spec":{"minReplicas":5,"maxReplicas":20}}')
    local h = client:get("k8s.production.horizontalpodautoscalers", NS .. "/web-hpa")
    assert.are.equal(5, h.spec.minReplicas)
    assert.are.equal(20, h.spec.maxReplicas)
    ok("patch", "hpa", "web-hpa", "-n", NS, "--type", "merge", "-p", '{"spec":{"minReplicas":4}}')
    assert.are.equal(4, client:get("k8s.production.horizontalpodautoscalers", NS .. "/web-hpa").spec.minReplicas)
    -- autoscaling/v2 has no targetCPUUtilizationPercentage: a real 1.32 server drops it with a warning
    local _, err = ok("patch", "hpa", "web-hpa", "-n", NS, "-p", '{"spec":{"targetCPUUtilizationPercentage":60}}')
    assert.truthy(err:find('unknown field "spec.targetCPUUtilizationPercentage"', 1, true), err)
    assert.are.equal(70, client:get("k8s.production.horizontalpodautoscalers", NS .. "/web-hpa").spec.metrics[1].resource.target.averageUtilization)
    -- through autoscaling/v1 the field exists
    ok("patch", "horizontalpodautoscalers.v1.autoscaling", "web-hpa", "-n", NS, "--type", "merge", "-p", '{"spec":{"targetCPUUtilizationPercentage":60}}')
    assert.are.equal(60, client:get("k8s.production.horizontalpodautoscalers", NS .. "/web-hpa").spec.metrics[1].resource.target.averageUtilization)
  end)

  it("scale deployment --replicas makes pods that start; get deployments shows them ready", function()
    ok("scale", "deployment/document-service", "--replicas=5", "-n", NS)
    wait_for("5 running document-service pods", function()
      local n = 0
      for _, p in ipairs(pods("document-service")) do if p.status.phase == "Running" then n = n + 1 end end
      return n == 5
    end)
    local out = wait_for("5/5 in get deployments", function()
      local o = ok("get", "deployments", "-n", NS)
      return o:find("document%-service%s+5/5%s+5%s+5") and o
    end)
    assert.truthy(out:find("^NAME%s+READY%s+UP%-TO%-DATE%s+AVAILABLE%s+AGE"))
    ok("scale", "deployment/document-service", "--replicas=2", "-n", NS)
    wait_for("2 document-service pods", function() return #pods("document-service") == 2 end)
  end)

  it("patch deployment (strategic): containers merged by name, a new ReplicaSet rolls out", function()
    local before = pods("notification-service")[1]
    ok("patch", "deployment", "notification-service", "-n", NS, "-p",
      '{"spec":{"template":{"spec":{"containers":[{"name":"notification-service","resources":{"limits":{"memory":"2Gi"}}}]}}}}')
    local d = client:get("k8s.production.deployments", NS .. "/notification-service")
    local c = d.spec.template.spec.containers[1]
    assert.are.equal("2Gi", c.resources.limits.memory)
    assert.are.equal("1", c.resources.limits.cpu)
    assert.truthy(c.image:find("notification%-service:1%.8%.3$"))
    ok("rollout", "status", "deployment/notification-service", "-n", NS, "--timeout=60s")
    local now = pods("notification-service")
    assert.are.equal(1, #now)
    assert.are_not.equal(before.metadata.name, now[1].metadata.name)
  end)

  it("delete pod --field-selector status.phase=Failed / Succeeded", function()
    local out = ok("delete", "pod", "--field-selector", "status.phase=Failed", "-n", NS)
    assert.truthy(out:find('pod "report%-job%-29011450%-x7k2p" deleted'), out)
    ok("delete", "pod", "--field-selector", "status.phase=Succeeded", "-n", NS)
    for _, p in ipairs(pods()) do
      assert.is_true(p.status.phase ~= "Failed" and p.status.phase ~= "Succeeded", p.metadata.name)
    end
    assert.are.equal("", (ok("get", "pods", "-n", NS, "--field-selector", "status.phase=Failed", "--no-headers")))
  end)

  it("rollout restart then rollout status: a new ReplicaSet whose pods replace the old ones", function()
    local old = {}
    for _, p in ipairs(pods("gateway")) do old[p.metadata.name] = true end
    assert.truthy(ok("rollout", "restart", "deployment/gateway", "-n", NS):find("deployment.apps/gateway restarted", 1, true))
    local d = client:get("k8s.production.deployments", NS .. "/gateway")
    assert.truthy(d.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"])
    local out = ok("rollout", "status", "deployment/gateway", "-n", NS, "--timeout=60s")
    assert.truthy(out:find('deployment "gateway" successfully rolled out', 1, true), out)
    local now = pods("gateway")
    assert.are.equal(3, #now)
    for _, p in ipairs(now) do
      assert.is_nil(old[p.metadata.name])
      assert.are.equal("Running", p.status.phase)
    end
    local rs = lines((ok("get", "rs", "-n", NS, "-l", "app=gateway", "--no-headers")))
    assert.are.equal(2, #rs)
  end)

  it("get pods --watch prints the new pods as a rollout makes them", function()
    local w <close> = proc.spawn({argv = {"kubectl", "get", "pods", "-n", NS, "-l", "app=task-service", "--watch"},
      env_add = {HOME = home, KUBECONFIG = kubeconfig}, stdout = "pipe", stderr = "null"})
    local seen, rows = {}, 0
    local reader = require("opsh").spawn(function()
      for line in w:lines() do
        rows = rows + 1
        local name, status = line:match("^(task%-service%-%S+)%s+%S+%s+(%S+)")
        if name then seen[#seen + 1] = status end
        if status == "Running" and rows > 4 then
          local running = 0
          for _, s in ipairs(seen) do if s == "Running" then running = running + 1 end end
          if running >= 4 then return end
        end
      end
    end)
    wait_for("the watch's first rows", function() return rows >= 3 end)
    ok("rollout", "restart", "deployment/task-service", "-n", NS)
    reader:wait(60)
    local creating = 0
    for _, s in ipairs(seen) do if s == "ContainerCreating" or s == "Pending" then creating = creating + 1 end end
    assert.is_true(creating >= 1, table.concat(seen, ","))
  end)

  it("logs: --all-containers --timestamps, --tail, with the error and slow-request lines", function()
    local name = pods("web")[1].metadata.name
    local out = ok("logs", name, "-n", NS, "--all-containers=true", "--timestamps=true")
    local l = lines(out)
    assert.is_true(#l > 100)
    assert.truthy(l[1]:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z "), l[1])
    assert.truthy(out:find("slow request", 1, true))
    assert.truthy(out:find("level=error", 1, true))
    -- read again: the same lines, though the window (the last 1,000 lines) may have moved on by a line
    -- or two when a 10-second step passed between the reads
    local again = lines(ok("logs", name, "-n", NS, "--all-containers=true", "--timestamps=true"))
    local at
    for i, line in ipairs(l) do if line == again[1] then at = i break end end
    assert.truthy(at and at <= 4, again[1])
    for i = at, #l do assert.are.equal(l[i], again[i - at + 1]) end
    assert.are.equal(5, #lines((ok("logs", name, "-n", NS, "--tail=5"))))
    assert.truthy(ok("logs", "deploy/web", "-n", NS, "--tail=1"):find("level=", 1, true))
    local oom = ok("get", "pods", "-n", NS, "--no-headers"):match("(ai%-service%-%S+)%s+0/1%s+OOMKilled")
    assert.truthy(oom)
    assert.truthy(ok("logs", oom, "-n", NS, "--previous", "--tail=1"):find("out of memory", 1, true))
    -- the runbook's `kubectl logs -n production --all-containers=true --timestamps=true` names no pod:
    -- kubectl itself refuses it, before any request
    assert.are_not.equal(0, kubectl("logs", "-n", NS, "--all-containers=true", "--timestamps=true").code)
  end)

  it("get certificate, configmap and secret -o yaml, get all, get events", function()
    local certs = ok("get", "certificate", "-n", NS)
    assert.truthy(certs:find("legal%-platform%-tls%s+True%s+legal%-platform%-tls"), certs)
    assert.truthy(certs:find("api%-legal%-platform%-tls%s+True"), certs)
    local cm = yaml.decode((ok("get", "configmap", "-n", NS, "-o", "yaml")))
    assert.are.equal("ConfigMapList", cm.kind == "List" and "ConfigMapList" or cm.kind)
    local names = {}
    for _, it in ipairs(cm.items) do names[it.metadata.name] = it end
    assert.are.equal("info", names["app-config"].data.LOG_LEVEL)
    local sec = yaml.decode((ok("get", "secret", "-n", NS, "-o", "yaml")))
    local tls = 0
    for _, it in ipairs(sec.items) do if it.type == "kubernetes.io/tls" then tls = tls + 1 end end
    assert.are.equal(2, tls)
    local all = ok("get", "all", "-n", NS)
    for _, want in ipairs({"pod/web%-", "service/gateway%s+LoadBalancer", "deployment.apps/web", "replicaset.apps/web%-",
        "horizontalpodautoscaler.autoscaling/web%-hpa"}) do
      assert.truthy(all:find(want), want)
    end
    local backup = yaml.decode((ok("get", "all", "--all-namespaces", "-o", "yaml")))
    assert.is_true(#backup.items > 30)
    local ev = ok("get", "events", "-n", NS)
    assert.truthy(ev:find("^LAST SEEN%s+TYPE%s+REASON%s+OBJECT%s+MESSAGE"))
    assert.truthy(ev:find("Warning%s+BackOff%s+pod/ai%-service"))
  end)

  it("describe pod and describe node", function()
    local name = pods("web")[1].metadata.name
    local out = ok("describe", "pod", name, "-n", NS)
    assert.truthy(out:find("Controlled By:%s+ReplicaSet/web%-"))
    assert.truthy(out:find("Status:%s+Running"))
    local node = ok("describe", "node", "aks-usernodepool-" .. (ok("get", "nodes", "-o", "name"):match("aks%-usernodepool%-(%d+%-vmss000000)")))
    assert.truthy(node:find("Ready%s+True"))
    assert.truthy(node:find("Non%-terminated Pods:"))
  end)

  it("apply -f of a manifest directory, client-side and server-side", function()
    local mdir = dir .. "/manifests"
    fs.mkdir(mdir)
    fs.write(mdir .. "/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\ndata:\n  NEW_SEARCH: \"true\"\n")
    fs.write(mdir .. "/task.yaml", yaml.encode({apiVersion = "apps/v1", kind = "Deployment", metadata = {name = "task-service"},
      spec = {replicas = 2, selector = {matchLabels = {app = "task-service"}}, template = {metadata = {labels = {app = "task-service"}},
        spec = {containers = {{name = "task-service", image = "acrlegalproduction.azurecr.io/task-service:1.8.4"}}}}}}))
    fs.write(mdir .. "/cert.yaml", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: search-tls\nspec:\n"
      .. "  secretName: search-tls\n  dnsNames: [search.legal-platform.com]\n  issuerRef: {name: letsencrypt-prod, kind: ClusterIssuer}\n")
    local out = ok("apply", "-f", mdir, "-n", NS)
    assert.truthy(out:find("configmap/feature%-flags created"), out)
    assert.truthy(out:find("deployment.apps/task%-service configured"), out)
    assert.truthy(out:find("certificate.cert%-manager.io/search%-tls created"), out)
    assert.are.equal("acrlegalproduction.azurecr.io/task-service:1.8.4",
      client:get("k8s.production.deployments", NS .. "/task-service").spec.template.spec.containers[1].image)
    out = ok("apply", "-f", mdir, "-n", NS)
    assert.truthy(out:find("configmap/feature%-flags unchanged"), out)
    fs.write(mdir .. "/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\ndata:\n  NEW_SEARCH: \"false\"\n")
    out = ok("apply", "--server-side", "-f", mdir, "-n", NS)
    assert.truthy(out:find("configmap/feature%-flags serverside%-applied"), out)
    assert.are.equal("false", client:get("k8s.production.configmaps", NS .. "/feature-flags").data.NEW_SEARCH)
  end)

  it("agrees with opsh: a change through the store or a raw API call is what kubectl sees, and the reverse", function()
    ok("scale", "deployment/integration-service", "--replicas=2", "-n", NS)
    assert.are.equal(2, client:get("k8s.production.deployments", NS .. "/integration-service").spec.replicas)
    local cfg = yaml.decode(fs.read(kubeconfig))
    local server = cfg.clusters[1].cluster.server
    local token = cfg.users[2].user.token
    http.patch(server .. "/apis/apps/v1/namespaces/production/deployments/integration-service/scale", {
      ca = dir .. "/ca/ca.pem", headers = {Authorization = "Bearer " .. token, ["Content-Type"] = "application/merge-patch+json"},
      body = '{"spec":{"replicas":3}}', retry_unsafe = false})
    assert.truthy(wait_for("3/3", function()
      local o = ok("get", "deployment", "integration-service", "-n", NS, "--no-headers")
      return o:find("integration%-service%s+3/3") and o
    end))
    client:patch("k8s.production.configmaps", NS .. "/app-config", {data = {LOG_LEVEL = "debug"}})
    assert.are.equal("debug", json.decode((ok("get", "configmap", "app-config", "-n", NS, "-o", "json"))).data.LOG_LEVEL)
  end)

  it("makes nodes follow the AKS agent pool's count in the arm collection", function()
    local platform = require("opsh.twin.platform")
    local r = platform.region("production")
    local id = platform.resource_id(r.resource_group, "Microsoft.ContainerService/managedClusters", r.aks.cluster, "agentPools", "usernodepool")
    local sys = platform.resource_id(r.resource_group, "Microsoft.ContainerService/managedClusters", r.aks.cluster, "agentPools", "systempool")
    client:put("arm", sys, {name = "systempool", properties = {count = 3, mode = "System", vmSize = "Standard_D4s_v5"}})
    client:put("arm", id, {name = "usernodepool", properties = {count = 5, mode = "User", vmSize = "Standard_D8s_v5"}})
    local out = wait_for("5 user nodes", function()
      local o = ok("get", "nodes", "--no-headers")
      local n = 0
      for _ in o:gmatch("aks%-usernodepool%-") do n = n + 1 end
      return n == 5 and o
    end)
    assert.truthy(out:find("Ready"))
    client:put("arm", id, {name = "usernodepool", properties = {count = 3, mode = "User", vmSize = "Standard_D8s_v5"}})
    wait_for("3 user nodes", function()
      local n = 0
      for _ in ok("get", "nodes", "--no-headers"):gmatch("aks%-usernodepool%-") do n = n + 1 end
      return n == 3
    end)
  end)

  it("serves the DR secondary as its own cluster", function()
    local out = ok("--context", "aks-legal-production-secondary", "get", "nodes", "--no-headers")
    assert.are.equal(4, #lines(out))
    ok("--context", "aks-legal-production-secondary", "scale", "deployment/web", "--replicas=4")
    assert.are.equal(4, client:get("k8s.secondary.deployments", NS .. "/web").spec.replicas)
    assert.are.equal(3, client:get("k8s.production.deployments", NS .. "/web").spec.replicas)
  end)
end)
