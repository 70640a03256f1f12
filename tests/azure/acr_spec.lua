-- opsh.azure.acr against the ACR twin (lua/opsh/twin/acr) in front of the twin's real docker-registry:
-- the Entra -> ACR refresh -> access token exchange, repositories, manifests ordered by time and paged
-- by Link headers, pushes through /v2/, deletes by digest that reach the registry (checked on the
-- registry's own /v2/ API), dry-run, auth failures as one-line errors.
local fs = require("opsh.fs")
local json = require("opsh.json")
local http = require("opsh.http")
local crypto = require("opsh.crypto")
local dryrun = require("opsh.dryrun")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
local acr = require("opsh.azure.acr")

local OCI = {Accept = "application/vnd.oci.image.manifest.v1+json"}

describe("opsh.azure.acr against the ACR twin", function()
  local dir, env, reg, direct, ca

  -- push one small OCI image (config + layer) through the twin's /v2/ with the client's token
  local function push(repo, tag, created)
    local c = reg:client("repository:" .. repo .. ":push,pull")
    local function upload(data)
      local digest = "sha256:" .. crypto.sha256_hex(data)
      local start = c:post("/v2/" .. repo .. "/blobs/uploads/")
      assert.equal(202, start.status)
      local loc = start.headers["location"]
      local put = c:put(loc .. (loc:find("?", 1, true) and "&" or "?") .. "digest=" .. digest,
        {body = data, headers = {["Content-Type"] = "application/octet-stream"}})
      assert.equal(201, put.status)
      return {digest = digest, size = #data}
    end
    local layer = upload("layer " .. repo .. ":" .. tag .. "\n")
    local config = upload(json.encode({architecture = "amd64", os = "linux", created = created,
      rootfs = {type = "layers", diff_ids = json.array({layer.digest})}}))
    local manifest = json.encode({schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
      config = {mediaType = "application/vnd.oci.image.config.v1+json", digest = config.digest, size = config.size},
      layers = json.array({{mediaType = "application/vnd.oci.image.layer.v1.tar+gzip", digest = layer.digest,
        size = layer.size}})})
    local res = c:put("/v2/" .. repo .. "/manifests/" .. tag, {body = manifest,
      headers = {["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"}})
    assert.equal(201, res.status)
    return res.headers["docker-content-digest"]
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-acr")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite"}})
    env = twin.environment(dir)
    azure.reset()
    reg = azure.acr(env)
    ca = env.endpoints.ca
    local rec = twin.client(dir):get("components", "registry")
    direct = "https://127.0.0.1:" .. rec.port
  end)

  lazy_teardown(function()
    azure.reset()
    dryrun.enable(false)
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("lists the seeded repositories through the token exchange, paged", function()
    local names = reg:repositories()
    assert.truthy(#names >= 2)
    local paged = reg:repositories({page = 1})
    assert.same(names, paged)
    for i = 2, #names do assert.truthy(names[i - 1] < names[i]) end
  end)

  it("lists manifests newest first, with tags and times, across pages of two", function()
    local d1 = push("spec/app", "v1", "2026-01-01T00:00:00Z")
    local d2 = push("spec/app", "v2", "2026-02-01T00:00:00Z")
    local d3 = push("spec/app", "v3", "2026-03-01T00:00:00Z")
    local list = reg:manifests("spec/app", {page = 2})
    assert.equal(3, #list)
    -- pushed through the twin: `updated` is the push time, all within this run; created from the config
    local created = {}
    for _, m in ipairs(list) do created[m.digest] = m.created end
    assert.equal("2026-01-01T00:00:00Z", created[d1])
    assert.equal("2026-03-01T00:00:00Z", created[d3])
    for i = 2, #list do assert.truthy(list[i - 1].updated >= list[i].updated) end
    local asc = reg:manifests("spec/app", {order = "asc", page = 1})
    assert.equal(3, #asc)
    for i = 2, #asc do assert.truthy(asc[i - 1].updated <= asc[i].updated) end
    local tags = {}
    for _, m in ipairs(list) do tags[m.digest] = m.tags[1] end
    assert.same({[d1] = "v1", [d2] = "v2", [d3] = "v3"}, tags)
    assert.same({"v1", "v2", "v3"}, reg:tag_names("spec/app"))
  end)

  it("lists tags with their digests and times from /acr/v1/_tags, paged by Link, by name or by time", function()
    local d1 = push("spec/tags", "b-first", "2026-01-01T00:00:00Z")
    local d2 = push("spec/tags", "a-second", "2026-02-01T00:00:00Z")
    local d3 = push("spec/tags", "c-third", "2026-03-01T00:00:00Z")
    local list = reg:tags("spec/tags", {page = 1})
    local names, digests = {}, {}
    for i, t in ipairs(list) do
      names[i], digests[t.name] = t.name, t.digest
      assert.truthy(t.created:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d"))
      assert.truthy(t.updated >= t.created)
    end
    assert.same({"a-second", "b-first", "c-third"}, names)
    assert.same({["b-first"] = d1, ["a-second"] = d2, ["c-third"] = d3}, digests)
    -- newest push first: the order of the pushes above, whatever the names
    local desc = {}
    for i, t in ipairs(reg:tags("spec/tags", {order = "desc", page = 2})) do desc[i] = t.name end
    assert.same({"c-third", "a-second", "b-first"}, desc)
    local asc = {}
    for i, t in ipairs(reg:tags("spec/tags", {order = "asc"})) do asc[i] = t.name end
    assert.same({"b-first", "a-second", "c-third"}, asc)
    local only = reg:tags("spec/tags", {digest = d2})
    assert.equal(1, #only)
    assert.equal("a-second", only[1].name)
  end)

  it("a tag moved to another manifest shows its new digest and keeps its first push time", function()
    local before = reg:tags("spec/tags", {digest = push("spec/tags", "moving", "2025-01-01T00:00:00Z")})[1]
    local d = push("spec/tags", "moving", "2025-02-01T00:00:00Z")
    local after = reg:tags("spec/tags", {digest = d})
    assert.equal(1, #after)
    assert.equal("moving", after[1].name)
    assert.equal(before.created, after[1].created)
    assert.truthy(after[1].updated > before.updated)
  end)

  it("seeded tags carry their image's times; a repository that is not there is a 404", function()
    local repo = reg:repositories()[1]
    local by_digest = {}
    for _, m in ipairs(reg:manifests(repo)) do by_digest[m.digest] = m end
    local list = reg:tags(repo)
    assert.truthy(#list >= 1)
    for _, t in ipairs(list) do
      assert.truthy(by_digest[t.digest], t.name)
      assert.equal(by_digest[t.digest].created, t.created)
    end
    local ok, err = pcall(reg.tags, reg, "spec/nothing-here")
    assert.is_false(ok)
    assert.equal("azure", err.kind)
    assert.equal(404, err.status)
    local ok2, err2 = pcall(reg.tags, reg, "spec/tags", {order = "newest"})
    assert.is_false(ok2)
    assert.equal("usage", err2.kind)
  end)

  it("seeded manifests are ordered by their config's creation time", function()
    local repo = reg:repositories()[1]
    local list = reg:manifests(repo)
    assert.truthy(#list >= 2)
    for i = 2, #list do assert.truthy(list[i - 1].updated >= list[i].updated) end
  end)

  it("deletes a manifest by digest, and the registry itself no longer has it", function()
    local d = push("spec/del", "old", "2025-01-01T00:00:00Z")
    push("spec/del", "new", "2025-06-01T00:00:00Z")
    local before = http.head(direct .. "/v2/spec/del/manifests/" .. d, {ca = ca, raise_for_status = false, headers = OCI})
    assert.equal(200, before.status)
    assert.is_true(reg:delete_manifest("spec/del", d))
    local after = http.head(direct .. "/v2/spec/del/manifests/" .. d, {ca = ca, raise_for_status = false, headers = OCI})
    assert.equal(404, after.status)
    local left = reg:manifests("spec/del")
    assert.equal(1, #left)
    assert.same({"new"}, left[1].tags)
    assert.is_false(reg:delete_manifest("spec/del", d))
  end)

  it("records a delete in a dry run and sends nothing", function()
    local d = push("spec/dry", "v1", "2025-01-01T00:00:00Z")
    local records = dryrun.with(function()
      local r = reg:delete_manifest("spec/dry", d)
      assert.is_true(r.dry_run)
    end)
    assert.equal(1, #records)
    assert.equal("acr", records[1].kind)
    assert.truthy(records[1].action:find("DELETE .*/v2/spec/dry/manifests/" .. d))
    local still = http.head(direct .. "/v2/spec/dry/manifests/" .. d, {ca = ca, raise_for_status = false, headers = OCI})
    assert.equal(200, still.status)
  end)

  it("locks a manifest: listed as locked, a delete is refused by the registry and nothing is removed, unlocked it goes", function()
    local d = push("spec/lock", "v1", "2025-01-01T00:00:00Z")
    assert.is_false(reg:attributes("spec/lock", d).locked)
    local rec = reg:set_attributes("spec/lock", d, {delete_enabled = false})
    assert.equal(d, rec.digest)
    assert.is_false(rec.delete_enabled)
    assert.is_true(rec.write_enabled)
    assert.is_true(rec.locked)
    assert.same({"v1"}, rec.tags)
    assert.is_true(reg:manifests("spec/lock")[1].locked)
    local ok, err = pcall(reg.delete_manifest, reg, "spec/lock", d)
    assert.is_false(ok)
    assert.equal("azure", err.kind)
    assert.equal(405, err.status)
    assert.equal("REGISTRY_DISALLOWED_OPERATION", err.code)
    assert.truthy(err.message:find("locked", 1, true))
    local still = http.head(direct .. "/v2/spec/lock/manifests/" .. d, {ca = ca, raise_for_status = false, headers = OCI})
    assert.equal(200, still.status)
    assert.is_false(reg:set_attributes("spec/lock", d, {delete_enabled = true}).locked)
    assert.is_true(reg:delete_manifest("spec/lock", d))
  end)

  it("locks a tag apart from its manifest: a push over it and a delete of its manifest are refused", function()
    local d = push("spec/locktag", "release", "2025-01-01T00:00:00Z")
    local t = reg:set_attributes("spec/locktag", "release", {write_enabled = false, delete_enabled = false})
    assert.equal("release", t.name)
    assert.equal(d, t.digest)
    assert.is_true(t.locked)
    assert.is_false(reg:attributes("spec/locktag", d).locked)   -- the manifest's own attributes are apart
    assert.is_true(reg:tags("spec/locktag")[1].locked)
    local ok, err = pcall(push, "spec/locktag", "release", "2025-02-01T00:00:00Z")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("405", 1, true))
    assert.equal(d, reg:tags("spec/locktag")[1].digest)
    local ok2, err2 = pcall(reg.delete_manifest, reg, "spec/locktag", d)
    assert.is_false(ok2)
    assert.equal(405, err2.status)
    reg:set_attributes("spec/locktag", "release", {write_enabled = true, delete_enabled = true})
    assert.is_true(reg:delete_manifest("spec/locktag", d))
  end)

  it("a manifest with list_enabled false leaves the listings but stays readable", function()
    local hidden = push("spec/hide", "a", "2025-01-01T00:00:00Z")
    push("spec/hide", "b", "2025-02-01T00:00:00Z")
    reg:set_attributes("spec/hide", hidden, {list_enabled = false})
    local list = reg:manifests("spec/hide")
    assert.equal(1, #list)
    assert.are_not.equal(hidden, list[1].digest)
    assert.is_false(reg:attributes("spec/hide", hidden).list_enabled)
    assert.is_nil(reg:attributes("spec/hide", "sha256:" .. string.rep("0", 64)))
    assert.is_nil(reg:attributes("spec/hide", "no-such-tag"))
  end)

  it("records an attribute change in a dry run; bad attributes are usage errors", function()
    local d = push("spec/drylock", "v1", "2025-01-01T00:00:00Z")
    local records = dryrun.with(function()
      assert.is_true(reg:set_attributes("spec/drylock", d, {delete_enabled = false}).dry_run)
    end)
    assert.equal(1, #records)
    assert.truthy(records[1].action:find("PATCH .*/acr/v1/spec/drylock/_manifests/" .. d))
    assert.is_false(reg:attributes("spec/drylock", d).locked)
    for _, bad in ipairs({{{deleteEnabled = false}, "unknown attribute"}, {{delete_enabled = "no"}, "boolean"},
        {{}, "no attribute"}}) do
      local ok, err = pcall(reg.set_attributes, reg, "spec/drylock", d, bad[1])
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.truthy(err.message:find(bad[2], 1, true), err.message)
    end
    local ok, err = pcall(reg.attributes, reg, "spec/drylock", "bad tag!")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
  end)

  it("reads a manifest by tag or digest; a missing one is nil", function()
    local d = push("spec/read", "v1", "2025-01-01T00:00:00Z")
    local doc, digest, media = reg:manifest("spec/read", "v1")
    assert.equal(2, doc.schemaVersion)
    assert.equal(d, digest)
    assert.equal("application/vnd.oci.image.manifest.v1+json", media)
    assert.equal(d, select(2, reg:manifest("spec/read", d)))
    assert.is_nil(reg:manifest("spec/read", "v9"))
  end)

  it("refuses a tag where a digest is needed, as a usage error", function()
    local ok, err = pcall(reg.delete_manifest, reg, "spec/app", "v1")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
  end)

  it("an Entra token for another audience is refused with a one-line azure error", function()
    local cred = azure.credential(env)
    local wrong = {token = function() return cred:token("arm") end}
    local r = acr.new{endpoint = env.endpoints.acr, ca = ca, credential = wrong}
    local ok, err = pcall(r.repositories, r)
    assert.is_false(ok)
    assert.equal("azure", err.kind)
    assert.equal(401, err.status)
    assert.truthy(err.message:find("/oauth2/exchange", 1, true))
    assert.falsy(err.message:find("\n"))
    assert.falsy(err.message:find("eyJ", 1, true))
  end)

  it("a request without a token gets the ACR challenge", function()
    local res = http.get(env.endpoints.acr .. "/v2/", {ca = ca, raise_for_status = false})
    assert.equal(401, res.status)
    assert.truthy(res.headers["www-authenticate"]:find('realm="https://', 1, true))
  end)
end)
