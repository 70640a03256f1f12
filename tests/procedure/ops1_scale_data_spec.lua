-- scale-postgres and scale-redis against the ARM twin: destructive (refused without --yes off a terminal),
-- a storage decrease refused before anything is sent, Redis refused outside the maintenance window unless
-- --force, dry-run exit 4 with nothing changed, a second run changes nothing. Results read from the twin's
-- store.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local P = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/procedure.lua")

describe("scale-postgres and scale-redis on the twin", function()
  local dir, store

  local function opsh(...) return P.opsh(dir, ...) end

  local function arm(pattern)
    for _, it in ipairs(store:list("arm")) do if it.key:match(pattern) then return it.object end end
  end
  local function server() return arm("/flexibleservers/psql%-legal%-production$") end
  local function cache() return arm("/redis/redis%-legal%-production$") end
  local function audit_lines()
    local text = fs.exists(dir .. "/audit.log") and fs.read(dir .. "/audit.log") or ""
    return #text:gsub("[^\n]", "")
  end

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-scaledata-")
    twin.up({dir = dir, without = {"postgres", "azurite", "registry"}})
    store = twin.client(dir)
    store:put("arm.knobs", "knobs", {lro_seconds = 0.2})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("scale-postgres: refuses without --yes, plans with --dry-run (4), changes the SKU once, never shrinks storage", function()
    local before = server()
    local r = opsh("run", "scale-postgres", "--sku=GP_Standard_D8s_v3")
    assert.equal(2, r.code)
    assert.matches("pass %-%-yes", r.stderr)
    r = opsh("--dry-run", "run", "scale-postgres", "--sku=GP_Standard_D8s_v3")
    assert.equal(4, r.code, r.stderr)
    assert.equal(before.sku.name, server().sku.name)
    r = opsh("--yes", "run", "scale-postgres", "--sku=GP_Standard_D8s_v3", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.matches("interrupted", r.stderr)
    assert.same({"Standard_D8s_v3", "GeneralPurpose"}, {server().sku.name, server().sku.tier})
    r = opsh("--yes", "run", "scale-postgres", "--sku=GP_Standard_D8s_v3", "-o", "json")
    assert.matches("changes=0", r.stderr)
    local size = server().properties.storage.storageSizeGB
    local lines = audit_lines()
    r = opsh("--yes", "run", "scale-postgres", "--storage-gb=" .. (size - 1))
    assert.equal(2, r.code)
    assert.matches("cannot be decreased", r.stderr)
    assert.equal(lines, audit_lines())
    r = opsh("--yes", "run", "scale-postgres", "--storage-gb=" .. (size + 128), "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.equal(size + 128, server().properties.storage.storageSizeGB)
  end)

  it("scale-redis: refused outside the maintenance window before sending, --force scales once", function()
    local before = cache().properties.sku
    local lines = audit_lines()
    local r = opsh("--yes", "run", "scale-redis", "--sku=Premium", "--capacity=2")
    assert.equal(2, r.code)
    assert.matches("maintenance window", r.stderr)
    assert.equal(lines, audit_lines())
    assert.same(before, cache().properties.sku)
    r = opsh("--yes", "--dry-run", "run", "scale-redis", "--sku=Premium", "--capacity=2", "--force")
    assert.equal(4, r.code, r.stderr)
    assert.same(before, cache().properties.sku)
    r = opsh("--yes", "run", "scale-redis", "--sku=Premium", "--capacity=2", "--force", "-o", "json")
    assert.equal(0, r.code, r.stderr)
    assert.same({"Premium", 2}, {cache().properties.sku.name, cache().properties.sku.capacity})
    r = opsh("--yes", "run", "scale-redis", "--sku=Premium", "--capacity=2", "-o", "json")   -- no change: no window needed
    assert.equal(0, r.code, r.stderr)
    assert.matches("changes=0", r.stderr)
  end)
end)
