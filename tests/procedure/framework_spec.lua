-- The procedure framework: named steps with undo (opsh.steps), the audit log (opsh.audit) and
-- resource leases in a real Redis (opsh.lock).
local opsh = require("opsh")
local fs = require("opsh.fs")
local audit = require("opsh.audit")
local dryrun = require("opsh.dryrun")
local steps = require("opsh.steps")
local lock = require("opsh.lock")
local redis = require("opsh.redis")
local twin_redis = require("opsh.twin.redis")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

local function quiet_ctx(extra)
  local ctx = {flags = {}, quiet = true, dry_run = false, yes = false}
  for k, v in pairs(extra or {}) do ctx[k] = v end
  return ctx
end

describe("opsh.audit", function()
  local tmp
  before_each(function()
    tmp = fs.tmpdir("opsh-audit-spec-")
    audit.reset()
    audit.configure({file = tmp .. "/sub/audit.log", procedure = "spec-proc", environment = "twin"})
  end)
  after_each(function() audit.reset(); fs.rmtree(tmp) end)

  it("appends one JSON line per mutation with who, where and what, in a 0600 file", function()
    audit.record({kind = "http", action = "PATCH https://arm.example/x", target = "x", result = "200"})
    audit.in_step("scale pool", function()
      audit.record({kind = "redis", action = "SET k", target = "cache"})
    end)
    local lines = audit.lines()
    assert.are.equal(2, #lines)
    assert.are.equal("PATCH https://arm.example/x", lines[1].action)
    assert.are.equal("spec-proc", lines[1].procedure)
    assert.are.equal("twin", lines[1].environment)
    assert.is_nil(lines[1].step)
    assert.are.equal("scale pool", lines[2].step)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", lines[1].time)
    assert.is_string(lines[1].operator)
    assert.is_string(lines[1].host)
    assert.are.equal("integer", math.type(lines[1].pid))
    assert.are.equal(tonumber("600", 8), fs.stat(tmp .. "/sub/audit.log").mode & tonumber("777", 8))
  end)

  it("never writes a secret, raw or inside the request", function()
    local pw = opsh.secret("hunter2-very-secret")
    audit.record({kind = "pg", action = "ALTER ROLE adminuser PASSWORD hunter2-very-secret", secrets = {pw},
      request = {password = pw, note = "set"}})
    local text = fs.read(audit.file())
    assert.is_nil(text:find("hunter2", 1, true))
    assert.is_truthy(text:find("<redacted>", 1, true))
  end)

  it("records a command that is not a read when it runs, with how it ended; reads and secrets never", function()
    local proc = require("opsh.proc")
    local pw = opsh.secret("hunter2-in-the-environment")
    proc.run{argv = {"true"}, env_add = {PGPASSWORD = pw}}
    proc.run{argv = {"cat", "/proc/self/stat"}, read = true}
    pcall(proc.run, {argv = {"sh", "-c", "exit 3"}})
    local p <close> = proc.spawn{argv = {"sleep", "0"}}
    p:wait()
    local lines = audit.lines()
    assert.are.equal(3, #lines)
    assert.are.same({"proc", "run true", "exit 0"}, {lines[1].kind, lines[1].action, lines[1].result})
    assert.are.same({"PGPASSWORD"}, lines[1].request.env_add)
    assert.are.equal("run sh -c 'exit 3'", lines[2].action)
    assert.matches("^error: 'sh' exited with code 3", lines[2].result)
    assert.are.equal("spawn sleep 0", lines[3].action)
    assert.matches("^started pid %d+$", lines[3].result)
    assert.is_nil(fs.read(audit.file()):find("hunter2", 1, true))
  end)

  it("records nothing of any task while quietly_all runs (the twin's own work)", function()
    local before = audit.changes()
    audit.quietly_all(function()
      local t = opsh.spawn(function() audit.record({kind = "proc", action = "run initdb"}) end)
      t:wait()
      audit.record({kind = "http", action = "PUT https://registry/v2/x"})
    end)
    assert.are.equal(before, audit.changes())
    assert.are.equal(0, #audit.lines())
    audit.record({kind = "http", action = "PUT https://arm/x"})
    assert.are.equal(1, #audit.lines())
  end)

  it("counts planned changes as changes too", function()
    local before = audit.changes()
    dryrun.with(function() dryrun.record({kind = "http", action = "DELETE https://x/y"}) end)
    dryrun.reset()
    assert.are.equal(before + 1, audit.changes())
    assert.are.equal(0, #audit.lines())   -- planned, not sent: no audit line
  end)
end)

describe("opsh.steps", function()
  local tmp
  before_each(function()
    tmp = fs.tmpdir("opsh-steps-spec-")
    audit.reset()
    audit.configure({file = tmp .. "/audit.log"})
  end)
  after_each(function() audit.reset(); fs.rmtree(tmp) end)

  it("times each step, counts its changes and says 'no change' when there were none", function()
    local run = steps.new(quiet_ctx())
    local v = run:step("read", function() return 42 end)
    assert.are.equal(42, v)
    run:step("write", function() audit.record({kind = "http", action = "PUT https://x/1"}) end, {target = "x"})
    local rows = run:rows()
    assert.are.equal("no change", rows[1].status)
    assert.are.equal(0, rows[1].changes)
    assert.are.equal("done", rows[2].status)
    assert.are.equal(1, rows[2].changes)
    assert.are.equal("x", rows[2].target)
    assert.is_number(rows[2].seconds)
    -- the clock is in seconds: a step that waits shows a part of a second, not 0
    run:step("wait", function() opsh.sleep(0.05) end)
    assert.is_true(run:rows()[3].seconds > 0)
    assert.are.equal("write", audit.lines()[1].step)
    assert.are.same({steps = 3, changes = 1, failed = 0, undone = 0, not_undone = 0},
      (function() local s = run:summary(); s.seconds = nil; return s end)())
  end)

  it("on failure runs the completed steps' undo actions in reverse order and reports each", function()
    local run = steps.new(quiet_ctx())
    local order = {}
    run:step("one", function() audit.record({kind = "t", action = "one"}); return "a" end,
      {undo = function(r) order[#order + 1] = "undo one " .. r end})
    run:step("two", function() audit.record({kind = "t", action = "two"}) end)   -- no undo
    run:step("three", function() audit.record({kind = "t", action = "three"}); return 3 end,
      {undo = function(n) order[#order + 1] = "undo three " .. n end})
    local ok, err = pcall(run.step, run, "four", function() opsh.raise("azure", "promote failed") end)
    assert.is_false(ok)
    assert.are.equal("azure", err.kind)
    run:rollback()
    assert.are.same({"undo three 3", "undo one a"}, order)
    local status = {}
    for _, r in ipairs(run:rows()) do status[r.step] = r.status end
    assert.are.same({one = "undone", two = "not undone", three = "undone", four = "failed"}, status)
    local s = run:summary()
    assert.are.equal(1, s.failed)
    assert.are.equal(2, s.undone)
    assert.are.equal(1, s.not_undone)
    -- the undo actions' own lines carry their step
    run:rollback()   -- a second rollback does nothing
    assert.are.same({"undo three 3", "undo one a"}, order)
  end)

  it("reports an undo that fails instead of hiding it", function()
    local run = steps.new(quiet_ctx())
    run:step("one", function() audit.record({kind = "t", action = "x"}) end,
      {undo = function() opsh.raise("pg", "server gone") end})
    pcall(run.step, run, "two", function() error("boom") end)
    run:rollback()
    local r = run:rows()[1]
    assert.are.equal("undo failed", r.status)
    assert.matches("server gone", r.detail)
  end)

  it("refuses a destructive step in a procedure not declared destructive, before it runs", function()
    local ran = false
    local run = steps.new(quiet_ctx())
    local ok, err = pcall(run.step, run, "drop", function() ran = true end, {destructive = true})
    assert.is_false(ok)
    assert.are.equal("script", err.kind)
    assert.matches("declare flags", err.message)
    assert.is_false(ran)
  end)

  it("asks before a destructive step, and a refusal stops it before it runs", function()
    local asked
    local ctx = quiet_ctx({flags = {destructive = true},
      confirm = function(q) asked = q; opsh.raise("aborted", "not confirmed: " .. q) end})
    local ran = false
    local run = steps.new(ctx)
    local ok, err = pcall(run.step, run, "promote replica", function() ran = true end, {destructive = true})
    assert.is_false(ok)
    assert.are.equal("aborted", err.kind)
    assert.matches("promote replica", asked)
    assert.is_false(ran)
    -- --yes and --dry-run do not ask
    for _, flag in ipairs({"yes", "dry_run"}) do
      local c = quiet_ctx({flags = {destructive = true}, confirm = function() error("asked") end})
      c[flag] = true
      steps.new(c):step("promote replica", function() end, {destructive = true})
    end
  end)

  it("rejects unknown options with the nearest names", function()
    local ok, err = pcall(steps.new(quiet_ctx()).step, steps.new(quiet_ctx()), "x", function() end, {undoo = 1})
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("unknown option 'undoo'", err.message)
  end)
end)

describe("opsh.lock against a real Redis", function()
  local tmp, server, certs

  setup(function()
    tmp = fs.tmpdir("opsh-lock-spec-")
    certs = S.server_certs(tmp .. "/pki")
    server = twin_redis.start{dir = tmp .. "/redis", password = "lock-spec-pw", tls = certs}
  end)
  teardown(function()
    if server then server:stop() end
    if tmp then fs.rmtree(tmp) end
  end)

  local function conn() return redis.connect(server:options()) end

  it("lets exactly one of many concurrent runs hold a resource, and names the holder to the others", function()
    local holders, refusals = 0, {}
    local tasks = {}
    for i = 1, 10 do
      tasks[i] = opsh.spawn(function()
        local r <close> = conn()
        local ok, lease = pcall(lock.acquire, r, {"postgres:psql-legal-production"},
          {procedure = "run-" .. i, operator = "op" .. i})
        if ok then
          holders = holders + 1
          opsh.sleep(0.2)
          lease:release()
        else
          refusals[#refusals + 1] = lease
        end
      end)
    end
    for _, t in ipairs(tasks) do t:wait() end
    assert.are.equal(1, holders)
    assert.are.equal(9, #refusals)
    for _, e in ipairs(refusals) do
      assert.are.equal("locked", e.kind)
      assert.matches("postgres:psql%-legal%-production is locked by op%d+@", e.message)
      assert.matches("procedure run%-%d+", e.message)
    end
  end)

  it("waits up to a bound for a busy resource, then takes it once freed", function()
    local r <close> = conn()
    local first = lock.acquire(r, "redis:redis-legal-production", {procedure = "rotate-redis-key"})
    local t = opsh.spawn(function()
      local r2 <close> = conn()
      local lease = lock.acquire(r2, "redis:redis-legal-production", {wait = 5, procedure = "dr-failover"})
      local h = lock.holder(r2, "redis:redis-legal-production")
      lease:release()
      return h.procedure, lease:token()
    end)
    opsh.sleep(0.3)
    assert.are.equal("rotate-redis-key", lock.holder(r, "redis:redis-legal-production").procedure)
    local token1 = first:token()
    first:release()
    local proc, token2 = t:wait()
    assert.are.equal("dr-failover", proc)
    assert.is_true(token2 > token1)   -- fencing tokens only grow
    assert.is_nil(lock.holder(r, "redis:redis-legal-production"))
  end)

  it("gives up after the bound with a locked error naming the holder", function()
    local r <close> = conn()
    local first = lock.acquire(r, "postgres:bounded", {procedure = "dr-failover"})
    local t = opsh.spawn(function()
      local r2 <close> = conn()
      return pcall(lock.acquire, r2, "postgres:bounded", {wait = 0.3, procedure = "rotate-db-password"})
    end)
    local ok, err = t:wait(20)
    first:release()
    assert.is_false(ok)
    assert.are.equal("locked", err.kind)
    assert.matches("dr%-failover", err.message)
    assert.matches("waited 0.3 s", err.message, 1, true)
  end)

  it("takes several resources all or none", function()
    local r <close> = conn()
    local a = lock.acquire(r, "postgres:b")
    local ok, err = pcall(lock.acquire, r, {"postgres:a", "postgres:b", "postgres:c"})
    assert.is_false(ok)
    assert.are.equal("postgres:b", err.resource)
    -- nothing of the failed attempt is left held
    assert.is_nil(lock.holder(r, "postgres:a"))
    assert.is_nil(lock.holder(r, "postgres:c"))
    a:release()
    local all <close> = lock.acquire(r, {"postgres:c", "postgres:a", "postgres:b"})
    assert.are.same({"postgres:a", "postgres:b", "postgres:c"}, all.resources)
  end)

  it("audits the Redis writes a run sends, not its reads, and not the leases it takes", function()
    local log = tmp .. "/audit-redis.log"
    audit.reset()
    audit.configure({file = log})
    local r <close> = conn()
    local before = audit.changes()
    local lease = lock.acquire(r, "redis:audited", {ttl = 1})
    opsh.sleep(0.5)   -- a renewal happens meanwhile
    r:get("audit:k")
    r:set("audit:k", "v")
    r:call("HSET", "audit:h", "f", "x")
    r:exists("audit:k")
    r:del("audit:k", "audit:h")
    lease:release()
    local lines = audit.lines(log)
    audit.reset()
    assert.are.equal(3, #lines)
    assert.are.equal(3, audit.changes() - before)
    assert.are.same({"SET audit:k", "HSET audit:h", "DEL audit:k"}, {lines[1].action, lines[2].action,
      lines[3].action:match("^DEL %S+")})
    assert.are.equal("redis", lines[1].kind)
    assert.is_nil(fs.read(log):find("lock-spec-pw", 1, true))
  end)

  it("audits the writes of a pipeline, each with its own outcome, and not its reads", function()
    local log = tmp .. "/audit-pipeline.log"
    audit.reset()
    audit.configure({file = log})
    local r <close> = conn()
    r:pipeline(function(p)
      p:set("audit:p", "1")
      p:get("audit:p")
      p:call("HSET", "audit:p", "f", "x")   -- a wrong type: an error reply in its place
      p:incr("audit:p")
    end)
    r:del("audit:p")
    local lines = audit.lines(log)
    audit.reset()
    assert.are.same({"SET audit:p", "HSET audit:p", "INCR audit:p", "DEL audit:p"},
      {lines[1].action, lines[2].action, lines[3].action, lines[4].action})
    assert.are.equal("ok", lines[1].result)
    assert.matches("^error: WRONGTYPE", lines[2].result)
    assert.are.equal("ok", lines[3].result)
  end)

  it("keeps a lease alive past its ttl while held, and frees it when the holder is gone", function()
    local r <close> = conn()
    local lease = lock.acquire(r, "aks:pool", {ttl = 1})
    opsh.sleep(1.6)
    assert.is_true(lease:check())
    assert.is_not_nil(lock.holder(r, "aks:pool"))
    lease:release()
    -- a holder that stops renewing (crashed) loses the resource after ttl
    local dead = lock.acquire(r, "aks:pool2", {ttl = 1})
    dead.renewer:cancel(); dead.renewer = nil
    opsh.sleep(1.3)
    assert.is_nil(lock.holder(r, "aks:pool2"))
  end)

  it("takes no lease in a dry-run and never releases someone else's", function()
    local r <close> = conn()
    local lease = dryrun.with(function() return lock.acquire(r, "postgres:x") end)
    dryrun.reset()
    assert.is_nil(lock.holder(r, "postgres:x"))
    local mine = lock.acquire(r, "postgres:x", {ttl = 1})
    mine.renewer:cancel(); mine.renewer = nil
    opsh.sleep(1.3)                 -- expired; someone else takes it
    local theirs <close> = lock.acquire(r, "postgres:x", {procedure = "theirs"})
    mine:release()                  -- must not delete theirs
    assert.are.equal("theirs", lock.holder(r, "postgres:x").procedure)
    assert.is_truthy(lease)
  end)

  it("refuses bad resource names with a usage error", function()
    local r <close> = conn()
    for _, bad in ipairs({{}, "", "has space", 5}) do
      local ok, err = pcall(lock.acquire, r, bad)
      assert.is_false(ok)
      assert.are.equal("usage", err.kind)
    end
  end)
end)
