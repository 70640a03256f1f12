-- The REPL's history file is read and written on libuv's thread pool: the loop and the other
-- tasks go on meanwhile.
local opsh = require("opsh")
local fs = require("opsh.fs")
local C = require("opsh._repl")

describe("REPL history file I/O", function()
  local dir
  setup(function() dir = fs.tmpdir("opsh-history-spec-") end)
  teardown(function() fs.rmtree(dir) end)

  it("lets other tasks run while it appends, loads and compacts", function()
    local path = dir .. "/state/history"
    local order = {}
    local function step(name, fn, ...)
      opsh.spawn(function() order[#order + 1] = "other task during " .. name end)
      local res = table.pack(fn(...))
      order[#order + 1] = name .. " done"
      return table.unpack(res, 1, res.n)
    end
    assert.are.same({}, step("load", C.history_load, path, 2))
    for i = 1, 5 do assert.is_true(step("append", C.history_append, path, "line " .. i)) end
    assert.are.same({"line 4", "line 5"}, step("load", C.history_load, path, 2))   -- compacts
    assert.are.equal("line 4\nline 5\n", fs.read(path))
    for i = 1, #order, 2 do
      assert.matches("^other task during ", order[i])
      assert.matches(" done$", order[i + 1])
    end
    assert.are.equal(14, #order)
  end)

  it("works outside a task too (inline)", function()
    local path = dir .. "/inline"
    local co = coroutine.wrap(function()
      assert(C.history_append(path, "a\nb"))
      return C.history_load(path, 10)
    end)
    assert.are.same({"a\nb"}, co())
  end)
end)
