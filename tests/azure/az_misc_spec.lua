-- Fidelity: az 2.45's Redis, Monitor, storage, DNS and consumption commands against the ARM twin.
-- Regenerating the Redis primary key changes the twin Redis's password (checked with redis-cli). Debian's
-- az 2.45 cannot run `network dns` (its azure-mgmt-network lacks v2022_01_01) nor `consumption usage list`
-- (its azure-mgmt-consumption is newer than the command module): those calls go through `az rest`,
-- with az's own token, to the same paths.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/az_helpers.lua")
local proc = require("opsh.proc")
local twin = require("opsh.twin")

local RG = "rg-legal-production"

describe("az redis, monitor, storage, dns and consumption against the ARM twin", function()
  if not H.have_az() then pending("az is not installed (make deps)"); return end
  local dir, env
  local function id(...) return H.rid(RG, ...) end

  setup(function() dir, env = H.up({"postgres", "azurite", "registry"}) end)
  teardown(function() H.down(dir) end)

  local function redis_ping(password)
    local rec = twin.client(dir):get("components", "redis")
    return proc.run({argv = {"redis-cli", "--no-auth-warning", "--tls", "--cacert", env.OPSH_TWIN_CA, "-p", tostring(rec.port), "ping"},
      env = {PATH = os.getenv("PATH"), REDISCLI_AUTH = password}, check = false, timeout = 30})
  end

  it("lists, scales and rotates the keys of the cache; the new primary key is the twin Redis's password", function()
    local names = H.az(env, "redis", "list", "--query", "[?provisioningState=='Succeeded'].name", "-o", "json")
    assert.are.same({"redis-legal-production"}, names)
    -- az 2.45 prints begin_update(...).result(0): the PATCH's answer, or, when its poller thread has already
    -- polled (a loaded machine), the operation's status document; what it changed is read back instead
    H.az(env, "redis", "update", "-g", RG, "-n", "redis-legal-production", "--sku", "Premium", "--vm-size", "P2",
      "-o", "json")
    local c = H.az(env, "redis", "show", "-g", RG, "-n", "redis-legal-production", "-o", "json")
    assert.are.same({name = "Premium", family = "P", capacity = 2}, c.sku)
    local old = H.az(env, "redis", "list-keys", "-g", RG, "-n", "redis-legal-production", "--query", "primaryKey", "-o", "tsv")
    assert.are.equal(env.REDISCLI_AUTH, old)
    local keys = H.az(env, "redis", "regenerate-keys", "-g", RG, "-n", "redis-legal-production", "--key-type", "Primary",
      "-o", "json")
    assert.are_not.equal(old, keys.primaryKey)
    assert.are.equal(keys.primaryKey, H.az(env, "redis", "list-keys", "-g", RG, "-n", "redis-legal-production",
      "--query", "primaryKey", "-o", "tsv"))
    assert.matches("PONG", redis_ping(keys.primaryKey).stdout)
    assert.is_nil((redis_ping(old).stdout or ""):match("PONG"))
    assert.are.equal(keys.primaryKey, twin.client(dir):get("components", "redis").password)
  end)

  it("creates the runbook's metric alerts, lists them, and reads metrics and sets diagnostic settings", function()
    local aks = id("Microsoft.ContainerService/managedClusters", "aks-legal-production")
    local ag = id("Microsoft.Insights/actionGroups", "devops-alerts")
    local ai = id("Microsoft.Insights/components", "legal-platform-production")
    local alerts = {
      {"High Error Rate - Production", ai, "avg exceptions/request > 0.05"},
      {"High Response Time - Production", ai, "avg requests/duration > 2000"},
      {"High Node CPU - Production", aks, "avg Percentage CPU > 80"},
      {"High Memory Usage - Production", aks, "avg Percentage Memory > 85"},
    }
    for _, a in ipairs(alerts) do
      local r = H.az(env, "monitor", "metrics", "alert", "create", "--name", a[1], "--resource-group", RG, "--scopes", a[2],
        "--condition", a[3], "--window-size", "5m", "--evaluation-frequency", "1m", "--action", ag, "-o", "json")
      assert.are.equal("Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria", r.criteria.odataType)
      local wire = H.arm(dir, id("Microsoft.Insights/metricAlerts", a[1]))
      assert.are.equal("Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria", wire.properties.criteria["odata.type"])
    end
    local names = H.az(env, "monitor", "metrics", "alert", "list", "-g", RG, "--query", "[].name", "-o", "json")
    table.sort(names)
    assert.are.same({"High Error Rate - Production", "High Memory Usage - Production", "High Node CPU - Production",
      "High Response Time - Production"}, names)
    local m = H.az(env, "monitor", "metrics", "list", "--resource", id("Microsoft.DBforPostgreSQL/flexibleServers",
      "psql-legal-production"), "--metric", "cpu_percent,memory_percent,storage_percent", "--interval", "PT5M",
      "--start-time", "2024-11-15T00:00:00Z", "--end-time", "2024-11-15T01:00:00Z", "-o", "json")
    assert.are.equal(3, #m.value)
    assert.are.equal(12, #m.value[1].timeseries[1].data)
    local again = H.az(env, "monitor", "metrics", "list", "--resource", id("Microsoft.DBforPostgreSQL/flexibleServers",
      "psql-legal-production"), "--metric", "cpu_percent", "--interval", "PT5M",
      "--start-time", "2024-11-15T00:00:00Z", "--end-time", "2024-11-15T01:00:00Z", "-o", "json")
    assert.are.equal(m.value[1].timeseries[1].data[1].average, again.value[1].timeseries[1].data[1].average)
    local d = H.az(env, "monitor", "diagnostic-settings", "create", "--resource", aks, "--name", "audit-logs",
      "--logs", '[{"category":"kube-audit","enabled":true},{"category":"kube-audit-admin","enabled":true},'
        .. '{"category":"guard","enabled":true}]',
      "--workspace", id("Microsoft.OperationalInsights/workspaces", "log-legal-production"), "-o", "json")
    assert.are.equal(3, #d.logs)
    assert.is_table(H.arm(dir, aks .. "/providers/Microsoft.Insights/diagnosticSettings/audit-logs"))
    assert.matches("not supported", H.az_fail(env, "monitor", "diagnostic-settings", "create", "--resource", aks,
      "--name", "bad", "--logs", '[{"category":"no-such-category","enabled":true}]',
      "--workspace", id("Microsoft.OperationalInsights/workspaces", "log-legal-production")))
  end)

  it("shows and updates the blob service properties (versioning, delete retention)", function()
    assert.are.same({Versioning = false}, H.az(env, "storage", "account", "blob-service-properties", "show",
      "--account-name", "stalegalproduction", "--resource-group", RG, "--query", "{Versioning:isVersioningEnabled}", "-o", "json"))
    local p = H.az(env, "storage", "account", "blob-service-properties", "update", "--account-name", "stalegalproduction",
      "--resource-group", RG, "--enable-delete-retention", "true", "--delete-retention-days", "7",
      "--enable-versioning", "true", "-o", "json")
    assert.are.same({true, true, 7}, {p.isVersioningEnabled, p.deleteRetentionPolicy.enabled, p.deleteRetentionPolicy.days})
    local stored = H.arm(dir, id("Microsoft.Storage/storageAccounts", "stalegalproduction", "blobServices", "default"))
    assert.are.equal(7, stored.properties.deleteRetentionPolicy.days)
  end)

  it("switches the DNS A record (az rest) and lists usage details over pages (az rest)", function()
    local url = id("Microsoft.Network/dnszones", "legal-platform.com") .. "/A/@?api-version=2018-05-01"
    assert.are.equal("203.0.113.10", H.az(env, "rest", "--method", "get", "--url", url,
      "--query", "properties.ARecords[0].ipv4Address", "-o", "tsv"))
    H.az(env, "rest", "--method", "patch", "--url", url, "--body", '{"properties":{"ARecords":[{"ipv4Address":"203.0.113.20"}]}}')
    local rec = H.arm(dir, id("Microsoft.Network/dnszones", "legal-platform.com") .. "/A/@")
    assert.are.equal("203.0.113.20", rec.properties.ARecords[1].ipv4Address)
    twin.client(dir):put("arm.knobs", "knobs", {page_size = 25})
    local page = H.az(env, "rest", "--method", "get", "--url", "/subscriptions/" .. H.sub
      .. "/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&$filter=properties/usageEnd ge "
      .. "'2024-11-01T00:00:00Z' and properties/usageEnd le '2024-11-30T00:00:00Z'", "-o", "json")
    assert.are.equal(25, #page.value)
    assert.matches("%$skiptoken=25", page.nextLink)
    assert.is_number(page.value[1].properties.pretaxCost)
  end)
end)
