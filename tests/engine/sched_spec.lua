local opsh = require("opsh")
local core = require("opsh._core")

describe("opsh scheduler", function()
  it("runs spawned tasks concurrently and returns their results", function()
    local events = {}
    local function job(name, n)
      events[#events + 1] = name .. " starts"
      opsh.sleep(0.05)
      events[#events + 1] = name .. " ends"
      return name, n
    end
    local a = opsh.spawn(job, "a", 1)
    local b = opsh.spawn(job, "b", 2)
    local ra, na = a:wait()
    local rb, nb = b:wait()
    assert.are.same({"a", 1, "b", 2}, {ra, na, rb, nb})
    -- the two sleeps overlap: both started before either ended
    local started, ended = {events[1], events[2]}, {events[3], events[4]}
    table.sort(started)
    table.sort(ended)
    assert.are.same({"a starts", "b starts"}, started)
    assert.are.same({"a ends", "b ends"}, ended)
  end)

  it("re-raises a task's structured error from wait", function()
    local t = opsh.spawn(function() opsh.raise("http", "not found", {status = 404}) end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("http", err.kind)
    assert.are.equal(404, err.status)
    assert.are.equal("not found (status 404)", tostring(err))
  end)

  it("cancels a sleeping task and runs its <close> variables", function()
    local closed = false
    local t = opsh.spawn(function()
      local _ <close> = setmetatable({}, {__close = function() closed = true end})
      opsh.sleep(10)
    end)
    opsh.sleep(0.01)
    assert.are.equal("suspended", t:status())
    assert.is_true(t:cancel())
    assert.are.equal("cancelled", t:status())
    assert.is_true(closed)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
  end)

  it("times out with opsh.timeout and cancels the slow function", function()
    local closed = false
    local ok, err = opsh.try(opsh.timeout, 0.02, function()
      local _ <close> = setmetatable({}, {__close = function() closed = true end})
      opsh.sleep(5)
    end)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(closed)
    assert.are.same({7}, {opsh.timeout(1, function() return 7 end)})
  end)

  it("keeps parallel results in input order and honours the limit", function()
    local active, peak = 0, 0
    local items = {}
    for i = 1, 20 do items[i] = i end
    local res = opsh.parallel(items, function(i)
      active = active + 1
      peak = math.max(peak, active)
      opsh.sleep((21 - i) / 1000)
      active = active - 1
      return i * i
    end, {limit = 4})
    for i = 1, 20 do assert.are.equal(i * i, res[i]) end
    assert.are.equal(4, peak)
  end)

  it("stops parallel at the first error, cancels the rest and names the item", function()
    local finished = 0
    local ok, err = opsh.try(opsh.parallel, {"web", "gateway", "worker"}, function(name)
      if name == "gateway" then opsh.raise("k8s", "deployment not found", {status = 404}) end
      opsh.sleep(1)
      finished = finished + 1
    end)
    assert.is_false(ok)
    assert.are.equal("k8s", err.kind)
    assert.are.equal(2, err.item)
    assert.are.equal(404, err.status)
    assert.matches("item 2 %(gateway%): deployment not found", err.message)
    opsh.sleep(0.01)
    assert.are.equal(0, finished)
  end)

  it("serialises critical sections with a mutex", function()
    local m = opsh.mutex()
    local log = {}
    local items = {1, 2, 3}
    opsh.parallel(items, function(i)
      m:with(function()
        log[#log + 1] = "in" .. i
        opsh.sleep(0.005)
        log[#log + 1] = "out" .. i
      end)
    end)
    assert.are.same({"in1", "out1", "in2", "out2", "in3", "out3"}, log)
  end)

  it("try returns structured errors and wraps Lua errors", function()
    local ok, err = opsh.try(function() error("plain") end)
    assert.is_false(ok)
    assert.are.equal("lua", err.kind)
    assert.matches("plain", err.message)
    assert.are.same({true, 1, 2}, {opsh.try(function() return 1, 2 end)})
  end)

  it("refuses to block inside a coroutine of its own", function()
    local co = coroutine.wrap(function() return pcall(opsh.sleep, 0) end)
    local ok, err = co()
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
  end)

  it("redacts secrets", function()
    local s = opsh.secret("hunter2")
    assert.are.equal("<redacted>", tostring(s))
    assert.has_error(function() return "x" .. s end)
    assert.are.equal("hunter2", core.reveal(s))
    assert.is_true(s == opsh.secret("hunter2"))
  end)
end)

describe("opsh.tasks", function()
  it("lists the live tasks and shows where a suspended one waits", function()
    local t = opsh.spawn(function() opsh.sleep(5) end)
    opsh.yield()
    local found = false
    for _, task in ipairs(opsh.tasks()) do if task == t then found = true end end
    assert.is_true(found)
    local tb = t:traceback()
    assert.matches("task %d+ %(suspended%)", tb)
    assert.matches("sleep'", tb)
    t:cancel()
    assert.is_nil(t:traceback())
    for _, task in ipairs(opsh.tasks()) do assert.are_not.equal(t, task) end
  end)
end)
