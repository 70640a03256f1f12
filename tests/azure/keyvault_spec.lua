-- opsh.azure.keyvault against the Key Vault twin (lua/opsh/twin/keyvault): set/get/versions/list
-- with paging, disable, soft delete and recover, dry-run, the 401 challenge (and a foreign one refused),
-- auth failures as one clear line.
local fs = require("opsh.fs")
local dryrun = require("opsh.dryrun")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
local keyvault = require("opsh.azure.keyvault")

describe("opsh.azure.keyvault against the Key Vault twin", function()
  local dir, env

  local function knobs(k)
    twin.client(dir):put("keyvault.knobs", "knobs", k)
  end

  local function reveal(s)
    -- the value as a child process sees it: the only way out of an opsh.secret
    local proc = require("opsh.proc")
    local r = proc.run{argv = {"sh", "-c", 'printf %s "$V"'}, env = {V = s}}
    return r.stdout
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-kv-twin")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
    env = twin.environment(dir)
    azure.reset()
  end)

  lazy_teardown(function()
    azure.reset()
    dryrun.enable(false)
    dryrun.reset()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("fills the twin environment with the vault's URL", function()
    assert.truthy(env.keyvault.url:match("^https://127%.0%.0%.1:%d+/kv%-legal%-production$"))
    assert.equal("kv-legal-production", env.keyvault.name)
  end)

  it("sets, gets (latest and a version) and lists versions newest first", function()
    local vault = azure.keyvault(env)
    local i1 = vault:set("app-token", "first", {content_type = "text/plain", tags = {owner = "sre"}})
    assert.equal("app-token", i1.name)
    assert.truthy(i1.version)
    assert.equal("text/plain", i1.content_type)
    local i2 = vault:set("app-token", require("opsh._core").secret("second"), {expires = os.time() + 3600})
    assert.are_not.equal(i1.version, i2.version)
    local v, info = vault:get("app-token")
    assert.equal("second", reveal(v))
    assert.equal(i2.version, info.version)
    assert.truthy(info.expires)
    local old, oinfo = vault:get("app-token", {version = i1.version})
    assert.equal("first", reveal(old))
    assert.same({owner = "sre"}, oinfo.tags)
    local versions = vault:versions("app-token")
    assert.equal(2, #versions)
    assert.equal(i2.version, versions[1].version)
    assert.is_nil(vault:get("no-such-secret", {missing = "nil"}))
    local ok, e = pcall(vault.get, vault, "no-such-secret")
    assert.is_false(ok)
    assert.equal("azure", e.kind)
    assert.equal(404, e.status)
    assert.equal("SecretNotFound", e.code)
    assert.truthy(e.request_id)
  end)

  it("a value never shows in the info, the error or tostring", function()
    local vault = azure.keyvault(env)
    local v = vault:get("app-token")
    assert.is_nil(tostring(v):find("second", 1, true))
  end)

  it("lists all secrets across pages (page size 2)", function()
    knobs({page_size = 2})
    local vault = azure.keyvault(env)
    for i = 1, 5 do vault:set("paged-" .. i, "v" .. i) end
    local names = {}
    for _, s in ipairs(vault:list()) do names[s.name] = true end
    for i = 1, 5 do assert.truthy(names["paged-" .. i], "paged-" .. i) end
    for i = 1, 4 do vault:set("paged-1", "again" .. i) end
    assert.equal(5, #vault:versions("paged-1"))
    knobs({})
  end)

  it("disables a version: it can no longer be read, the others can", function()
    local vault = azure.keyvault(env)
    local a = vault:set("rotating", "a")
    vault:set("rotating", "b")
    local d = vault:disable("rotating", a.version)
    assert.is_false(d.enabled)
    local ok, e = pcall(vault.get, vault, "rotating", {version = a.version})
    assert.is_false(ok)
    assert.equal(403, e.status)
    assert.equal("b", reveal((vault:get("rotating"))))
  end)

  it("deletes (soft) and recovers", function()
    local vault = azure.keyvault(env)
    vault:set("short-lived", "x")
    local del = vault:delete("short-lived")
    assert.truthy(del.scheduled_purge)
    assert.is_nil(vault:get("short-lived", {missing = "nil"}))
    vault:recover("short-lived")
    assert.equal("x", reveal((vault:get("short-lived"))))
  end)

  it("in a dry run records the mutations and sends nothing", function()
    local vault = azure.keyvault(env)
    dryrun.reset()
    dryrun.enable(true)
    local ok, err = pcall(function()
      local r = vault:set("dry-secret", "never-sent")
      assert.truthy(r.dry_run)
      vault:delete("app-token")
    end)
    dryrun.enable(false)
    assert(ok, err)
    local planned = dryrun.planned()
    assert.equal(2, #planned)
    for _, p in ipairs(planned) do
      local text = require("opsh.json").encode(p.request or {})
      assert.is_nil(text:find("never-sent", 1, true))
    end
    dryrun.reset()
    assert.is_nil(vault:get("dry-secret", {missing = "nil"}))
    assert.truthy(vault:get("app-token"))
  end)

  it("the connections provider reads through get_secret", function()
    azure.keyvault(env):set("provider-check", "pv")
    assert.equal("pv", reveal(keyvault.get_secret(env, "provider-check")))
  end)

  it("serves the production and secondary vaults, with secrets apart", function()
    local secondary = azure.keyvault(env, "kv-legal-production-secondary")
    secondary:set("only-here", "s")
    assert.is_nil(azure.keyvault(env):get("only-here", {missing = "nil"}))
    assert.equal("s", reveal((secondary:get("only-here"))))
  end)

  describe("deleted secrets and purge", function()
    local function names(list)
      local out = {}
      for _, s in ipairs(list) do out[s.name] = s end
      return out
    end

    it("lists deleted secrets across pages with their dates and recovery id, and reads one", function()
      knobs({page_size = 2})
      local vault = azure.keyvault(env)
      for i = 1, 3 do
        vault:set("gone-" .. i, "g" .. i)
        vault:delete("gone-" .. i)
      end
      local listed = names(vault:deleted())
      knobs({})
      for i = 1, 3 do
        local s = listed["gone-" .. i]
        assert.truthy(s, "gone-" .. i)
        assert.equal("number", type(s.deleted))
        assert.equal(s.deleted + 90 * 86400, s.scheduled_purge)
        assert.truthy(s.recovery_id:match("/kv%-legal%-production/deletedsecrets/gone%-" .. i .. "$"))
        assert.equal("Recoverable+Purgeable", s.recovery_level)
      end
      assert.is_nil(listed["app-token"])
      local one = vault:deleted_secret("gone-1")
      assert.equal("gone-1", one.name)
      assert.equal(listed["gone-1"].deleted, one.deleted)
      assert.is_nil(vault:deleted_secret("app-token", {missing = "nil"}))
      local ok, e = pcall(vault.deleted_secret, vault, "app-token")
      assert.is_false(ok)
      assert.equal(404, e.status)
      assert.equal("SecretNotFound", e.code)
    end)

    it("purges a deleted secret for good: no longer listed, not recoverable, the name free again", function()
      local vault = azure.keyvault(env)
      assert.is_true(vault:purge("gone-2"))
      assert.is_nil(names(vault:deleted())["gone-2"])
      assert.is_nil(vault:deleted_secret("gone-2", {missing = "nil"}))
      local ok, e = pcall(vault.recover, vault, "gone-2")
      assert.is_false(ok)
      assert.equal(404, e.status)
      vault:set("gone-2", "reborn")
      assert.equal(1, #vault:versions("gone-2"))
      local ok2, e2 = pcall(vault.purge, vault, "app-token")
      assert.is_false(ok2)
      assert.equal(404, e2.status)
      assert.equal("SecretNotFound", e2.code)
    end)

    it("in a dry run a purge is recorded, not sent: the secret stays deleted and recoverable", function()
      local vault = azure.keyvault(env)
      dryrun.reset()
      local records, r = dryrun.with(function() return vault:purge("gone-3") end)
      dryrun.reset()
      assert.truthy(r.dry_run)
      assert.equal(1, #records)
      assert.truthy(records[1].action:match("^DELETE https://.-/deletedsecrets/gone%-3%?"))
      assert.truthy(names(vault:deleted())["gone-3"])
      vault:recover("gone-3")
      assert.equal("g3", reveal((vault:get("gone-3"))))
    end)

    it("a vault with purge protection answers 403 and the client says so in one line", function()
      knobs({recovery_level = {["kv-legal-production"] = "Recoverable+ProtectedSubscription"}})
      local vault = azure.keyvault(env)
      local ok, e = pcall(vault.purge, vault, "gone-1")
      local still = vault:deleted_secret("gone-1")
      knobs({})
      assert.is_false(ok)
      assert.equal("azure", e.kind)
      assert.equal(403, e.status)
      assert.equal("Forbidden", e.code)
      assert.is_true(e.purge_protected)
      assert.truthy(tostring(e):find("purge protection is enabled for this vault", 1, true))
      assert.is_nil(tostring(e):find("\n"))
      assert.equal("Recoverable+ProtectedSubscription", still.recovery_level)
      -- the other vault keeps its own level: purge goes through there
      local secondary = azure.keyvault(env, "kv-legal-production-secondary")
      secondary:set("sec-gone", "x")
      secondary:delete("sec-gone")
      knobs({recovery_level = {["kv-legal-production"] = "Recoverable+ProtectedSubscription"}})
      local ok2 = pcall(secondary.purge, secondary, "sec-gone")
      knobs({})
      assert.is_true(ok2)
    end)
  end)

  describe("auth failures", function()
    local identity = require("opsh.twin.identity")
    local http = require("opsh.http")
    local function raw(token)
      local res = http.request{method = "GET", url = env.keyvault.url .. "/secrets?api-version=7.5",
        ca = env.endpoints.ca, raise_for_status = false,
        headers = token and {Authorization = "Bearer " .. token} or nil}
      return res
    end

    it("no token: 401 with the challenge naming the vault resource", function()
      local res = raw(nil)
      assert.equal(401, res.status)
      local ch = keyvault.parse_challenge(res.headers["www-authenticate"])
      assert.equal("https://vault.azure.net", ch.resource)
      assert.truthy(ch.tenant)
    end)

    it("a wrong-audience or expired token is refused, and the client says so in one line", function()
      local tw = {dir = dir, endpoint = function() return env.endpoints.arm end}
      assert.equal(401, raw(identity.issue(tw, {audience = "https://management.azure.com/"})).status)
      assert.equal(401, raw(identity.issue(tw, {audience = "https://vault.azure.net", ttl = -600})).status)
      assert.equal(200, raw(identity.issue(tw, {audience = "https://vault.azure.net"})).status)
      -- a client whose credential gives an ARM token: the retry after the refresh is refused too
      local chain = {tenant = nil, header = function()
        return "Bearer " .. identity.issue(tw, {audience = "https://management.azure.com/"})
      end}
      local v = keyvault.new(env, nil, {credential = chain})
      local ok, e = pcall(v.get, v, "app-token")
      assert.is_false(ok)
      assert.equal("azure", e.kind)
      assert.equal(401, e.status)
      assert.is_nil(tostring(e.message):find("\n"))
      assert.truthy(tostring(e.message):find("InvalidAuthenticationTokenAudience", 1, true))
      local expired = {header = function()
        return "Bearer " .. identity.issue(tw, {audience = "https://vault.azure.net", ttl = -600})
      end}
      local v2 = keyvault.new(env, nil, {credential = expired})
      local ok2, e2 = pcall(v2.get, v2, "app-token")
      assert.is_false(ok2)
      assert.equal(401, e2.status)
      assert.is_nil(tostring(e2.message):find("\n"))
      assert.truthy(tostring(e2.message):find("ExpiredAuthenticationToken", 1, true))
    end)

    it("refuses a challenge naming another host, and sends no token", function()
      knobs({challenge_resource = "https://evil.example.com"})
      local asked = 0
      local chain = {header = function() asked = asked + 1 return "Bearer x" end}
      local v = keyvault.new(env, nil, {credential = chain})
      local ok, e = pcall(v.get, v, "app-token")
      knobs({})
      assert.is_false(ok)
      assert.equal("ChallengeResourceMismatch", e.code)
      assert.equal(0, asked)
    end)
  end)
end)
