-- Options tables read in C (engine/options.c): a wrong type is a usage error naming the option;
-- durations go through opsh_duration_ms, so math.huge means "no limit" everywhere.
local opsh = require("opsh")
local C_proc = require("opsh._proc")
local C_server = require("opsh._server")

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return err
end

describe("C options", function()
  it("a wrong type is {kind = 'usage'} naming the option", function()
    local err = raised(C_server.listen, {host = "127.0.0.1", port = "x"})
    assert.is_true(opsh.is_error(err, "usage"))
    assert.matches("server.listen: option 'port' must be a number, not a string", err.message)
    err = raised(C_proc.spawn, {argv = {"true"}, cwd = 5})
    assert.is_true(opsh.is_error(err, "usage"))
    assert.matches("proc.spawn: option 'cwd' must be a string, not a number", err.message)
  end)

  it("a negative duration is a usage error, not a wrapped timer", function()
    local err = raised(C_server.listen, {host = "127.0.0.1", port = 0, timeout = -1})
    assert.is_true(opsh.is_error(err, "usage"))
    err = raised(C_proc.spawn, {argv = {"true"}, kill_grace = -1})
    assert.is_true(opsh.is_error(err, "usage"))
    assert.matches("kill_grace", err.message)
  end)

  it("math.huge is no limit: a process with timeout = math.huge runs to its end", function()
    local p <close> = C_proc.spawn({argv = {"sh", "-c", "exit 3"}, timeout = math.huge, kill_grace = math.huge})
    local r = p:_wait()
    assert.are.equal(3, r.code)
  end)

  it("math.huge is no limit: a server with timeout = math.huge listens", function()
    local s = C_server.listen({host = "127.0.0.1", port = 0, timeout = math.huge})
    assert.is_truthy(s)
    s:close()
  end)
end)
