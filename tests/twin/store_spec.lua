-- opsh.twin.store in process: versions, events, subscriptions, history expiry, persistence.
local opsh = require("opsh")
local fs = require("opsh.fs")
local json = require("opsh.json")
local store_mod = require("opsh.twin.store")

describe("opsh.twin.store", function()
  local dir
  before_each(function() dir = fs.tmpdir("opsh-store-spec-") end)
  after_each(function() fs.rmtree(dir) end)

  it("makes every change one event, with a version that increases across the whole store", function()
    local s = store_mod.open(dir .. "/s")
    local sub <close> = s:subscribe(nil, 0)
    assert.are.equal(1, s:put("nodes", "n1", {ready = true}))
    assert.are.equal(2, s:put("pods", "web-0", {node = "n1"}))
    assert.are.equal(3, s:put("nodes", "n1", {ready = false}))
    assert.is_nil(s:delete("nodes", "nope"))
    assert.are.equal(4, s:delete("nodes", "n1"))
    local seen = {}
    for _ = 1, 4 do
      local ev = sub:next(0)
      seen[#seen + 1] = string.format("%d %s %s/%s %s", ev.version, ev.type, ev.collection, ev.key,
        json.encode(ev.object))
    end
    assert.are.same({'1 ADDED nodes/n1 {"ready":true}', '2 ADDED pods/web-0 {"node":"n1"}',
      '3 MODIFIED nodes/n1 {"ready":false}', '4 DELETED nodes/n1 {"ready":false}'}, seen)
    assert.is_nil(sub:next(0))
    assert.is_nil(s:get("nodes", "n1"))
    local obj, v = s:get("pods", "web-0")
    assert.are.same({node = "n1"}, obj)
    assert.are.equal(2, v)
    s:close()
  end)

  it("gives callers copies: changing a returned object changes nothing stored", function()
    local s = store_mod.open(dir .. "/s")
    local o = {a = {1, 2}}
    s:put("c", "k", o)
    o.a[1] = 99
    local got = s:get("c", "k")
    got.a[2] = 42
    assert.are.same({a = {1, 2}}, (s:get("c", "k")))
    s:close()
  end)

  it("checks version preconditions before changing anything, and merge-patches", function()
    local s = store_mod.open(dir .. "/s")
    local v = s:put("c", "a", {x = 1, y = {z = 1}})
    local ok, err = opsh.try(s.put, s, "c", "a", {x = 2}, {if_version = v + 5})
    assert.is_false(ok)
    assert.are.equal(409, err.code)
    ok, err = opsh.try(s.put, s, "c", "new", {}, {if_version = v})
    assert.is_false(ok)
    assert.are.equal(409, err.code)
    -- all or nothing: the second operation's precondition fails, so the first is not made either
    ok = opsh.try(s.txn, s, {{op = "put", collection = "c", key = "b", object = 1},
      {op = "delete", collection = "c", key = "a", if_version = 0}})
    assert.is_false(ok)
    assert.is_nil(s:get("c", "b"))
    assert.are.equal(v, s:current())
    local v2, obj = s:patch("c", "a", {x = json.null, y = {w = 2}})
    assert.are.equal(v + 1, v2)
    assert.are.same({y = {z = 1, w = 2}}, obj)
    ok, err = opsh.try(s.patch, s, "c", "missing", {x = 1})
    assert.is_false(ok)
    assert.are.equal(404, err.code)
    ok, err = opsh.try(s.put, s, "bad/name", "k", 1)
    assert.is_false(ok)
    assert.are.equal(400, err.code)
    s:close()
  end)

  it("delivers every event to a subscriber in version order while several tasks write", function()
    local s = store_mod.open(dir .. "/s")
    local sub <close> = s:subscribe("counts", 0)
    local other <close> = s:subscribe("other")
    opsh.parallel({1, 2, 3, 4}, function(w)
      for i = 1, 25 do
        s:put("counts", w .. "-" .. i, i)
        if i % 5 == 0 then s:put("other", "x", i) end
      end
    end)
    local versions, last = {}, 0
    while true do
      local ev = sub:next(0)
      if not ev then break end
      assert.is_true(ev.version > last)
      assert.are.equal("counts", ev.collection)
      last = ev.version
      versions[#versions + 1] = ev.version
    end
    assert.are.equal(100, #versions)
    assert.are.equal(120, s:current())
    local n = 0
    while other:next(0) do n = n + 1 end
    assert.are.equal(20, n)
    s:close()
  end)

  it("wakes a waiting subscriber, resumes from a version, and refuses one the history no longer has", function()
    local s = store_mod.open(dir .. "/s", {history = 10})
    local sub = s:subscribe("c")
    local got = opsh.spawn(function() return sub:next(5) end)
    opsh.sleep(0.01)
    s:put("c", "k", "v1")
    assert.are.equal("v1", got:wait().object)
    assert.is_nil(sub:next(0.01))   -- a timeout: nil
    sub:close()
    for i = 2, 30 do s:put("c", "k", "v" .. i) end
    local resumed = s:subscribe("c", 25)
    assert.are.equal(26, resumed:next(0).version)
    resumed:close()
    local ok, err = opsh.try(s.subscribe, s, "c", 5)
    assert.is_false(ok)
    assert.are.equal(410, err.code)
    assert.are.equal("Expired", err.reason)
    assert.matches("too old resource version: 5", err.message)
    ok, err = opsh.try(s.subscribe, s, "c", 31)
    assert.is_false(ok)
    assert.are.equal(400, err.code)
    s:close()
  end)

  it("drops a subscriber that falls too far behind, with the 410 error", function()
    local s = store_mod.open(dir .. "/s", {max_queue = 5})
    local sub <close> = s:subscribe(nil)
    for i = 1, 10 do s:put("c", "k", i) end
    for _ = 1, 5 do assert.is_table(sub:next(0)) end   -- what it had, then the error
    local ok, err = opsh.try(sub.next, sub, 0)
    assert.is_false(ok)
    assert.are.equal(410, err.code)
    s:close()
  end)

  it("persists: reopening gives the same objects and versions, through log compaction and a torn write", function()
    local path = dir .. "/s"
    local s = store_mod.open(path, {compact_every = 7})
    for i = 1, 20 do s:put("c", "k" .. (i % 6), {i = i}) end
    s:delete("c", "k0")
    s:put("d", "only", true)
    local before, version = {}, s:current()
    for _, item in ipairs((s:list("c"))) do before[item.key] = {item.object.i, item.version} end
    s:close()
    assert.are.equal(tonumber("600", 8), fs.stat(path .. "/log.jsonl").mode & tonumber("777", 8))
    assert.are.equal(tonumber("700", 8), fs.stat(path).mode & tonumber("777", 8))
    -- a crash in the middle of appending leaves a torn last line: ignored
    fs.append(path .. "/log.jsonl", '{"c":"c","cv":1,"k":"torn","o":')
    local again = store_mod.open(path)
    assert.are.equal(version, again:current())
    local after = {}
    for _, item in ipairs((again:list("c"))) do after[item.key] = {item.object.i, item.version} end
    assert.are.same(before, after)
    assert.is_true((again:get("d", "only")))
    assert.is_nil(again:get("c", "torn"))
    -- history does not survive a restart: resuming from before it is 410, from now on works
    assert.are.equal(410, select(2, opsh.try(again.subscribe, again, nil, version - 1)).code)
    local sub <close> = again:subscribe(nil, version)
    assert.are.equal(version + 1, again:put("c", "k1", "new"))
    assert.are.equal(version + 1, sub:next(0).version)
    again:close()
  end)
end)
