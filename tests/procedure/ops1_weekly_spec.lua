-- weekly-maintenance against the twin: refused without --yes off a terminal, a dry run (exit 4) changes
-- nothing, one part runs alone, the whole run leaves finished pods gone, pools on the latest node image,
-- retention at 90 days and a dated log file (read from the twin's store and the disk), and a second run
-- changes nothing.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
local opsh_mod = require("opsh")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("weekly-maintenance on the twin", function()
  local dir, store

  local function opsh(...) return P.opsh(dir, ...) end

  local function finished_pods()
    local n = 0
    for _, it in ipairs(store:list("k8s.production.pods")) do
      local phase = (it.object.status or {}).phase
      if phase == "Failed" or phase == "Succeeded" then n = n + 1 end
    end
    return n
  end
  local function arm(pattern)
    for _, it in ipairs(store:list("arm")) do if it.key:match(pattern) then return it.object end end
  end
  local function retention() return arm("/components/legal%-platform%-production$").properties.RetentionInDays end
  local function images()
    local t = {}
    for _, it in ipairs(store:list("arm")) do
      if it.key:match("/managedclusters/aks%-legal%-production/agentpools/[^/]+$") then
        t[#t + 1] = it.object.properties.nodeImageVersion
      end
    end
    return t
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-weekly-")
    twin.up({dir = dir, without = {"postgres"}})
    store = twin.client(dir)
    store:put("arm.knobs", "knobs", {lro_seconds = 0.2})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("refuses without --yes; a dry run plans (4) and changes nothing", function()
    local pods, days, imgs = finished_pods(), retention(), images()
    assert.truthy(pods > 0)
    local r = opsh("run", "weekly-maintenance", "--logs-dir=" .. dir .. "/logs")
    assert.equal(2, r.code)
    r = opsh("--dry-run", "run", "weekly-maintenance", "--logs-dir=" .. dir .. "/logs")
    assert.equal(4, r.code, r.stderr)
    assert.same({pods, days, imgs}, {finished_pods(), retention(), images()})
    assert.is_false(fs.exists(dir .. "/logs"))
  end)

  it("runs one part alone", function()
    local days = retention()
    local r = opsh("--yes", "run", "weekly-maintenance", "--part=pods", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.equal(0, finished_pods())
    assert.equal(days, retention())
  end)

  it("does every part (registry: --keep newest, older than 30d, locked and in-use kept; log file on disk and in Blob), then a second run changes nothing", function()
    local before = images()
    local env = twin.environment(dir)
    local registry = azure.acr(env)
    local function digest_of(repo, tag)
      for _, t in ipairs(registry:tags(repo)) do if t.name == tag then return t.digest end end
    end
    -- seeded: 12 tags a week apart (1.12.0 now ... 1.1.0 77 days old); with --keep=3 and 30 days, 1.1.0-1.7.0
    -- are candidates. Locks: web's 1.2.0 manifest, gateway's 1.3.0 tag. In use: document-service runs 1.4.0;
    -- task-service's 1.5.0 is only in the ReplicaSet a rollback would use.
    registry:set_attributes("legal-platform/web", digest_of("legal-platform/web", "1.2.0"), {delete_enabled = false})
    registry:set_attributes("legal-platform/gateway", "1.3.0", {write_enabled = false})
    local c = P.k8s(dir)
    local function eventually(what, cond)
      local deadline = require("opsh.time").now() + 20
      while not cond() do
        if require("opsh.time").now() > deadline then error("timed out waiting for " .. what) end
        opsh_mod.sleep(0.1)
      end
    end
    local function images_of(resource)
      local set = {}
      for _, it in ipairs(c:list(resource, {label_selector = "app=task-service"}).items) do
        set[(it.spec.template or it).spec.containers[1].image:match(":([^:]+)$")] = true
      end
      return set
    end
    local function set_image(tag)
      c:patch("deployments", "task-service", {spec = {template = {spec = {containers = {{name = "task-service",
        image = "acrlegalproduction.azurecr.io/legal-platform/task-service:" .. tag}}}}}}, {type = "strategic"})
      eventually("a ReplicaSet for " .. tag, function() return images_of("replicasets")[tag] end)
    end
    set_image("1.5.0")
    set_image("1.12.0")
    -- the rollout is over when no pod runs 1.5.0: then only the old ReplicaSet refers to it
    eventually("the rollout to 1.12.0", function() return not images_of("pods")["1.5.0"] end)
    local r = opsh("--yes", "run", "weekly-maintenance", "--keep=3", "--logs-dir=" .. dir .. "/logs", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local left = {}
    for _, repo in ipairs(registry:repositories()) do
      local tags = {}
      for _, m in ipairs(registry:manifests(repo)) do
        for _, t in ipairs(m.tags) do tags[#tags + 1] = t end
      end
      table.sort(tags, function(a, b) return tonumber(a:match("^1%.(%d+)")) < tonumber(b:match("^1%.(%d+)")) end)
      left[repo] = table.concat(tags, " ")
    end
    local newest = "1.8.0 1.9.0 1.10.0 1.11.0 1.12.0"
    assert.same({["legal-platform/web"] = "1.2.0 " .. newest, ["legal-platform/gateway"] = "1.3.0 " .. newest,
      ["legal-platform/document-service"] = "1.4.0 " .. newest, ["legal-platform/ai-service"] = newest,
      ["legal-platform/task-service"] = "1.5.0 " .. newest}, left)
    local acr_row
    for _, row in ipairs(require("opsh.json").decode(r.stdout)) do if row.part == "acr" then acr_row = row end end
    assert.equal("cleaned", acr_row.result)
    assert.matches("^31 manifests .* older than 30d; kept 2 locked, 2 in use, 10 newer$", acr_row.detail)
    assert.matches("keeping legal%-platform/task%-service@sha256:%x+: used by replicaset production/task%-service%-", r.stderr)
    local blobs = azure.blob(env):list("logs")
    assert.equal("production-" .. os.date("!%Y%m%d") .. ".log", blobs[1].name)
    assert.equal(90, retention())
    for i, v in ipairs(images()) do assert.are_not.equal(before[i], v) end
    local file = dir .. "/logs/production-" .. os.date("!%Y%m%d") .. ".log"
    assert.matches("==> web%-", fs.read(file))
    local sent = fs.read(dir .. "/audit.log")
    r = opsh("--yes", "run", "weekly-maintenance", "--keep=3", "--logs-dir=" .. dir .. "/logs", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.equal(sent, fs.read(dir .. "/audit.log"))   -- no mutation sent
    for _, row in ipairs(require("opsh.json").decode(r.stdout)) do
      assert.truthy(row.result == "no change" or row.result == "skipped", row.part)
    end
  end)
end)
