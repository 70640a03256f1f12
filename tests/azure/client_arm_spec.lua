-- opsh.azure's ARM client against a stand-in (tests/azure/mock_arm.lua) whose every answer the spec
-- sets, for what the ARM twin cannot produce on demand: exact error bodies and ids, long-running
-- operations of every shape (Azure-AsyncOperation, Location, provisioningState; Failed; handles resumed
-- later), empty nextLink pages, a 401 refresh, dry-run, the budget's edge cases (a probe never
-- answered, a pessimistic refill). Injected 5xx/429 retries run against the twin (client_twin_spec).
local opsh = require("opsh")
local json = require("opsh.json")
local dryrun = require("opsh.dryrun")
local arm_mod = require("opsh.azure.arm")
local credential = require("opsh.azure.credential")
local throttle = require("opsh.azure.throttle")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/azure"
local S = dofile(here .. "/../support/helpers.lua")
local mock_mod = dofile(here .. "/mock_arm.lua")

local RG = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Test/things"

describe("opsh.azure ARM client", function()
  local mock

  local function new_arm(extra_env, opts)
    throttle.reset()
    local envt = mock.env(extra_env)
    opts = opts or {}
    opts.credential = opts.credential or credential.new(envt, {getenv = function() return nil end})
    opts.min_poll = 0.01
    opts.poll_interval = 0.05
    return arm_mod.new(envt, opts), envt
  end

  lazy_setup(function() mock = mock_mod.start() end)
  lazy_teardown(function() mock.close() end)

  it("GETs JSON with the api-version, a bearer token and a correlation id", function()
    mock.route("GET", RG .. "/a", function(req)
      return {id = RG .. "/a", name = "a", apiv = req.query["api-version"]}
    end)
    local arm = new_arm()
    local doc = arm:get(RG .. "/a", {api_version = "2025-01-01"})
    assert.equal("a", doc.name)
    assert.equal("2025-01-01", doc.apiv)
    assert.truthy(mock.seen_correlation and mock.seen_correlation:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
    local err = S.catch(arm.get, arm, RG .. "/a", {})
    assert.equal("usage", err.kind)
    assert.truthy(err.message:find("api_version", 1, true))
  end)

  it("raises ARM errors as kind azure with code, message, status and the ids", function()
    mock.route("PUT", RG .. "/busy", function()
      return {status = 409, headers = {["x-ms-request-id"] = "req-409", ["x-ms-correlation-request-id"] = "corr-1"},
        json = {error = {code = "OperationNotAllowed", message = "Another operation is in progress.",
          target = "busy"}}}
    end)
    mock.route("GET", RG .. "/gone", function()
      return {status = 404, json = {error = {code = "ResourceNotFound", message = "not found"}}}
    end)
    local arm = new_arm()
    local err = S.catch(arm.put, arm, RG .. "/busy", {api_version = "1", body = {properties = {}}})
    assert.equal("azure", err.kind)
    assert.equal("OperationNotAllowed", err.code)
    assert.equal(409, err.status)
    assert.equal("req-409", err.request_id)
    assert.equal("corr-1", err.correlation_id)
    assert.equal("busy", err.target)
    assert.truthy(err.message:find("Another operation is in progress.", 1, true))
    assert.is_nil(err.message:find("\n"))
    assert.is_nil(arm:get(RG .. "/gone", {api_version = "1", missing_ok = true}))
    assert.equal("ResourceNotFound", S.catch(arm.get, arm, RG .. "/gone", {api_version = "1"}).code)
  end)

  it("follows Azure-AsyncOperation to Succeeded, then GETs the resource", function()
    local polls, state = 0, "Updating"
    local put_id
    mock.route("PUT", RG .. "/lro1", function(req)
      put_id = req.headers["x-ms-correlation-request-id"]
      return {status = 201, headers = {["Azure-AsyncOperation"] = mock.url .. "/subscriptions/sub-1/ops/1?api-version=1",
        ["Retry-After"] = "0"}, json = {name = "lro1", properties = {provisioningState = "Updating"}}}
    end)
    local correlations = {}
    mock.route("GET", "/subscriptions/sub-1/ops/1", function(req)
      correlations[req.headers["x-ms-correlation-request-id"] or "none"] = true
      polls = polls + 1
      if polls >= 3 then state = "Succeeded" end
      return {status = 200, headers = {["Retry-After"] = "0"}, json = {status = polls >= 3 and "Succeeded" or "InProgress"}}
    end)
    mock.route("GET", RG .. "/lro1", function()
      return {name = "lro1", properties = {provisioningState = state}}
    end)
    local arm = new_arm()
    local doc = arm:put(RG .. "/lro1", {api_version = "1", body = {properties = {x = 1}}})
    assert.equal(3, polls)
    assert.equal("Succeeded", doc.properties.provisioningState)
    assert.same({[put_id] = true}, correlations)   -- the PUT's correlation id, on every poll
  end)

  it("follows a Location to its answer (POST), and raises a Failed operation's error", function()
    local n = 0
    mock.route("POST", RG .. "/lro2/act", function()
      return {status = 202, headers = {Location = mock.url .. "/subscriptions/sub-1/results/2?api-version=1",
        ["Retry-After"] = "0"}}
    end)
    mock.route("GET", "/subscriptions/sub-1/results/2", function()
      n = n + 1
      if n < 2 then return {status = 202, headers = {["Retry-After"] = "0"}} end
      return {result = "done"}
    end)
    mock.route("DELETE", RG .. "/lro3", function()
      return {status = 202, headers = {["Azure-AsyncOperation"] = mock.url .. "/subscriptions/sub-1/ops/3?api-version=1",
        Location = mock.url .. "/subscriptions/sub-1/results/3?api-version=1", ["Retry-After"] = "0"}}
    end)
    mock.route("GET", "/subscriptions/sub-1/ops/3", function()
      return {status = "Failed", error = {code = "QuotaExceeded", message = "no cores left"}}
    end)
    local arm = new_arm()
    assert.equal("done", arm:post(RG .. "/lro2/act", {api_version = "1"}).result)
    assert.equal(2, n)
    local err = S.catch(arm.delete, arm, RG .. "/lro3", {api_version = "1"})
    assert.equal("azure", err.kind)
    assert.equal("QuotaExceeded", err.code)
    assert.equal("Failed", err.state)
    assert.truthy(err.message:find("no cores left", 1, true))
  end)

  it("polls provisioningState when a PUT answers a non-terminal state without headers", function()
    local gets = 0
    mock.route("PUT", RG .. "/lro4", function() return {status = 201, json = {properties = {provisioningState = "Creating"}}} end)
    mock.route("GET", RG .. "/lro4", function()
      gets = gets + 1
      return {status = 200, headers = {["Retry-After"] = "0"},
        json = {properties = {provisioningState = gets >= 2 and "Succeeded" or "Creating"}}}
    end)
    local arm = new_arm()
    assert.equal("Succeeded", arm:put(RG .. "/lro4", {api_version = "1", body = {}}).properties.provisioningState)
    assert.equal(2, gets)
  end)

  it("leaves an operation as a handle and resumes it from the handle alone", function()
    local done = false
    mock.route("PATCH", RG .. "/lro5", function()
      return {status = 202, headers = {["Azure-AsyncOperation"] = mock.url .. "/subscriptions/sub-1/ops/5?api-version=1",
        ["Retry-After"] = "0"}}
    end)
    mock.route("GET", "/subscriptions/sub-1/ops/5", function()
      return {status = done and "Succeeded" or "Running"}
    end)
    mock.route("GET", RG .. "/lro5", function() return {name = "lro5", patched = done} end)
    local arm = new_arm()
    local op = arm:patch(RG .. "/lro5", {api_version = "1", body = {tags = {}}, wait = false})
    assert.equal("InProgress", op.status)
    assert.truthy(op.handle:match("^azop1%.[%w_-]+$"))
    done = true
    local other = new_arm()
    assert.is_true(other:wait(op.handle).patched)
    assert.equal("usage", S.catch(other.wait, other, "azop1.notjson").kind)
  end)

  it("stops waiting for an operation when the task is cancelled, and says how to resume it", function()
    local polls = 0
    mock.route("PUT", RG .. "/slow", function()
      return {status = 201, headers = {["Azure-AsyncOperation"] = mock.url .. "/subscriptions/sub-1/ops/slow?api-version=1",
        ["Retry-After"] = "0"}, json = {properties = {provisioningState = "Creating"}}}
    end)
    mock.route("GET", "/subscriptions/sub-1/ops/slow", function()
      polls = polls + 1
      return {status = 200, headers = {["Retry-After"] = "0"}, json = {status = "InProgress"}}
    end)
    local arm = new_arm()
    local lines = {}
    local log = require("opsh.log")
    local orig = log.info
    log.info = function(msg, ...) lines[#lines + 1] = msg return orig(msg, ...) end
    local err = S.catch(opsh.timeout, 0.5, function() return arm:put(RG .. "/slow", {api_version = "1", body = {}}) end)
    log.info = orig
    assert.equal("timeout", err.kind)
    assert.truthy(polls > 0)
    opsh.sleep(0.1)                   -- a poll already on the wire may still arrive
    local seen = polls
    opsh.sleep(0.3)
    assert.equal(seen, polls)
    local said = table.concat(lines, "\n")
    assert.truthy(said:find("resume with: opsh wait azop1.", 1, true), said)
  end)

  it("pages through nextLink, empty pages included, until it is null", function()
    mock.route("GET", RG .. "/paged", function(req)
      local page = tonumber(req.query.page or "1")
      local nxt = page < 3 and (mock.url .. RG .. "/paged?api-version=1&page=" .. (page + 1)) or json.null
      local value = page == 2 and json.array({}) or {{name = "p" .. page .. "a"}, {name = "p" .. page .. "b"}}
      return {value = value, nextLink = nxt}
    end)
    local arm = new_arm()
    local names = {}
    for item in arm:list(RG .. "/paged", {api_version = "1"}) do names[#names + 1] = item.name end
    assert.same({"p1a", "p1b", "p3a", "p3b"}, names)
    assert.equal(4, #arm:all(RG .. "/paged", {api_version = "1"}))
  end)

  it("fetches one token for many tasks, and refreshes it once on a 401", function()
    mock.route("GET", RG .. "/t", function() return {ok = true} end)
    local arm = new_arm()
    local before = mock.count("token")
    mock.token_delay = 0.1
    opsh.parallel({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, function() return arm:get(RG .. "/t", {api_version = "1"}) end)
    mock.token_delay = 0
    assert.equal(before + 1, mock.count("token"))
    mock.tokens = {}    -- every token issued so far is now refused
    opsh.parallel({1, 2, 3, 4, 5}, function() return arm:get(RG .. "/t", {api_version = "1"}) end)
    assert.equal(before + 2, mock.count("token"))
  end)

  it("records mutations in a dry-run, secrets redacted, and still sends reads", function()
    local puts = 0
    mock.route("PUT", RG .. "/dry", function() puts = puts + 1 return {} end)
    mock.route("GET", RG .. "/dry", function() return {name = "dry"} end)
    local arm = new_arm()
    local password = opsh.secret("Pa55word-not-shown")
    local records, doc, res = dryrun.with(function()
      local d = arm:get(RG .. "/dry", {api_version = "1"})
      return d, arm:put(RG .. "/dry", {api_version = "1", body = {properties = {administratorLoginPassword = password}}})
    end)
    assert.equal("dry", doc.name)
    assert.is_true(res.dry_run)
    assert.equal(0, puts)
    assert.equal(1, #records)
    assert.truthy(records[1].action:match("^PUT http://127%.0%.0%.1:%d+/subscriptions/sub%-1/.*/dry%?api%-version=1$"))
    assert.equal("<redacted>", records[1].request.json.properties.administratorLoginPassword)
    assert.is_nil(json.encode(records):find("Pa55word", 1, true))
  end)

  it("paces requests by the remaining-reads header and the refill it learns: no 429", function()
    -- a token bucket like ARM's: burst 20, 40 per second
    local level, t, rate, burst = 20, opsh.current() and require("opsh._core").hrtime(), 40, 20
    local throttled = 0
    mock.route("GET", RG .. "/budget/{i}", function()
      local now = require("opsh._core").hrtime()
      level = math.min(burst, level + (now - t) * rate)
      t = now
      if level < 1 then
        throttled = throttled + 1
        return {status = 429, headers = {["Retry-After"] = "1"}, json = {error = {code = "TooManyRequests",
          message = "throttled"}}}
      end
      level = level - 1
      return {status = 200, headers = {["x-ms-ratelimit-remaining-subscription-reads"] = tostring(math.floor(level))},
        json = {ok = true}}
    end)
    local arm = new_arm()
    local items = {}
    for i = 1, 120 do items[i] = i end
    opsh.parallel(items, function(i) return arm:get(RG .. "/budget/" .. i, {api_version = "1"}) end, {limit = 20})
    assert.equal(0, throttled)
    local stats = arm.budget:stats()
    assert.truthy(stats.waits > 0)
    assert.truthy(stats.buckets["x-ms-ratelimit-remaining-subscription-reads"].rate > 0)
  end)

  it("budget: a first request that never got an answer does not hold the others back", function()
    throttle.reset()
    local b = throttle.budget("sub-x", "p")
    local probe = opsh.spawn(function() return b:take("GET") end)
    probe:wait()                      -- it took the probe's place, then failed without an answer
    local order = {}
    local other = opsh.spawn(function() b:take("GET") order[#order + 1] = "other" end)
    opsh.spawn(function() opsh.sleep(1) order[#order + 1] = "timer" end)
    other:wait()
    opsh.sleep(1.1)
    assert.same({"other", "timer"}, order)
  end)

  it("budget: a pessimistic refill estimate lets a request through now and then instead of stalling", function()
    throttle.reset()
    local b = throttle.budget("sub-y", "p")
    local H = "x-ms-ratelimit-remaining-subscription-reads"
    b:take("GET")
    b:done("read", {[H] = "249"}, 200)
    for _ = 1, 3 do b:take("GET") b:done("read", {[H] = "3"}, 200) end
    b.buckets[H].rate = 0.001          -- learnt from a bucket that was in fact full
    local took = opsh.timeout(3, function() b:take("GET") return true end)
    assert.is_true(took)
  end)
end)
