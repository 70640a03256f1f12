-- A mistyped opsh module name: one line with the nearest name, a usage error (exit 2), not
-- require's list of every path it tried.
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")

describe("require of an opsh module that does not exist", function()
  it("names the nearest module in one structured usage error", function()
    local ok, err = pcall(require, "opsh.rdis")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.equal("module 'opsh.rdis' not found; did you mean 'opsh.redis'?", err.message)
  end)

  it("exits 2 with one line from the command line", function()
    local r = proc.run{argv = {runtime.exe(), "-e", "require 'opsh.rdis'"}, check = false}
    assert.equal(2, r.code)
    assert.equal("opsh: module 'opsh.rdis' not found; did you mean 'opsh.redis'?\n", r.stderr)
  end)

  it("leaves other module names to Lua's own searchers", function()
    local ok, err = pcall(require, "no_such_module_anywhere")
    assert.is_false(ok)
    assert.equal("string", type(err))
    assert.truthy(err:find("module 'no_such_module_anywhere' not found", 1, true))
  end)
end)
