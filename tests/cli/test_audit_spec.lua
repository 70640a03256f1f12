-- `opsh test` keeps its specs' audit lines, and those of the opsh processes they start, out of the
-- operator's audit log (~/.local/state/opsh/audit.log): they go to $TMPDIR/opsh-test-audit.log unless
-- OPSH_AUDIT_LOG names a file.
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")

describe("opsh test and the audit log", function()
  local dir

  before_each(function() dir = fs.tmpdir("opsh-test-audit-") end)
  after_each(function() fs.rmtree(dir) end)

  -- a spec that sends one audited change in its own process and one in a child opsh
  local function write_spec()
    fs.write(dir .. "/mutate_spec.lua", ([[
      local proc = require("opsh.proc")
      describe("mutations", function()
        it("runs a command itself and through a child opsh", function()
          proc.run{argv = {"true"}}
          proc.run{argv = {%q, "-e", 'require("opsh.proc").run{argv = {"true"}}'}}
        end)
      end)
    ]]):format(runtime.exe()))
  end

  local function run_test(env_add)
    env_add.HOME, env_add.XDG_STATE_HOME, env_add.TMPDIR = dir .. "/home", false, dir .. "/tmp"
    fs.mkdir(dir .. "/tmp", {parents = true})
    return proc.run{argv = {runtime.exe(), "test", dir .. "/mutate_spec.lua"}, env_add = env_add, check = false,
      timeout = 60}
  end

  local function lines(path)
    local n = 0
    for l in fs.read(path):gmatch("[^\n]+") do
      if l:find('"run true"', 1, true) or l:find("run true", 1, true) then n = n + 1 end
    end
    return n
  end

  it("writes them to $TMPDIR/opsh-test-audit.log, the child's too, and nothing under HOME", function()
    write_spec()
    local r = run_test({OPSH_AUDIT_LOG = false})
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.is_false(fs.exists(dir .. "/home/.local/state/opsh/audit.log"))
    assert.equal(2, lines(dir .. "/tmp/opsh-test-audit.log"))
  end)

  it("uses OPSH_AUDIT_LOG when it is set", function()
    write_spec()
    local r = run_test({OPSH_AUDIT_LOG = dir .. "/chosen.log"})
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.equal(2, lines(dir .. "/chosen.log"))
    assert.is_false(fs.exists(dir .. "/tmp/opsh-test-audit.log"))
  end)
end)
