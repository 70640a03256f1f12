-- docs/procedures.md's "Write your own procedure" example, taken from the page and run on the twin.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local twin = require("opsh.twin")
local runtime = require("opsh.runtime")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/procedure"

describe("docs/procedures.md's example procedure", function()
  local dir

  lazy_setup(function()
    dir = fs.tmpdir("opsh-ops1-docs-")
    twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
  end)

  lazy_teardown(function()
    twin.down({dir = dir})
    fs.rmtree(dir)
  end)

  it("runs as written and lists every deployment the twin has", function()
    local page = fs.read(here .. "/../../docs/procedures.md")
    local code = page:match("## Write your own procedure.-```lua\n(.-)```")
    assert.truthy(code)
    local file = dir .. "/unready-deployments.lua"
    fs.write(file, code)
    local r = proc.run{argv = {runtime.exe(), "--env", "twin", "run", file, "-o", "json"},
      env_add = {OPSH_TWIN_DIR = dir}, check = false, timeout = 60}
    assert.truthy(r.code == 0 or r.code == 3, r.stderr)
    local rows = json.decode(r.stdout)
    local n = #twin.client(dir):list("k8s.production.deployments")
    assert.equal(n, #rows)
    assert.truthy(n >= 7)
  end)
end)
