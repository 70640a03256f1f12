-- opsh lsp-setup: the embedded stubs written out, and .luarc.json created or updated in place.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")

describe("opsh lsp-setup", function()
  local dir
  before_each(function() dir = fs.tmpdir("opsh-lsp-spec-") end)
  after_each(function() fs.rmtree(dir) end)

  local function setup(...)
    return proc.run{argv = {runtime.exe(), "lsp-setup", ...}, check = false,
      env_add = {XDG_DATA_HOME = dir .. "/data"}}
  end

  it("writes every stub and a .luarc.json naming their folder", function()
    fs.mkdir(dir .. "/project")
    local r = setup(dir .. "/project")
    assert.equal(0, r.code, r.stderr)
    local stubs = dir .. "/data/opsh/meta/" .. runtime.version
    local names = fs.list(stubs)
    assert.equal(#runtime.embedded("meta:"), #names)
    assert.truthy(fs.read(stubs .. "/opsh.pg.lua"):match("^%-%-%-@meta opsh%.pg\n"))
    local luarc = json.decode(fs.read(dir .. "/project/.luarc.json"))
    assert.same({stubs}, {table.unpack(luarc["workspace.library"])})
    assert.equal("Lua 5.4", luarc["runtime.version"])
  end)

  it("keeps the project's own settings, replaces another opsh version's stubs, adds its folder once", function()
    fs.mkdir(dir .. "/project")
    fs.write(dir .. "/project/.luarc.json", json.encode({["diagnostics.globals"] = {"vim"},
      ["workspace.library"] = {"/old/opsh/meta/0.0.1", "/mine"}}))
    assert.equal(0, setup(dir .. "/project").code)
    assert.equal(0, setup(dir .. "/project").code)
    local luarc = json.decode(fs.read(dir .. "/project/.luarc.json"))
    assert.same({"vim"}, {table.unpack(luarc["diagnostics.globals"])})
    assert.same({"/mine", dir .. "/data/opsh/meta/" .. runtime.version}, {table.unpack(luarc["workspace.library"])})
  end)

  it("refuses a missing directory or a .luarc.json that is not an object, with one line and exit 2", function()
    local r = setup(dir .. "/nope")
    assert.equal(2, r.code)
    assert.equal(1, select(2, r.stderr:gsub("\n", "")))
    fs.mkdir(dir .. "/p2")
    fs.write(dir .. "/p2/.luarc.json", "[1, 2")
    r = setup(dir .. "/p2")
    assert.equal(2, r.code)
    assert.truthy(r.stderr:find("not a JSON object", 1, true))
    assert.equal("[1, 2", fs.read(dir .. "/p2/.luarc.json"))
  end)
end)
