-- opsh.k8s against the Kubernetes twin (CA + API process only): the runbook's helpers on the seeded
-- production namespace — pods by phase and reason, rollout restart and status, scale, HPA, top,
-- apply of a manifest directory, certificates, nodes, events, logs, watch, delete_collection,
-- dry-run — and kubectl seeing what opsh changed.
local opsh = require("opsh")
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local dryrun = require("opsh.dryrun")
local twin = require("opsh.twin")
local k8s = require("opsh.k8s")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/k8s"
local S = dofile(here .. "/../support/helpers.lua")

-- until the Kubernetes twin (opsh.twin.k8s, branch h-k8stwin) is merged there is nothing to talk to
if not package.searchpath("opsh.twin.k8s", package.path) and not pcall(require, "opsh.twin.k8s") then
  describe("opsh.k8s on the twin", function() pending("the Kubernetes twin (opsh.twin.k8s) is not there yet") end)
  return
end

describe("opsh.k8s on the twin", function()
  local dir, c, kubeconfig_path

  lazy_setup(function()
    dir = fs.tmpdir("opsh-k8s-twin")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    for _, kv in ipairs(twin.shell_exports(dir)) do
      if kv[1] == "KUBECONFIG" then kubeconfig_path = kv[2] end
    end
    assert.truthy(kubeconfig_path, "the twin exports KUBECONFIG")
    c = k8s.client{kubeconfig = kubeconfig_path, namespace = "production", cache_dir = dir .. "/cache"}
  end)

  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  local function kubectl(...)
    local r = proc.run{argv = {"kubectl", ...}, env_add = {KUBECONFIG = kubeconfig_path, HOME = dir},
      check = false, timeout = 60, read = true}
    assert.are.equal(0, r.code, r.stderr)
    return r.stdout
  end

  it("lists the seeded deployments, discovers aggregated, maps short names", function()
    local names = {}
    for _, d in ipairs(c:list("deploy").items) do names[d.metadata.name] = true end
    for _, n in ipairs({"web", "gateway", "document-service", "ai-service", "task-service", "integration-service",
      "notification-service"}) do
      assert.is_true(names[n], n)
    end
    assert.are.equal("aggregated", c.discovery_mode)
    assert.are.equal("HorizontalPodAutoscaler", c:resource("hpa").kind)
    assert.are.equal("v2", c:resource("hpa").version)
    assert.are.equal("cert-manager.io", c:resource("cert").group)
    assert.matches("^NAME%s+READY%s+UP%-TO%-DATE%s+AVAILABLE%s+AGE", require("opsh.repl.pretty").pretty(c:list("deploy")))
  end)

  it("reaches the twin's production cluster with --env twin (aks.kubeconfig, aks.context)", function()
    local r = proc.run{argv = {require("opsh.runtime").exe(), "--env", "twin", "-e", [[
      local c = require("opsh.k8s").client{cache_dir = false}
      local k8s = require("opsh.k8s")
      local other = k8s.list("deploy", {context = "aks-legal-production-secondary-token"})
      print(c.context .. " " .. c.namespace .. " " .. #c:list("deploy").items .. " " .. #other.items
        .. " " .. k8s.default{context = "aks-legal-production-secondary-token"}.server)]]},
      env_add = {OPSH_TWIN_DIR = dir, KUBECONFIG = false}, check = false}
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^aks%-legal%-production production %d+ %d+ https://[^ ]+/clusters/secondary\n$", r.stdout)
  end)

  it("finds pods by phase and by reason, with restart counts", function()
    local failed = c:pods{phase = "Failed"}
    assert.is_true(#failed > 0)
    for _, p in ipairs(failed) do assert.are.equal("Failed", p.phase) end
    local oom = c:pods{reason = "OOMKilled"}
    assert.is_true(#oom > 0)
    assert.is_true(oom[1].restarts > 0)
    assert.are.same({"name", "ready", "status", "restarts", "age", "node"}, oom.columns)
  end)

  it("restarts a rollout and waits for it, reporting progress; kubectl sees the new template", function()
    local before = c:get("deploy", "web")
    c:rollout_restart("web")
    local progress = {}
    local r = c:rollout_status("web", {timeout = 120, on_progress = function(m) progress[#progress + 1] = m end})
    assert.is_true(r.done)
    assert.are.equal('deployment "web" successfully rolled out', r.message)
    assert.is_true(#progress >= 2, table.concat(progress, " | "))
    local after = c:get("deploy", "web")
    assert.is_true(after.metadata.generation > before.metadata.generation)
    local ann = kubectl("get", "deploy", "web", "-n", "production", "-o",
      "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}")
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", ann)
  end)

  it("scales through the scale subresource, and kubectl agrees", function()
    local s = c:scale("deployments", "gateway", 4)
    assert.are.equal(4, s.spec.replicas)
    assert.are.equal("4", kubectl("get", "deploy", "gateway", "-n", "production", "-o", "jsonpath={.spec.replicas}"))
    kubectl("scale", "deploy/gateway", "-n", "production", "--replicas=2")
    assert.are.equal(2, c:scale("deploy", "gateway").spec.replicas)
  end)

  it("sets the HPA's bounds and CPU target (autoscaling/v2)", function()
    local h = c:set_hpa("web-hpa", {min = 3, max = 9, cpu = 65})
    assert.are.equal(3, h.spec.minReplicas)
    assert.are.equal(9, h.spec.maxReplicas)
    local cpu
    for _, m in ipairs(h.spec.metrics) do
      if m.resource and m.resource.name == "cpu" then cpu = m.resource.target.averageUtilization end
    end
    assert.are.equal(65, cpu)
    assert.are.equal("9", kubectl("get", "hpa", "web-hpa", "-n", "production", "-o", "jsonpath={.spec.maxReplicas}"))
  end)

  it("tops nodes and pods in kubectl's units, sorted", function()
    local nodes = c:top_nodes{sort_by = "cpu"}
    assert.is_true(#nodes > 0)
    assert.matches("^%d+m$", nodes[1].cpu_cores)
    assert.matches("^%d+Mi$", nodes[1].memory_bytes)
    assert.matches("^%d+%%$", nodes[1].cpu_percent)
    for i = 2, #nodes do assert.is_true(nodes[i - 1].cpu >= nodes[i].cpu) end
    local pods = c:top_pods{sort_by = "memory"}
    assert.is_true(#pods > 0)
    for i = 2, #pods do assert.is_true(pods[i - 1].memory >= pods[i].memory) end
  end)

  it("applies a directory of manifests server-side, create then update", function()
    local m = dir .. "/manifests"
    fs.mkdir(m)
    fs.write(m .. "/a.yaml", [[
apiVersion: v1
kind: ConfigMap
metadata: {name: opsh-applied}
data: {mode: one}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: opsh-applied-2}
data: {x: "1"}
]])
    fs.write(m .. "/notes.txt", "not a manifest")
    local rows = c:apply(m)
    assert.are.equal(2, #rows)
    assert.are.equal("one", c:get("cm", "opsh-applied").data.mode)
    fs.write(m .. "/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: opsh-applied}\ndata: {mode: two}\n")
    c:apply(m)
    assert.are.equal("two", c:get("configmaps", "opsh-applied").data.mode)
    assert.matches("two", kubectl("get", "cm", "opsh-applied", "-n", "production", "-o", "yaml"))
  end)

  it("reports certificate readiness and expiry, node conditions and events", function()
    local certs = c:certificates()
    assert.is_true(#certs >= 2)
    local soon = c:certificates{within = 30}
    assert.is_true(#soon >= 1 and #soon < #certs)
    local nodes = c:node_conditions()
    assert.is_true(#nodes > 0)
    for _, n in ipairs(nodes) do assert.are.equal("True", n.ready) end
    local events = c:events()
    assert.is_true(#events > 0)
    local e = events[1]
    local kind, name = e.object:match("^(%w+)/(.+)$")
    local of = c:events(kind, name)
    assert.is_true(#of > 0)
    for _, x in ipairs(of) do assert.are.equal(e.object, x.object) end
  end)

  it("reads logs with tail and timestamps, and follows them as a stream", function()
    local pod = c:pods{label_selector = "app=document-service", phase = "Running"}[1].name
    local text = c:log(pod, {tail = 5, timestamps = true})
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(5, #lines)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", lines[1])
    local got = {}
    c:log(pod, {follow = true, tail = 3, on_line = function(l)
      got[#got + 1] = l
      if #got == 2 then return false end
    end})
    assert.are.equal(2, #got)
  end)

  it("watches pods and sees a deletion; deletes a collection by field selector", function()
    local victim = c:pods{phase = "Failed"}[1].name
    local seen
    opsh.parallel({1, 2}, function(i)
      if i == 1 then
        seen = c:watch("pods", {timeout = 60}, function(ev)
          if ev.type == "DELETED" and ev.object.metadata.name == victim then return ev.type end
        end)
      else
        opsh.sleep(0.3)
        c:delete("pods", victim, {grace_period = 0})
      end
    end)
    assert.are.equal("DELETED", seen)
    c:delete_collection("pods", {field_selector = "status.phase=Failed"})
    S.wait_until(function() return #c:pods{phase = "Failed"} == 0 end, "failed pods gone", 30)
  end)

  it("sends mutations with dryRun=All in a dry-run: validated, recorded, nothing changed", function()
    local before = c:scale("deploy", "task-service").spec.replicas
    local records = dryrun.with(function() c:scale("deploy", "task-service", before + 3) end)
    dryrun.reset()
    assert.are.equal(1, #records)
    assert.matches("^PUT deployments/task%-service/scale %-n production %(dryRun=All%)", records[1].action)
    assert.are.equal(before, c:scale("deploy", "task-service").spec.replicas)
    local err = S.catch(function() return dryrun.with(function() c:get("deploy", "no-such") end) end)
    assert.are.equal("NotFound", err.reason)
  end)
end)
