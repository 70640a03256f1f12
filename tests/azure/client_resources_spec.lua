-- opsh.azure's resource modules against the stand-in (tests/azure/mock_arm.lua): the exact requests
-- they send (paths, api-versions, bodies), what they refuse before sending anything, and secrets
-- that stay opsh.secret values on the way in and out.
local opsh = require("opsh")
local json = require("opsh.json")
local dryrun = require("opsh.dryrun")
local azure = require("opsh.azure")
local credential = require("opsh.azure.credential")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/azure"
local S = dofile(here .. "/../support/helpers.lua")
local mock_mod = dofile(here .. "/mock_arm.lua")

local SUB = "/subscriptions/sub-1/resourceGroups/rg/providers/"

describe("opsh.azure resources", function()
  local mock, env, sent

  -- a route that records what it got and answers `answer` (a table, or a function of the request)
  local function serve(method, path, answer)
    mock.route(method, path, function(req)
      sent[#sent + 1] = {method = req.method, path = req.path, query = req.query,
        body = req.body ~= "" and json.decode(req.body) or nil, raw = req.body}
      if type(answer) == "function" then return answer(req) end
      return answer or {}
    end)
  end

  lazy_setup(function()
    mock = mock_mod.start()
    env = mock.env({
      aks = {cluster = "aks1", node_pool = "user"},
      postgres = {server = "pg1", replica = "pg1-replica"},
      redis = {name = "cache1"},
      monitor = {action_group = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Insights/actionGroups/ops",
        workspace = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/log1"},
      dns = {zone = "example.com", record = "@"},
      storage = {account = "st1"},
    })
    azure.reset()
    -- the process environment's AZURE_* must not reach the spec's credential
    azure.arm(env, {credential = credential.new(env, {getenv = function() return nil end}), min_poll = 0.01,
      poll_interval = 0.05})
  end)
  lazy_teardown(function()
    azure.reset()
    mock.close()
  end)
  before_each(function() sent = {} end)

  describe("postgres", function()
    lazy_setup(function()
      serve("GET", SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/pg1", {id = SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/pg1",
        location = "westeurope", properties = {storage = {storageSizeGB = 128}, state = "Ready"}})
      serve("PATCH", SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/{name}", function(req)
        return {name = req.params.name, properties = {state = "Ready"}}
      end)
      serve("GET", SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/pg1/replicas", {value = {{name = "pg1-replica",
        id = "/subscriptions/sub-1/resourceGroups/rg-dr/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1-replica"}}})
      serve("PATCH", "/subscriptions/sub-1/resourceGroups/rg-dr/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}",
        function(req) return {name = req.params.name, properties = {replica = {role = "None"}}} end)
      serve("PUT", SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/{name}", function(req)
        return {name = req.params.name, properties = {state = "Ready", provisioningState = "Succeeded"}}
      end)
    end)

    it("refuses a storage decrease before anything is sent; grows with one PATCH", function()
      local err = S.catch(azure.postgres.grow_storage, {env = env, size_gb = 64})
      assert.equal("usage", err.kind)
      assert.truthy(err.message:find("cannot be decreased", 1, true))
      assert.equal(1, #sent)
      assert.equal("GET", sent[1].method)
      azure.postgres.grow_storage{env = env, size_gb = 256}
      assert.equal("PATCH", sent[3].method)
      assert.equal(256, sent[3].body.properties.storage.storageSizeGB)
      assert.equal("2024-08-01", sent[3].query["api-version"])
    end)

    it("sends the admin password from an opsh.secret only, and never shows it", function()
      assert.equal("usage", S.catch(azure.postgres.set_admin_password, {env = env, password = "plain"}).kind)
      assert.equal(0, #sent)
      azure.postgres.set_admin_password{env = env, password = opsh.secret("N3w-Passw0rd!")}
      assert.equal("N3w-Passw0rd!", sent[1].body.properties.administratorLoginPassword)
      local records = dryrun.with(azure.postgres.set_admin_password, {env = env, password = opsh.secret("N3w-Passw0rd!")})
      assert.is_nil(json.encode(records):find("N3w-Passw0rd", 1, true))
    end)

    it("changes SKU, promotes the replica, restores to a point in time", function()
      azure.postgres.update_sku{env = env, sku = "Standard_D8ds_v5", tier = "GeneralPurpose"}
      assert.same({name = "Standard_D8ds_v5", tier = "GeneralPurpose"}, sent[1].body.sku)
      assert.equal("usage", S.catch(azure.postgres.update_sku, {env = env, sku = "x", tier = "Huge"}).kind)
      azure.postgres.promote{env = env}
      -- the replica's own resource group, as the primary lists it
      assert.equal("/subscriptions/sub-1/resourceGroups/rg-dr/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1-replica",
        sent[3].path)
      assert.same({role = "None", promoteMode = "standalone", promoteOption = "planned"}, sent[3].body.properties.replica)
      azure.postgres.restore{env = env, target = "pg1-restored", time = "2026-12-05T10:00:00Z"}
      local put = sent[#sent]
      assert.equal("PUT", put.method)
      assert.truthy(put.path:find("/flexibleServers/pg1%-restored$"), put.path)
      assert.equal("PointInTimeRestore", put.body.properties.createMode)
      assert.equal("2026-12-05T10:00:00Z", put.body.properties.pointInTimeUTC)
      assert.equal(SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/pg1", put.body.properties.sourceServerResourceId)
      assert.equal("westeurope", put.body.location)
    end)
  end)

  it("redis: keys come back as secrets; regenerate sends keyType", function()
    serve("POST", SUB .. "Microsoft.Cache/redis/cache1/listKeys", {primaryKey = "pk-value-1", secondaryKey = "sk-value-2"})
    serve("POST", SUB .. "Microsoft.Cache/redis/cache1/regenerateKey", {primaryKey = "pk-new", secondaryKey = "sk-value-2"})
    local keys = azure.redis.keys{env = env}
    assert.is_true(opsh.is_secret(keys.primaryKey))
    assert.equal(opsh.secret("pk-value-1"), keys.primaryKey)
    local after = azure.redis.regenerate_key{env = env, key = "Primary"}
    assert.equal(opsh.secret("pk-new"), after.primaryKey)
    assert.same({keyType = "Primary"}, sent[2].body)
    assert.equal("usage", S.catch(azure.redis.regenerate_key, {env = env, key = "primary"}).kind)
    -- a read: listKeys is sent in a dry-run
    local records = dryrun.with(azure.redis.keys, {env = env})
    assert.equal(0, #records)
  end)

  it("aks: a spot pool carries priority, eviction policy and max price", function()
    serve("GET", SUB .. "Microsoft.ContainerService/managedClusters/aks1/agentPools/spot1",
      {status = 404, json = {error = {code = "NotFound", message = "no pool"}}})
    serve("PUT", SUB .. "Microsoft.ContainerService/managedClusters/aks1/agentPools/spot1",
      {name = "spot1", properties = {provisioningState = "Succeeded"}})
    azure.aks.add_pool{env = env, pool = "spot1", vm_size = "Standard_D4s_v5", count = 2, spot = {max_price = 0.5}}
    local p = sent[2].body.properties
    assert.equal("Spot", p.scaleSetPriority)
    assert.equal("Delete", p.scaleSetEvictionPolicy)
    assert.equal(0.5, p.spotMaxPrice)
    assert.equal(2, p.count)
    assert.equal("usage", S.catch(azure.aks.add_pool, {env = env, pool = "Bad_Name", vm_size = "x"}).kind)
  end)

  it("monitor: a metric alert with SingleResourceMultipleMetricCriteria and the environment's action group", function()
    serve("PUT", SUB .. "Microsoft.Insights/metricAlerts/{name}", function(req) return {name = req.params.name} end)
    azure.monitor.put_alert{env = env, name = "pg-cpu", scope = SUB .. "Microsoft.DBforPostgreSQL/flexibleServers/pg1",
      severity = 2, criteria = {{metric = "cpu_percent", operator = "GreaterThan", threshold = 80}}}
    local b = sent[1].body
    assert.equal("global", b.location)
    assert.equal("Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria", b.properties.criteria["odata.type"])
    assert.equal("cpu_percent", b.properties.criteria.allOf[1].metricName)
    assert.equal("StaticThresholdCriterion", b.properties.criteria.allOf[1].criterionType)
    assert.equal(env.monitor.action_group, b.properties.actions[1].actionGroupId)
    assert.equal("2018-03-01", sent[1].query["api-version"])
  end)

  it("dns: the A record set then holds exactly the given addresses, its TTL kept", function()
    serve("GET", SUB .. "Microsoft.Network/dnsZones/example.com/A/@", {properties = {TTL = 60,
      ARecords = {{ipv4Address = "203.0.113.1"}}, metadata = {owner = "sre"}}})
    serve("PUT", SUB .. "Microsoft.Network/dnsZones/example.com/A/@", function(req) return req:json() end)
    local rs = azure.dns.set_a_record{env = env, ips = {"203.0.113.20"}}
    assert.same({"203.0.113.20"}, azure.dns.addresses(rs))
    assert.equal(60, sent[2].body.properties.TTL)
    assert.same({owner = "sre"}, sent[2].body.properties.metadata)
    assert.equal("usage", S.catch(azure.dns.set_a_record, {env = env, ips = {"300.1.1.1"}}).kind)
  end)

  it("cost: a query's pages become records; usage details follow nextLink", function()
    serve("POST", "/subscriptions/sub-1/providers/Microsoft.CostManagement/query", function(req)
      local second = req.query.page == "2"
      return {properties = {columns = {{name = "Cost", type = "Number"}, {name = "ResourceId", type = "String"}},
        rows = second and {{2.5, "/b"}} or {{1.25, "/a"}},
        nextLink = not second and (mock.url .. "/subscriptions/sub-1/providers/Microsoft.CostManagement/query"
          .. "?api-version=2023-11-01&page=2") or json.null}}
    end)
    local rows = azure.cost.query{env = env}
    assert.same({{Cost = 1.25, ResourceId = "/a"}, {Cost = 2.5, ResourceId = "/b"}}, rows)
    assert.equal("ResourceId", sent[1].body.dataset.grouping[1].name)
    local records = dryrun.with(azure.cost.query, {env = env})
    assert.equal(0, #records)
  end)

  it("storage: blob soft delete and versioning, the rest kept", function()
    serve("GET", SUB .. "Microsoft.Storage/storageAccounts/st1/blobServices/default",
      {properties = {deleteRetentionPolicy = {enabled = false}, cors = {corsRules = {}}}})
    serve("PUT", SUB .. "Microsoft.Storage/storageAccounts/st1/blobServices/default", function(req) return req:json() end)
    local svc = azure.storage.set_blob_properties{env = env, delete_retention_days = 14, versioning = true}
    assert.same({enabled = true, days = 14}, svc.properties.deleteRetentionPolicy)
    assert.is_true(sent[2].body.properties.isVersioningEnabled)
    assert.truthy(sent[2].body.properties.cors)
  end)
end)
