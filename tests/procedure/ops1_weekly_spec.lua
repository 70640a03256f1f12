-- weekly-maintenance against the twin: refused without --yes off a terminal, a dry run (exit 4) changes
-- nothing, one part runs alone, the whole run leaves finished pods gone, pools on the latest node image,
-- retention at 90 days and a dated log file (read from the twin's store and the disk), and a second run
-- changes nothing.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
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

  it("does every part (registry at --keep per repository, log file on disk and in Blob), then a second run changes nothing", function()
    local before = images()
    local env = twin.environment(dir)
    local registry = azure.acr(env)
    local counts = {}
    for _, repo in ipairs(registry:repositories()) do counts[repo] = #registry:manifests(repo) end
    local r = opsh("--yes", "run", "weekly-maintenance", "--keep=3", "--logs-dir=" .. dir .. "/logs", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    local over = 0
    for repo, n in pairs(counts) do
      if n > 3 then over = over + 1 end
      assert.equal(math.min(n, 3), #registry:manifests(repo), repo)
    end
    assert.truthy(over > 0)
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
