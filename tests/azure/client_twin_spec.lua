-- opsh.azure end to end against the ARM twin (lua/opsh/twin/arm): the twin environment's credential
-- (client secret from the twin's secrets, HTTPS with the twin CA), AKS reads and agent pool changes
-- through long-running operations, the kubeconfig, a handle resumed by `opsh wait` in another
-- process, dry-run, structured errors for what is not there.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local dryrun = require("opsh.dryrun")
local twin = require("opsh.twin")
local azure = require("opsh.azure")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/azure"
local S = dofile(here .. "/../support/helpers.lua")
local root = here .. "/../.."

describe("opsh.azure against the ARM twin", function()
  local dir, env

  local function knobs(k)
    twin.client(dir):put("arm.knobs", "knobs", k)
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-azure-twin")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    env = twin.environment(dir)
    azure.reset()
    knobs({lro_seconds = 0.2})
  end)

  lazy_teardown(function()
    azure.reset()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("reads the cluster and its pools with the twin environment's own credential", function()
    local cluster = azure.aks.get{env = env}
    assert.equal("aks-legal-production", cluster.name)
    assert.equal("Succeeded", cluster.properties.provisioningState)
    local names = {}
    for _, p in ipairs(azure.aks.pools{env = env}) do names[#names + 1] = p.name end
    table.sort(names)
    assert.same({"systempool", "usernodepool"}, names)
    assert.equal("client_secret", azure.credential(env).chosen)
    local all = azure.aks.list{env = env}
    assert.truthy(#all >= 2)
  end)

  it("authenticates with a certificate's assertion, a federated token file and IMDS too", function()
    local crypto = require("opsh.crypto")
    local identity = require("opsh.twin.identity")
    local platform = require("opsh.twin.platform")
    local credential = require("opsh.azure.credential")
    local tw = {dir = dir, endpoint = function() return env.endpoints.arm end}
    local ca = crypto.x509.create_ca{cn = "spec CA"}
    local leaf = crypto.x509.create_cert{ca_cert = ca.cert_pem, ca_key = ca.key_pem, cn = "opsh", client = true,
      key_type = "rsa", bits = 2048}
    identity.register_certificate(tw, platform.client_id, leaf.cert_pem)
    local pem = dir .. "/client.pem"
    fs.write(pem, leaf.cert_pem)
    local f = fs.open(pem, "a")
    f:write(leaf.key_pem)
    f:close()
    local federated = dir .. "/federated-token"
    fs.write(federated, identity.issue(tw, {audience = "api://AzureADTokenExchange"}))
    local vars = {AZURE_CLIENT_CERTIFICATE_PATH = pem, AZURE_FEDERATED_TOKEN_FILE = federated}
    for _, source in ipairs({"client_certificate", "workload_identity", "managed_identity"}) do
      local e = setmetatable({name = "twin-" .. source}, {__index = env})
      local chain = credential.new(e, {order = {source}, getenv = function(n) return vars[n] end})
      local arm = azure.arm(e, {credential = chain})
      local cluster = arm:get(arm:id("rg-legal-production", "Microsoft.ContainerService/managedClusters",
        "aks-legal-production"), {api_version = "2025-05-01"})
      assert.equal("aks-legal-production", cluster.name, source)
      assert.equal(source, chain.chosen)
    end
  end)

  it("scales a pool through its long-running operation, and refuses one under the autoscaler", function()
    local pool = azure.aks.scale{env = env, pool = "usernodepool", count = 4}
    assert.equal(4, pool.properties.count)
    assert.equal("Succeeded", pool.properties.provisioningState)
    assert.equal(4, azure.aks.pool{env = env, pool = "usernodepool"}.properties.count)
    local auto = azure.aks.autoscale{env = env, pool = "usernodepool", min = 3, max = 6}
    assert.is_true(auto.properties.enableAutoScaling)
    assert.equal(6, auto.properties.maxCount)
    local err = S.catch(azure.aks.scale, {env = env, pool = "usernodepool", count = 2})
    assert.equal("usage", err.kind)
    local off = azure.aks.autoscale{env = env, pool = "usernodepool", enabled = false, count = 3}
    assert.is_false(off.properties.enableAutoScaling and true or false)
    assert.equal(3, off.properties.count)
  end)

  it("stays under the twin's per-subscription read budget: no 429 received", function()
    knobs({lro_seconds = 0.2, budget = {reads = 10, reads_per_second = 20}})
    require("opsh").sleep(0.6)
    -- a budget that starts with this size (ARM's do not shrink under a running process)
    require("opsh.azure.throttle").reset()
    local e = setmetatable({name = "twin-budget"}, {__index = env})
    local arm = azure.arm(e, {credential = azure.credential(env)})
    local items = {}
    for i = 1, 60 do items[i] = i end
    require("opsh").parallel(items, function() return azure.aks.pool{env = e, pool = "systempool"} end, {limit = 20})
    local st = arm.budget:stats()
    assert.equal(0, st.throttled)
    assert.truthy(st.waits > 0)
    knobs({lro_seconds = 0.2})
  end)

  it("retries the twin's injected 503, 500 and 429 (Retry-After) for a GET; a POST's 500 is raised at once", function()
    local function left()
      local k = twin.client(dir):get("arm.knobs", "knobs")
      local out = {}
      for i, f in ipairs(k.fail) do out[i] = f.count end
      return out
    end
    knobs({lro_seconds = 0.2, fail = {
      {status = 503, count = 1, method = "GET", match = "agentpools/usernodepool", retry_after = 1},
      {status = 500, count = 1, method = "GET", match = "agentpools/usernodepool"},
      {status = 429, count = 1, method = "GET", match = "agentpools/systempool", retry_after = 1},
      {status = 500, count = 2, method = "POST", match = "listclusterusercredential"}}})
    assert.equal("usernodepool", azure.aks.pool{env = env, pool = "usernodepool"}.name)
    assert.equal("systempool", azure.aks.pool{env = env, pool = "systempool"}.name)
    assert.are.same({0, 0, 0, 2}, left())
    local err = S.catch(azure.aks.kubeconfig, {env = env})
    assert.equal("azure", err.kind)
    assert.equal(500, err.status)
    assert.are.same({0, 0, 0, 1}, left())   -- one attempt: a POST is not retried
    knobs({lro_seconds = 0.2})
  end)

  it("gives the user kubeconfig as YAML for opsh.k8s", function()
    local text = azure.aks.kubeconfig{env = env}
    assert.equal("string", type(text))
    local doc = require("opsh.yaml").decode(text)
    assert.equal("Config", doc.kind)
    assert.truthy(#doc.clusters >= 1)
  end)

  it("raises a missing resource as kind azure with ARM's code and ids", function()
    local err = S.catch(azure.aks.pool, {env = env, pool = "nosuchpool"})
    assert.equal("azure", err.kind)
    assert.equal(404, err.status)
    assert.truthy(err.code == "ResourceNotFound" or err.code == "NotFound", err.code)
    assert.truthy(err.request_id)
  end)

  it("records a mutation in a dry-run without sending it; reads still happen", function()
    local before = azure.aks.pool{env = env, pool = "systempool"}.properties.count
    local records, res = dryrun.with(function() return azure.aks.scale{env = env, pool = "systempool", count = 9} end)
    assert.is_true(res.dry_run)
    assert.equal(1, #records)
    assert.truthy(records[1].action:match("^PUT https://.*/agentPools/systempool%?api%-version="))
    assert.equal(9, records[1].request.json.properties.count)
    assert.equal(before, azure.aks.pool{env = env, pool = "systempool"}.properties.count)
  end)

  it("leaves an operation with --no-wait and `opsh wait <handle>` finishes it in another process", function()
    knobs({lro_seconds = 1})
    local op = azure.aks.scale{env = env, pool = "systempool", count = 2, wait = false}
    assert.truthy(op.handle:match("^azop1%."))
    local r = proc.run{argv = {root .. "/build/opsh", "-o", "json", "wait", op.handle},
      env_add = {OPSH_PATH = root, OPSH_TWIN_DIR = dir, OPSH_ENV = "twin"}, check = false, timeout = 60}
    assert.equal(0, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.equal(2, doc.properties.count)
    knobs({lro_seconds = 0.2})
  end)

  it("opsh --no-wait prints the handle of each operation it leaves; opsh wait refuses what is not one", function()
    knobs({lro_seconds = 0.5})
    local env_add = {OPSH_PATH = root, OPSH_TWIN_DIR = dir, OPSH_ENV = "twin"}
    local r = proc.run{argv = {root .. "/build/opsh", "--no-wait", "-e",
      "local op = require('opsh.azure').aks.scale{pool = 'systempool', count = 3} print(op.status)"},
      env_add = env_add, check = false, timeout = 60}
    assert.equal(0, r.code, r.stderr)
    assert.equal("InProgress", (r.stdout:gsub("%s+$", "")))
    local handle = r.stderr:match("resume with: opsh wait (azop1%.[%w_-]+)")
    assert.truthy(handle, r.stderr)
    assert.equal(3, azure.wait(handle, {env = env}).properties.count)
    for _, argv in ipairs({{"wait"}, {"wait", "azop1.bm90IGpzb24"}, {"wait", "a", "b"}}) do
      local w = proc.run{argv = {root .. "/build/opsh", table.unpack(argv)}, env_add = env_add, check = false,
        timeout = 30}
      assert.equal(2, w.code, w.stderr)
      assert.truthy(w.stderr:match("^opsh: [^\n]+\n$"), w.stderr)
    end
    knobs({lro_seconds = 0.2})
  end)
end)
