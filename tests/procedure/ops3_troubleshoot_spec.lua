-- troubleshoot-cpu and troubleshoot-memory on the k8s twin: the top pods and their figures against
-- metrics.k8s.io read independently, the twin's slow-request lines found, the OOMKilled ai-service pod
-- and its limit patch, printed only, sent as a dry run, and applied with --apply --yes.
local fs = require("opsh.fs")
local json = require("opsh.json")
local twin = require("opsh.twin")
local metrics = require("opsh.twin.k8s.metrics")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("troubleshoot-cpu and troubleshoot-memory on the twin", function()
  local dir

  local function opsh(...) return P.opsh(dir, ...) end

  local function limit(store)
    local d = store:get("k8s.production.deployments", "production/ai-service")
    d = d.object or d
    for _, c in ipairs(d.spec.template.spec.containers) do
      if c.name == "ai-service" then return c.resources.limits.memory end
    end
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops3-trouble-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("troubleshoot-cpu lists the top pods by CPU with their slow/timeout lines and suggests scaling", function()
    local r = opsh("run", "troubleshoot-cpu", "-o", "json", "--top", "3")
    assert.truthy(r.code == 0 or r.code == 3, r.stderr)
    local res = json.decode(r.stdout)
    assert.equal(3, #res.pods)
    -- the same order and figures as the twin's usage model applied to the pods in its store
    local top = {}
    for _, it in ipairs(twin.client(dir):list("k8s.production.pods")) do
      local pod, m = it.object, 0
      if pod.status and pod.status.phase == "Running" then
        for _, c in ipairs(pod.spec.containers) do m = m + metrics.usage(pod, c.name) end
        top[#top + 1] = {name = pod.metadata.name, m = m}
      end
    end
    table.sort(top, function(a, b) return a.m > b.m end)
    for i = 1, 3 do
      assert.equal(top[i].name, res.pods[i].pod)
      assert.equal(math.floor(top[i].m + 0.5) .. "m", res.pods[i].cpu)
    end
    local slow = 0
    for _, p in ipairs(res.pods) do
      assert.truthy(p.matches >= #p.lines)
      for _, l in ipairs(p.lines) do
        local low = l:lower()
        assert.truthy(low:find("slow") or low:find("timeout") or low:find("error") or low:find("timed out"), l)
        if low:find("slow request", 1, true) then slow = slow + 1 end
      end
    end
    assert.truthy(slow > 0)
    assert.truthy(#res.scaling >= 1)
    for _, s in ipairs(res.scaling) do
      assert.truthy(s.suggestion)
      if s.suggestion:match("^opsh run") then assert.equal(3, r.code) end
    end
    assert.equal("ai-service", res.scaling[1].deployment)
  end)

  it("troubleshoot-memory finds the OOMKilled ai-service pod and prints a patch it does not send", function()
    local store = twin.client(dir)
    local before = limit(store)
    local r = opsh("run", "troubleshoot-memory", "-o", "json")
    assert.equal(3, r.code, r.stderr)
    local res = json.decode(r.stdout)
    assert.equal(1, #res.oomkilled)
    assert.matches("^ai%-service%-", res.oomkilled[1].pod)
    assert.equal(5, #res.top)
    assert.equal("ai-service", res.patches[1].deployment)
    assert.equal(before, res.patches[1].from)
    assert.equal("1536Mi", res.patches[1].to)
    assert.equal(before, limit(store))
    -- the table output prints the exact patch
    local t = opsh("run", "troubleshoot-memory")
    assert.matches("kubectl patch deployment ai-service -n production --type strategic -p '"
      .. json.encode(res.patches[1].patch), t.stdout, 1, true)
  end)

  it("troubleshoot-memory --apply: refused without a terminal, a dry run changes nothing, --yes applies", function()
    local store = twin.client(dir)
    local before = limit(store)
    local r = opsh("run", "troubleshoot-memory", "--apply")
    assert.equal(2, r.code, r.stderr)
    assert.equal(before, limit(store))
    r = opsh("run", "troubleshoot-memory", "--apply", "--dry-run")
    assert.matches("dryRun=All", r.stdout .. r.stderr, 1, true)
    assert.equal(before, limit(store))
    r = opsh("run", "troubleshoot-memory", "--apply", "--yes")
    assert.truthy(r.code == 0 or r.code == 3, r.stderr)
    assert.equal("1536Mi", limit(store))
  end)
end)
