-- opsh.azure.blob through the twin: azure.blob(env) authenticates with the twin environment's own
-- Entra credential (the ARM twin's token endpoint) against the twin's Azurite (`--oauth basic`,
-- HTTPS with the twin CA), as production does.
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local azure = require("opsh.azure")

describe("opsh.azure.blob against the twin", function()
  local dir, env

  lazy_setup(function()
    dir = fs.tmpdir("opsh-blob-twin")
    twin.up({dir = dir, without = {"postgres", "redis", "registry"}})
    env = twin.environment(dir)
    azure.reset()
  end)

  lazy_teardown(function()
    azure.reset()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("writes, lists and reads with an Entra bearer token", function()
    local store = azure.blob(env)
    assert.equal(store, azure.blob(env))
    store:create_container("twin-spec")
    local rec = store:put("twin-spec", "a/b.txt", {data = "through the twin"})
    assert.truthy(rec.etag)
    assert.equal("through the twin", store:get("twin-spec", "a/b.txt"))
    local names = {}
    for _, b in ipairs(store:list("twin-spec")) do names[#names + 1] = b.name end
    assert.same({"a/b.txt"}, names)
  end)

  it("a token for another audience is refused with a one-line azure error", function()
    local blob = require("opsh.azure.blob")
    local cred = azure.credential(env)
    local wrong = blob.account{endpoint = env.storage.endpoint, account = env.storage.account, ca = env.endpoints.ca,
      token = cred:auth("arm")}
    local ok, err = pcall(wrong.get, wrong, "twin-spec", "a/b.txt")
    assert.is_false(ok)
    assert.equal("azure", err.kind)
    assert.falsy(err.message:find("\n"))
  end)
end)
