-- rotate-redis-key against the ARM, Key Vault and Kubernetes twins and the twin's real Redis: a consumer-like
-- probe (a new connection every 100 ms with the key Key Vault holds at that moment) sees no failure through a
-- rotation; afterwards the real Redis refuses the old keys and takes the new one, Key Vault holds the key in
-- use, the consumers restarted, no key in the output; a second rotation goes the other way; a dry run changes nothing.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local opsh = require("opsh")
local redis = require("opsh.redis")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local script = P.script("rotate-redis-key")

describe("rotate-redis-key on the twin", function()
  local dir, env, vault, kube

  local function run(...) return P.opsh(dir, ...) end

  -- true when the twin's real Redis takes a new connection with this key
  local function opens(key)
    return (pcall(function()
      local r <close> = redis.connect({host = env.redis.host, port = env.redis.port, tls = true, ca = env.redis.ca,
        password = key, timeout = 5})
      assert(r:call("PING") == "PONG")
    end))
  end

  -- a consumer: a new connection every 100 ms with the key Key Vault holds at that moment
  local function start_probe()
    local state = {running = true, attempts = 0, failures = 0}
    state.task = opsh.spawn(function()
      while state.running do
        state.attempts = state.attempts + 1
        if not opens((vault:get("redis-primary-key"))) then state.failures = state.failures + 1 end
        opsh.sleep(0.1)
      end
    end)
    return function()
      state.running = false
      state.task:wait()
      return state.attempts, state.failures
    end
  end

  local function restarted_at(name)
    local d = kube:get("deployments", name)
    local ann = d.spec.template.metadata and d.spec.template.metadata.annotations or {}
    return ann["kubectl.kubernetes.io/restartedAt"]
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops2-rotredis-")
    twin.up({dir = dir, without = {"postgres", "azurite", "registry"}})
    env = twin.environment(dir)
    azure.reset()
    vault = azure.keyvault(env)
    kube = P.k8s(dir)
  end)

  lazy_teardown(function()
    azure.reset()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("plans in a dry run (exit 4) and changes nothing", function()
    local keys = azure.redis.keys{env = env}
    local used = vault:get("redis-primary-key")
    local r = run("--dry-run", "run", script)
    assert.are.equal(4, r.code, r.stderr)
    local after = azure.redis.keys{env = env}
    assert.is_true(after.primaryKey == keys.primaryKey)
    assert.is_true(after.secondaryKey == keys.secondaryKey)
    assert.is_true(vault:get("redis-primary-key") == used)
    assert.is_nil(restarted_at("gateway"))
  end)

  for _, turn in ipairs({{from = "Primary", to = "Secondary"}, {from = "Secondary", to = "Primary"}}) do
    it("moves the consumers from the " .. turn.from .. " to the " .. turn.to .. " key with 0 failed connections",
      function()
        local before = azure.redis.keys{env = env}
        local used = vault:get("redis-primary-key")
        assert.is_true(used == before[turn.from:lower() .. "Key"])
        local restarted = restarted_at("gateway")
        local stop = start_probe()
        local r = run("--yes", "run", script, "--probe", "-o", "json")
        local attempts, failures = stop()
        assert.are.equal(0, r.code, r.stderr)
        assert.is_true(attempts > 0)
        assert.are.equal(0, failures)
        local report = json.decode(r.stdout)[1]
        assert.are.equal(turn.to, report.in_use)
        assert.are.equal(turn.from, report.was)
        assert.is_true(report.probes > 0)
        assert.are.equal(0, report.failed)

        local after = azure.redis.keys{env = env}
        local now = vault:get("redis-primary-key")
        assert.is_true(now == after[turn.to:lower() .. "Key"])
        assert.is_false(now == before[turn.to:lower() .. "Key"])
        assert.is_false(after[turn.from:lower() .. "Key"] == before[turn.from:lower() .. "Key"])
        assert.is_true(opens(now))
        assert.is_true(opens(after[turn.from:lower() .. "Key"]))
        assert.is_false(opens(before.primaryKey))
        assert.is_false(opens(before.secondaryKey))
        for _, key in ipairs({now, after.primaryKey, after.secondaryKey, before.primaryKey, before.secondaryKey}) do
          local text = core.reveal(key)
          assert.is_nil(r.stdout:find(text, 1, true))
          assert.is_nil(r.stderr:find(text, 1, true))
        end
        assert.is_not_nil(restarted_at("gateway"))
        assert.are_not.equal(restarted, restarted_at("gateway"))
      end)
  end

  it("refuses, changing nothing, when Key Vault's key is neither key of the cache", function()
    local keys = azure.redis.keys{env = env}
    local used = vault:get("redis-primary-key")
    vault:set("redis-primary-key", opsh.secret("not-a-key-of-the-cache"))
    local r = run("--yes", "run", script)
    vault:set("redis-primary-key", used)
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("neither key of redis%-legal%-production", r.stderr)
    assert.is_nil(r.stderr:find("traceback", 1, true))
    local after = azure.redis.keys{env = env}
    assert.is_true(after.primaryKey == keys.primaryKey)
    assert.is_true(after.secondaryKey == keys.secondaryKey)
  end)
end)
