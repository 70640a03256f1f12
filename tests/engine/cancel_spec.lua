-- Cancellation: a cancelled task's cleanups (<close> handlers, pcall'd code) run inside it and
-- may wait, under the cleanup deadline; opsh.shield; signals to a child opsh; pcall and
-- opsh.try cannot swallow the cancellation.
local opsh = require("opsh")
local fs = require("opsh.fs")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local redis = require("opsh.redis")
local twin_redis = require("opsh.twin.redis")
local core = require("opsh._core")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

local dir
setup(function() dir = fs.tmpdir("opsh-cancel-spec-") end)
teardown(function() if dir then fs.rmtree(dir) end end)

-- a cleanup that waits twice (a sleep, then a file write through the thread pool)
local function closer(path, log)
  return setmetatable({}, {__close = function(_, err)
    log[#log + 1] = "cleanup starts: " .. tostring(opsh.is_error(err) and err.kind or err)
    opsh.sleep(0.01)
    fs.write(path, "released")
    log[#log + 1] = "cleanup done"
  end})
end

describe("cleanups of a cancelled task can wait", function()
  it("after task:cancel; wait() returns once they are done", function()
    local log, path = {}, dir .. "/cancel"
    local t = opsh.spawn(function()
      local _ <close> = closer(path, log)
      opsh.sleep(30)
    end)
    opsh.yield()
    assert.are.equal("suspended", t:status())
    assert.is_true(t:cancel())
    assert.are.same({"cleanup starts: cancelled"}, log)   -- started at once, now waiting
    assert.is_true(t:cancelling())
    assert.is_false(t:cancel())   -- asked once
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal("cancelled", t:status())
    assert.is_false(t:cancelling())
    assert.are.same({"cleanup starts: cancelled", "cleanup done"}, log)
    assert.are.equal("released", fs.read(path))
  end)

  it("after opsh.timeout, which raises once they are done", function()
    local log, path = {}, dir .. "/timeout"
    local ok, err = opsh.try(opsh.timeout, 0.05, function()
      local _ <close> = closer(path, log)
      opsh.sleep(30)
    end)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.are.same({"cleanup starts: cancelled", "cleanup done"}, log)
    assert.are.equal("released", fs.read(path))
  end)

  it("after a failed sibling in opsh.parallel, which raises once they are done", function()
    local log, path = {}, dir .. "/parallel"
    local ok, err = opsh.try(opsh.parallel, {"holder", "failing"}, function(name)
      if name == "failing" then
        opsh.sleep(0.02)
        opsh.raise("deploy", "rollout failed")
      end
      local _ <close> = closer(path, log)
      opsh.sleep(30)
    end)
    assert.is_false(ok)
    assert.are.equal("deploy", err.kind)
    assert.are.equal(2, err.item)
    assert.are.same({"cleanup starts: cancelled", "cleanup done"}, log)
    assert.are.equal("released", fs.read(path))
  end)

  it("in a task cancelled after it was woken but before it ran again", function()
    local log, path = {}, dir .. "/woken"
    local t = opsh.spawn(function()
      local _ <close> = closer(path, log)
      core.suspend()
      log[#log + 1] = "resumed"
    end)
    opsh.yield()
    assert.is_true(core.wake(t, "value"))
    assert.are.equal("ready", t:status())
    t:cancel()
    pcall(t.wait, t)
    assert.are.same({"cleanup starts: cancelled", "cleanup done"}, log)
  end)

  it("reaches a running task at its next wait, which is then never woken by what it waited for", function()
    local order = {}
    local x = opsh.spawn(function() opsh.sleep(0.05) order[#order + 1] = "x done" end)
    local y = opsh.spawn(function() opsh.sleep(0.15) order[#order + 1] = "y done" end)
    local a
    a = opsh.spawn(function()
      local _ <close> = setmetatable({}, {__close = function()
        opsh.sleep(0.3)
        order[#order + 1] = "a's cleanup slept"
      end})
      local c = opsh.spawn(function()
        local _ <close> = setmetatable({}, {__close = function() order[#order + 1] = "c cancels a"; a:cancel() end})
        opsh.sleep(30)
      end)
      opsh.yield()
      c:cancel()   -- c's cleanup cancels a, which is running: a gets it at its next wait
      order[#order + 1] = "a waits for x"
      x:wait()
      order[#order + 1] = "a's wait returned"
    end)
    assert.are.equal("cancelled", select(2, pcall(a.wait, a)).kind)
    y:wait()
    assert.are.same({"c cancels a", "a waits for x", "x done", "y done", "a's cleanup slept"}, order)
  end)

  it("cannot be swallowed by pcall or opsh.try: the task ends cancelled", function()
    local after = {}
    local t = opsh.spawn(function()
      pcall(opsh.sleep, 30)
      after[#after + 1] = "pcall returned"
      opsh.try(opsh.sleep, 30)
      after[#after + 1] = "try returned"
    end)
    local u = opsh.spawn(function()
      xpcall(opsh.sleep, debug.traceback, 30)
      after[#after + 1] = "xpcall returned"
    end)
    opsh.yield()
    t:cancel()
    u:cancel()
    assert.are.equal("cancelled", select(2, pcall(t.wait, t)).kind)
    assert.are.equal("cancelled", select(2, pcall(u.wait, u)).kind)
    assert.are.same({}, after)
  end)

  it("a cleanup past its deadline is cut off; the next cleanup still runs", function()
    local previous = opsh.cleanup_timeout(0.1)
    local log = {}
    local t = opsh.spawn(function()
      local _ <close> = setmetatable({}, {__close = function()
        log[#log + 1] = "second cleanup"
        local ok, err = pcall(opsh.sleep, 0.01)   -- past the deadline a wait raises at once
        log[#log + 1] = ok and "waited" or err.kind
      end})
      local _ <close> = setmetatable({}, {__close = function()
        log[#log + 1] = "first cleanup"
        opsh.sleep(30)
        log[#log + 1] = "first cleanup slept"
      end})
      opsh.sleep(30)
    end)
    opsh.yield()
    t:cancel()
    local ok, err = pcall(t.wait, t)
    opsh.cleanup_timeout(previous)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.same({"first cleanup", "second cleanup", "timeout"}, log)
  end)

  it("a shielded cleanup finishes before the cancellation goes on", function()
    local log = {}
    local t = opsh.spawn(function()
      opsh.shield(function()
        log[#log + 1] = "shielded work starts"
        opsh.sleep(0.05)
        fs.write(dir .. "/shielded", "done")
        log[#log + 1] = "shielded work done"
      end)
      log[#log + 1] = "after the shield"
    end)
    opsh.yield()
    assert.is_true(t:cancel())
    assert.are.equal("suspended", t:status())   -- the shield holds the cancellation back
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.are.equal("cancelled", err.kind)
    assert.are.same({"shielded work starts", "shielded work done"}, log)
    assert.are.equal("done", fs.read(dir .. "/shielded"))
  end)

  it("a shield has its own deadline, past which its waits raise a timeout", function()
    local ok, err = opsh.try(opsh.shield, function() opsh.sleep(30) end, {timeout = 0.05})
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("shield", err.deadline)
    assert.are.same({1, 2}, {opsh.shield(function() opsh.sleep(0.001) return 1, 2 end, {timeout = math.huge})})
  end)

  it("a shield lets a cleanup outlast the cleanup deadline", function()
    local previous = opsh.cleanup_timeout(0.05)
    local log = {}
    local t = opsh.spawn(function()
      local _ <close> = setmetatable({}, {__close = function()
        opsh.shield(function() opsh.sleep(0.15) end, {timeout = 5})
        log[#log + 1] = "shielded sleep done"
      end})
      opsh.sleep(30)
    end)
    opsh.yield()
    t:cancel()
    pcall(t.wait, t)
    opsh.cleanup_timeout(previous)
    assert.are.same({"shielded sleep done"}, log)
  end)

  it("mutex waiters that are cancelled leave the queue", function()
    local m = opsh.mutex()
    m:lock()
    local waiter = opsh.spawn(function() m:lock() end)
    local next_in_line = opsh.spawn(function() m:lock() return "got it" end)
    opsh.yield()
    waiter:cancel()
    m:unlock()
    assert.are.equal("got it", next_in_line:wait())
    assert.are.equal(next_in_line, m.owner)
  end)
end)

describe("a Redis lock released by a cancelled task's <close>", function()
  local server
  setup(function()
    server = twin_redis.start{dir = dir .. "/redis", password = "cancel-spec-pw"}
  end)
  teardown(function() if server then server:stop() end end)

  local function locked(r, key, ttl_ms)
    assert.are.equal("OK", r:set(key, "held", "NX", "PX", ttl_ms))
    return setmetatable({}, {__close = function() r:del(key) end})
  end

  it("is free once the cancelled task has finished", function()
    local check <close> = redis.connect(server:options())
    local t = opsh.spawn(function()
      local r <close> = redis.connect(server:options())
      local _ <close> = locked(r, "spec:lock", 60000)
      opsh.sleep(30)
    end)
    S.wait_until(function() return check:get("spec:lock") ~= nil end, "the lock")
    t:cancel()
    pcall(t.wait, t)
    assert.is_nil(check:get("spec:lock"))
  end)
end)

describe("signals to a child opsh", function()
  -- the chunk holds a cleanup that waits, in its own task and in a background task
  local script = [[
    local opsh = require("opsh")
    local fs = require("opsh.fs")
    local out = os.getenv("SPEC_OUT")
    local function cleanup(path)
      return setmetatable({}, {__close = function(_, err)
        opsh.sleep(0.05)
        fs.write(path, "cleaned after " .. tostring(opsh.is_error(err) and err.kind or err))
      end})
    end
    opsh.spawn(function()
      local _ <close> = cleanup(out .. ".background")
      opsh.sleep(60)
    end)
    local _ <close> = cleanup(out)
    fs.write(out .. ".ready", "")
    opsh.sleep(60)
  ]]

  local function signalled(signal, name)
    local out = dir .. "/" .. name
    local p <close> = proc.spawn{argv = {runtime.exe(), "-e", script}, env_add = {SPEC_OUT = out},
      stderr = "capture", stdout = "null"}
    S.wait_until(function() return fs.exists(out .. ".ready") end, "the child to start")
    p:kill(signal)
    local r = p:wait()
    return r, out
  end

  for _, case in ipairs{{"INT", 130, "interrupted"}, {"TERM", 143, "terminated %(SIGTERM%)"},
      {"HUP", 129, "hangup %(SIGHUP%)"}} do
    it("SIG" .. case[1] .. " runs the cleanups, then exits " .. case[2], function()
      local r, out = signalled(case[1], case[1])
      assert.are.equal(case[2], r.code, r.stderr)
      assert.are.equal("cleaned after interrupted", fs.read(out, {missing_ok = true}))
      assert.are.equal("cleaned after cancelled", fs.read(out .. ".background", {missing_ok = true}))
      assert.matches(case[3], r.stderr)
    end)
  end
end)

describe("durations", function()
  it("treats math.huge as no time limit", function()
    assert.are.equal(7, opsh.timeout(math.huge, function() opsh.sleep(0.01) return 7 end))
    local t = opsh.spawn(function() opsh.sleep(math.huge) end)
    local waiter = opsh.spawn(function() return t:wait(math.huge) end)
    opsh.sleep(0.02)
    assert.are.equal("suspended", t:status())
    assert.are.equal("suspended", waiter:status())
    t:cancel()
    assert.are.equal("cancelled", select(2, pcall(waiter.wait, waiter)).kind)
  end)

  it("refuses NaN, negative and too long durations with a usage error", function()
    local finished = opsh.spawn(function() end)
    finished:wait()
    for _, bad in ipairs{0 / 0, -1, 1e30, -math.huge} do
      for _, call in ipairs{
        function() opsh.sleep(bad) end,
        function() opsh.timeout(bad, function() end) end,
        function() finished:wait(bad) end,
        function() opsh.shield(function() end, {timeout = bad}) end,
        function() require("opsh.net").port_open("127.0.0.1", 1, bad) end,
      } do
        local ok, err = opsh.try(call)
        assert.is_false(ok)
        assert.are.equal("usage", err.kind, tostring(err))
      end
    end
  end)
end)

describe("error values that are not structured", function()
  local function run(chunk)
    return proc.run{argv = {runtime.exe(), "-e", chunk}, check = false}
  end

  it("survives a __tostring that raises or returns no string", function()
    local r = run('error(setmetatable({}, {__tostring = function() error("x") end}))')
    assert.are.equal(1, r.code, r.stderr)
    r = run('error(setmetatable({}, {__tostring = function() return {} end}))')
    assert.are.equal(1, r.code, r.stderr)
  end)

  it("prints a plain {kind=, message=} table as a structured error", function()
    local r = run('error({kind = "usage", message = "no such environment"})')
    assert.are.equal("opsh: no such environment\n", r.stderr)
    assert.are.equal(2, r.code)
    local ok, err = opsh.try(error, {kind = "k8s", message = "not found"})
    assert.is_false(ok)
    assert.are.equal("k8s", err.kind)
    assert.are.equal("not found", tostring(err))
  end)
end)

describe("shutdown", function()
  it("exits cleanly while thread-pool writes of cancelled tasks are pending", function()
    -- under AddressSanitizer this caught the state closing under the writes
    local r = proc.run{argv = {runtime.exe(), "-e", [[
      local opsh = require("opsh")
      local fs = require("opsh.fs")
      local dir = os.getenv("SPEC_DIR")
      for i = 1, 8 do
        opsh.spawn(function()
          local f <close> = fs.open(dir .. "/pending" .. i, "w")
          while true do f:write(string.rep("x", 4 * 1024 * 1024) .. i) end
        end)
      end
      opsh.yield()
      opsh.yield()
    ]]}, env_add = {SPEC_DIR = dir}, check = false}
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("Sanitizer"), r.stderr)
  end)
end)
