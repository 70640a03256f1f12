-- --log-format json: every line opsh itself writes on stderr is a JSON object, the run's summary too.
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")

describe("--log-format json", function()
  local dir
  setup(function() dir = fs.tmpdir("opsh-logfmt-") end)
  teardown(function() fs.rmtree(dir) end)

  local function lines_of(stderr)
    local objs = {}
    for line in stderr:gmatch("[^\n]+") do objs[#objs + 1] = json.decode(line) end
    return objs
  end

  it("writes the problems summary as a JSON line", function()
    local file = dir .. "/prob.lua"
    fs.write(file, 'return {description = "p", categories = {"t"}, run = function(ctx) ctx.problem("disk full") end}')
    local r = proc.run{argv = {runtime.exe(), "--log-format", "json", "run", file}, check = false}
    assert.equal(3, r.code)
    local objs = lines_of(r.stderr)
    assert.equal(2, #objs)
    assert.equal("disk full", objs[1].msg)
    assert.equal(1, objs[2].problems)
  end)

  it("writes a failure as a JSON line with its kind", function()
    local r = proc.run{argv = {runtime.exe(), "--log-format", "json", "-e",
      "error(require('opsh').error('io', 'boom'))"}, check = false}
    assert.equal(1, r.code)
    local objs = lines_of(r.stderr)
    assert.equal(1, #objs)
    assert.equal("io", objs[1].kind)
    assert.equal("boom", objs[1].msg)
    assert.equal("error", objs[1].level)
  end)
end)
