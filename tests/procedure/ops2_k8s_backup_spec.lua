-- k8s-backup against the Kubernetes twin and Azurite: the blobs hold what the cluster holds (counted
-- through the Kubernetes client, read back from Blob directly), no Secret reaches Blob unsealed, server-set
-- fields are stripped, a dry run writes nothing; sealed Secrets open with the Key Vault key only.
local fs = require("opsh.fs")
local yaml = require("opsh.yaml")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")
local backup = require("opsh.ops.backup")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

local script = P.script("k8s-backup")
local tf_script = P.script("tf-backup")

describe("k8s-backup and tf-backup on the twin", function()
  local dir, c, account

  local function opsh(...) return P.opsh(dir, ...) end

  local function opsh_path(path, ...)
    return proc.run{argv = {runtime.exe(), "--env", "twin", ...}, env_add = {OPSH_TWIN_DIR = dir, PATH = path},
      check = false, timeout = 120}
  end

  local function blobs(prefix)
    local out = {}
    for _, b in ipairs(account:list("backups") or {}) do
      if b.name:sub(1, #prefix) == prefix then out[#out + 1] = b.name end
    end
    table.sort(out)
    return out
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops2-k8sbk-")
    twin.up({dir = dir, without = {"postgres", "redis", "registry"}})
    c = P.k8s(dir)
    c:create("secrets", {apiVersion = "v1", kind = "Secret", metadata = {name = "bk-secret"},
      stringData = {token = "s3cr3t-never-in-blob"}})
    c:create("configmaps", {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "bk-config"},
      data = {mode = "spec"}})
    account = backup.blob_account(twin.environment(dir))
  end)
  lazy_teardown(function()
    pcall(twin.down, {dir = dir})
    fs.rmtree(dir)
  end)

  it("writes nothing in a dry run and exits 4", function()
    local r = opsh("--dry-run", "run", script, "--namespace", "production", "--prefix", "spec-dry")
    assert.are.equal(4, r.code, r.stderr)
    account:create_container("backups")
    assert.are.same({}, blobs("spec-dry/"))
  end)

  it("backs up each kind as a restorable List, Secrets left out", function()
    local r = opsh("run", script, "--namespace", "production", "--prefix", "spec-1")
    assert.are.equal(0, r.code, r.stderr)
    local names = blobs("spec-1/")
    assert.is_true(#names >= 3)
    local kinds = {}
    for _, name in ipairs(names) do
      local text = account:get("backups", name)
      assert.is_nil(text:find("s3cr3t", 1, true), name)
      assert.is_nil(text:find("czNjcjN0", 1, true), name)   -- base64 of the value's start
      local doc = yaml.decode(text)
      assert.are.equal("List", doc.kind)
      for _, item in ipairs(doc.items) do
        kinds[item.kind] = (kinds[item.kind] or 0) + 1
        assert.is_nil(item.status)
        assert.is_nil(item.metadata.uid)
        assert.is_nil(item.metadata.resourceVersion)
        assert.is_nil(item.metadata.managedFields)
      end
    end
    assert.is_nil(kinds.Secret)
    assert.are.equal(#c:list("configmaps").items, kinds.ConfigMap)
    assert.are.equal(#c:list("deployments").items, kinds.Deployment)
    assert.truthy(account:get("backups", "spec-1/production/configmap.yaml"):find("bk-config", 1, true))
  end)

  it("seals Secrets with a key it keeps in Key Vault; they open with that key only", function()
    local env = twin.environment(dir)
    local vault = require("opsh.azure").keyvault(env)
    assert.is_nil(vault:get("k8s-backup-key", {missing = "nil"}))
    local r = opsh("--dry-run", "run", script, "--namespace", "production", "--prefix", "spec-enc-dry", "--secrets", "encrypt")
    assert.are.equal(4, r.code, r.stderr)
    assert.is_nil(vault:get("k8s-backup-key", {missing = "nil"}))
    assert.are.same({}, blobs("spec-enc-dry/"))
    for turn = 1, 2 do
      r = opsh("run", script, "--namespace", "production", "--prefix", "spec-enc-" .. turn, "--secrets", "encrypt")
      assert.are.equal(0, r.code, r.stderr)
    end
    assert.are.equal(1, #vault:versions("k8s-backup-key"))   -- made once, then reused
    local name = "spec-enc-1/production/secret.yaml.sealed"
    local raw = account:get("backups", name)
    assert.is_nil(raw:find("s3cr3t", 1, true))
    assert.is_nil(raw:find("czNjcjN0", 1, true))
    assert.is_nil(raw:find("bk-secret", 1, true))
    local meta = account:properties("backups", name).metadata
    assert.are.equal("AES-256-GCM", meta.cipher)
    assert.are.equal("k8s-backup-key", meta.key_secret)
    local _, info = vault:get("k8s-backup-key")
    assert.are.equal(info.version, meta.key_version)
    local text = require("opsh._core").reveal(backup.open_sealed{account = account, container = "backups",
      name = name, vault = vault})
    local found
    for _, item in ipairs(yaml.decode(text).items) do
      if item.metadata.name == "bk-secret" then found = item end
      assert.is_nil(item.metadata.uid)
    end
    assert.are.equal("s3cr3t-never-in-blob", require("opsh.crypto").base64_decode(found.data.token))
    -- bound to its name: the same bytes under another name do not open
    account:put("backups", "spec-enc-1/production/moved.yaml.sealed", {data = raw, metadata = meta})
    local ok, err = pcall(backup.open_sealed, {account = account, container = "backups",
      name = "spec-enc-1/production/moved.yaml.sealed", vault = vault})
    assert.is_false(ok)
    assert.are.equal("bad_tag", err.code)
  end)

  local function versioning()
    local id = require("opsh.twin.platform").resource_id("rg-legal-production", "Microsoft.Storage/storageAccounts",
      "stalegalproduction", "blobServices", "default")
    local svc = (twin.read_state(dir).arm or {})[id]
    return svc and svc.properties and svc.properties.isVersioningEnabled == true
  end

  it("tf-backup says clearly when terraform is missing", function()
    local r = opsh_path("/usr/bin:/bin", "run", tf_script, "--dir", dir, "--account", "stalegalproduction")
    assert.are.equal(1, r.code)
    assert.truthy(r.stderr:find("terraform is not installed", 1, true), r.stderr)
  end)

  local have_tf = backup.have("terraform")
  local tf_it = have_tf and it or pending
  tf_it("tf-backup uploads the pulled state once, flags versioning off, and turns it on when asked", function()
    local tf = dir .. "/tf"
    fs.mkdir(tf)
    fs.write(tf .. "/main.tf", 'output "x" { value = 1 }\n')
    for _, argv in ipairs({{"terraform", "init", "-input=false"}, {"terraform", "apply", "-auto-approve", "-input=false"}}) do
      proc.run{argv = argv, cwd = tf, env_add = {TF_IN_AUTOMATION = "1", HOME = dir}, timeout = 120}
    end
    local pulled = proc.run{argv = {"terraform", "state", "pull"}, cwd = tf, env_add = {HOME = dir}}.stdout
    local lineage = json.decode(pulled).lineage
    assert.is_false(versioning())
    local r = opsh("run", tf_script, "--dir", tf, "--account", "stalegalproduction", "--prefix", "tf-spec")
    assert.are.equal(3, r.code, r.stderr)          -- versioning off is a problem
    assert.truthy(r.stderr:find("versioning is off", 1, true), r.stderr)
    local names = blobs("tf-spec/" .. lineage .. "/")
    assert.are.equal(1, #names)
    assert.are.equal(pulled, account:get("backups", names[1]))
    assert.are.equal(lineage, account:properties("backups", names[1]).metadata.lineage)

    local dry = opsh("--dry-run", "run", tf_script, "--dir", tf, "--account", "stalegalproduction",
      "--prefix", "tf-spec", "--enable-versioning")
    assert.are.equal(4, dry.code, dry.stderr)
    assert.is_false(versioning())

    local on = opsh("run", tf_script, "--dir", tf, "--account", "stalegalproduction", "--prefix", "tf-spec",
      "--enable-versioning")
    assert.are.equal(0, on.code, on.stderr)
    assert.is_true(versioning())
    local again = opsh("run", tf_script, "--dir", tf, "--account", "stalegalproduction", "--prefix", "tf-spec")
    assert.are.equal(0, again.code, again.stderr)
    assert.truthy(again.stdout:find("0 change(s)", 1, true), again.stdout)
    assert.are.same(names, blobs("tf-spec/" .. lineage .. "/"))
  end)
end)
