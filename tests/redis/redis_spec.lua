-- opsh.redis against a real redis-server (plain and TLS ports, a password) started here.
local opsh = require("opsh")
local redis = require("opsh.redis")
local twin_redis = require("opsh.twin.redis")
local fs = require("opsh.fs")

local PASSWORD = "spec-pw-7f3a9c"

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

describe("opsh.redis", function()
  local tmp, server, certs, r

  setup(function()
    tmp = fs.tmpdir("opsh-redis-spec-")
    certs = S.server_certs(tmp .. "/pki")
    server = twin_redis.start{dir = tmp .. "/redis", password = PASSWORD, tls = certs}
    r = redis.connect(server:options())
  end)

  teardown(function()
    if r then r:close() end
    if server then server:stop() end
    if tmp then fs.rmtree(tmp) end
  end)

  describe("replies", function()
    it("types status, integer, bulk, nil and nested arrays", function()
      assert.are.equal("OK", r:set("t:s", "v"))
      assert.are.equal("PONG", r:ping())
      assert.are.equal("string", r:type("t:s"))
      assert.are.equal(1, r:del("t:s"))
      r:del("t:n")
      local n = r:incr("t:n")
      assert.are.equal(1, n)
      assert.are.equal("integer", math.type(n))
      assert.are.equal(7, r:incrby("t:n", 6))
      assert.is_nil(r:get("t:missing"))
      local nested = r:eval("return {1, {2, 'x', {}}, 'y', false}", 0)
      assert.are.same({1, {2, "x", {}}, "y", redis.null}, nested)
      r:rpush("t:list", "a", "b", "c")
      assert.are.same({"a", "b", "c"}, r:lrange("t:list", 0, -1))
      local mget = r:mget("t:n", "t:missing", "t:n")
      assert.are.equal(3, #mget)
      assert.are.equal(redis.null, mget[2])
      assert.are.equal(require("opsh.json").null, redis.null)   -- one null for Redis, JSON and PostgreSQL
    end)

    it("raises error replies as {kind='redis'} with the code and the command", function()
      r:set("t:str", "x")
      local ok, err = opsh.try(r.lpush, r, "t:str", "y")
      assert.is_false(ok)
      assert.are.equal("redis", err.kind)
      assert.are.equal("WRONGTYPE", err.code)
      assert.are.equal("LPUSH", err.command)
      assert.matches("^WRONGTYPE Operation against a key", tostring(err))
      ok, err = opsh.try(r.call, r, "NOSUCHCOMMAND")
      assert.are.equal("ERR", err.code)
      -- the connection is still in step
      assert.are.equal("x", r:get("t:str"))
    end)

    it("is binary-safe in keys, values and arguments", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local value = table.concat(bytes) .. "\0\r\n$3\r\n\0"
      local key = "t:bin\0key\r\n"
      assert.are.equal("OK", r:set(key, value))
      assert.are.equal(value, r:get(key))
      assert.are.equal(#value, r:strlen(key))
      assert.are.equal(1, r:exists(key))
      assert.are.equal(0, r:exists("t:bin"))
      r:set("t:secret", opsh.secret("s\0cret"))
      assert.are.equal("s\0cret", r:get("t:secret"))
      assert.are.equal(2.5, tonumber(r:incrbyfloat("t:f", 2.5)))
      assert.are.equal("0.1", r:set("t:g", 0.1) and r:get("t:g"))
    end)

    it("rejects arguments that are not strings, numbers or secrets", function()
      assert.matches("string, number or secret expected, got boolean", tostring(S.catch(r.set, r, "k", true)))
      assert.matches("string, number or secret expected, got table", tostring(S.catch(r.set, r, "k", {})))
      local ok, err = opsh.try(r.call, r, "SUBSCRIBE", "x")
      assert.is_false(ok)
      assert.are.equal("usage", err.kind)
    end)
  end)

  describe("pipelines", function()
    it("sends 10k commands and returns the replies in order", function()
      local res = r:pipeline(function(p)
        for i = 1, 10000 do p:set("p:" .. i, "v" .. i) end
      end)
      assert.are.equal(10000, res.n)
      for i = 1, 10000 do assert.are.equal("OK", res[i]) end
      res = r:pipeline(function(p)
        for i = 1, 10000 do p:get("p:" .. i) end
      end)
      assert.are.equal(10000, #res)
      for i = 1, 10000 do
        if res[i] ~= "v" .. i then error("reply " .. i .. " is " .. tostring(res[i])) end
      end
    end)

    it("keeps error replies in place without losing the others", function()
      r:set("p:str", "s")
      local res = r:pipeline(function(p)
        p:set("p:a", "1")
        p:lpush("p:str", "x")
        p:get("p:missing")
        p:call("INCR", "p:a")
      end)
      assert.are.equal(4, res.n)
      assert.are.equal("OK", res[1])
      assert.is_true(opsh.is_error(res[2], "redis"))
      assert.are.equal("WRONGTYPE", res[2].code)
      assert.are.equal(redis.null, res[3])
      assert.are.equal(2, res[4])
    end)

    it("sends nothing when an argument is unusable", function()
      r:del("p:never")
      local err = S.catch(r.pipeline, r, function(p)
        p:set("p:never", "1")
        p:set("p:bad", nil)
      end)
      assert.matches("string, number or secret expected, got nil", tostring(err))
      assert.is_nil(r:get("p:never"))
      assert.are.same({n = 0}, r:pipeline(function() end))
    end)

    it("runs MULTI/EXEC atomically inside a pipeline", function()
      local res = r:pipeline(function(p)
        p:multi()
        p:set("p:tx", "1")
        p:incr("p:tx")
        p:exec()
      end)
      assert.are.same({"OK", "QUEUED", "QUEUED", {"OK", 2}}, {res[1], res[2], res[3], res[4]})
    end)
  end)

  describe("sharing a connection", function()
    it("matches replies to many concurrent tasks in order", function()
      local items = {}
      for i = 1, 200 do items[i] = i end
      local results = opsh.parallel(items, function(i)
        local key = "c:" .. i
        r:del(key)
        for _ = 1, 10 do r:incrby(key, i) end
        return r:get(key)
      end)
      for i = 1, 200 do assert.are.equal(tostring(10 * i), results[i]) end
    end)

    it("drops the reply of a cancelled command and stays in step", function()
      r:set("c:after", "after")
      local t = opsh.spawn(function() return r:blpop("c:empty-list", 1) end)
      opsh.sleep(0.05)
      assert.are.equal("suspended", t:status())
      t:cancel()
      -- queued behind the BLPOP on the server: must get its own reply, not BLPOP's nil
      assert.are.equal("after", r:get("c:after"))
      assert.are.equal("PONG", r:ping())
    end)

    it("times out a command and keeps the connection usable", function()
      local rt = redis.connect{port = server.port, password = PASSWORD, timeout = 0.2}
      rt:set("c:k", "v")
      local ok, err = opsh.try(rt.blpop, rt, "c:empty-list", 0.5)
      assert.is_false(ok)
      assert.are.equal("timeout", err.kind)
      assert.are.equal("BLPOP", err.command)
      -- commands queue behind the BLPOP on the server; once it ends, its late reply is
      -- dropped and each command gets its own
      local v
      for _ = 1, 50 do
        ok, v = opsh.try(rt.get, rt, "c:k")
        if ok then break end
        assert.are.equal("timeout", v.kind)
      end
      assert.are.equal("v", v)
      rt:close()
    end)
  end)

  describe("dry-run", function()
    local dryrun = require("opsh.dryrun")
    local json = require("opsh.json")

    it("records a write instead of sending it, sends reads, and returns redis.dry_run and the record", function()
      r:set("dry:k", "before")
      local records, v, rec, got = dryrun.with(function()
        local v, rec = r:set("dry:k", "after", "EX", 60)
        return v, rec, r:get("dry:k")
      end)
      assert.are.equal(redis.dry_run, v)
      assert.are.equal("redis.dry_run", tostring(v))
      assert.are.equal("before", got)
      assert.are.equal("before", r:get("dry:k"))
      assert.are.equal(1, #records)
      assert.are.equal(records[1], rec)
      local server_id = "127.0.0.1:" .. server.port
      assert.are.same({kind = "redis", action = "SET dry:k", target = server_id, seq = rec.seq, task = rec.task,
        request = {command = "SET", args = {"dry:k", "after", "EX", 60}, server = server_id, db = 0}}, rec)
    end)

    it("counts scripts, functions, PUBLISH and server changes as writes; _RO, SELECT and MULTI are not", function()
      r:set("dry:k", "before")
      r:del("dry:e")
      local sub = r:subscribe("dry-news", {timeout = 1})
      local records, res = dryrun.with(function()
        return {
          r:eval("return redis.call('SET', KEYS[1], 'x')", 1, "dry:e"),
          r:eval_ro("return redis.call('GET', KEYS[1])", 1, "dry:k"),
          r:publish("dry-news", "go"),
          r:config("SET", "maxmemory-policy", "allkeys-lru"),
          r:config("GET", "maxmemory-policy")[2],
          r:select(0),
          r:client("SETNAME", "dry-spec"),
          (r:flushall()),
        }
      end)
      assert.are.same({redis.dry_run, "before", redis.dry_run, redis.dry_run, "noeviction", "OK", "OK",
        redis.dry_run}, res)
      local actions = {}
      for i, rec in ipairs(records) do actions[i] = rec.action end
      assert.are.same({"EVAL return redis.call('SET', KEYS[1], 'x')", "PUBLISH dry-news",
        "CONFIG SET maxmemory-policy", "FLUSHALL"}, actions)
      assert.is_nil(r:get("dry:e"))
      assert.is_nil(sub:next(0.1))
      sub:close()
      assert.are.equal("noeviction", r:config("GET", "maxmemory-policy")[2])
      assert.are.equal("before", r:get("dry:k"))
    end)

    it("sends a pipeline's reads and records its writes in place", function()
      r:set("dry:k", "before")
      r:set("dry:n", 5)
      local records, res = dryrun.with(r.pipeline, r, function(p)
        p:get("dry:k")
        p:set("dry:k", "x")
        p:multi()
        p:incr("dry:n")
        p:get("dry:n")
        p:exec()
      end)
      assert.are.same({"before", redis.dry_run, "OK", redis.dry_run, "QUEUED", {"5"}, n = 6}, res)
      assert.are.equal(2, #records)
      assert.are.same({"SET dry:k", "INCR dry:n"}, {records[1].action, records[2].action})
      assert.are.equal("5", r:get("dry:n"))
      -- a pipeline of reads only is sent as it is
      records, res = dryrun.with(r.pipeline, r, function(p) p:get("dry:k") end)
      assert.are.same({}, records)
      assert.are.same({"before", n = 1}, res)
    end)

    it("keeps secrets and the connection's password out of the records", function()
      local records = dryrun.with(function()
        r:set("dry:s", opsh.secret("tok-5e1f2a77"))
        r:config("SET", "masterauth", PASSWORD)
        r:pipeline(function(p) p:set("dry:s2", opsh.secret("tok-5e1f2a77")) end)
      end)
      assert.are.equal(3, #records)
      local text = json.encode(require("opsh.out").redact(records))
      assert.is_nil(text:find("tok-5e1f2a77", 1, true))
      assert.is_nil(text:find(PASSWORD, 1, true))
      assert.are.equal("<redacted>", records[1].request.args[2])
      assert.is_nil(r:get("dry:s"))
    end)

    it("counts anything but known reads as a write when COMMAND INFO is refused", function()
      r:acl("SETUSER", "nocmd", "reset", "on", ">nocmd-pw", "~*", "&*", "+@all", "-command")
      local c = redis.connect{port = server.port, username = "nocmd", password = "nocmd-pw"}
      c:set("dry:k", "before")
      local records, res = dryrun.with(function()
        return {c:get("dry:k"), c:hset("dry:h", "f", "v"), c:ping(), (c:call("OBJECT", "ENCODING", "dry:k"))}
      end)
      assert.are.same({"before", redis.dry_run, "PONG", redis.dry_run}, res)
      assert.are.same({"HSET dry:h", "OBJECT ENCODING dry:k"}, {records[1].action, records[2].action})
      assert.are.equal(0, r:exists("dry:h"))
      c:close()
    end)
  end)

  describe("out of memory", function()
    -- A reply becomes Lua values in the task that waits for it, never in the loop callback
    -- (where running out of memory has no protected call to land in and aborts opsh).
    local C = require("opsh._redis")
    local function starved(fn, ...)
      C._fail_alloc_over(256 * 1024)
      local res = table.pack(pcall(fn, ...))
      C._fail_alloc_over(nil)
      return table.unpack(res, 1, res.n)
    end

    it("is an error in the task for a reply, a pipeline and a message, and the connection goes on", function()
      local big = string.rep("x", 1024 * 1024)
      r:set("oom:big", big)
      local ok, err = starved(r.get, r, "oom:big")
      assert.is_false(ok)
      assert.matches("not enough memory", tostring(err))
      ok, err = starved(r.pipeline, r, function(p) p:get("oom:big") end)
      assert.is_false(ok)
      assert.matches("not enough memory", tostring(err))
      assert.are.equal(big, r:get("oom:big"))

      local sub = r:subscribe("oom-news", {timeout = 2})
      local reader = opsh.spawn(starved, sub.next, sub)
      opsh.sleep(0.05)
      r:publish("oom-news", big)
      ok, err = reader:wait()
      assert.is_false(ok)
      assert.matches("not enough memory", tostring(err))
      -- the message stayed queued: the next read gets it
      assert.are.equal(big, sub:next().payload)
      sub:close()
      assert.are.equal("PONG", r:ping())
    end)
  end)

  describe("pub/sub", function()
    it("delivers messages published from another connection", function()
      local sub = r:subscribe("news", "alerts", {timeout = 2})
      local pub = redis.connect(server:options())
      assert.are.equal(1, pub:publish("news", "hello\0world"))
      pub:publish("alerts", "fire")
      local m1, m2 = sub:next(), sub:next()
      assert.are.same({channel = "news", payload = "hello\0world"}, m1)
      assert.are.same({channel = "alerts", payload = "fire"}, m2)
      assert.is_nil(sub:next(0.05))
      sub:close()
      opsh.sleep(0.05)
      assert.are.equal(0, pub:publish("news", "nobody"))
      pub:close()
    end)

    it("iterates with a for loop and pattern subscriptions", function()
      local publisher = opsh.spawn(function()
        local pub = redis.connect(server:options())
        opsh.sleep(0.05)
        for i = 1, 3 do pub:publish("jobs." .. i, tostring(i)) end
        pub:close()
      end)
      local got = {}
      for msg in r:psubscribe("jobs.*", {timeout = 1}) do
        got[#got + 1] = msg.pattern .. " " .. msg.channel .. " " .. msg.payload
        if #got == 3 then break end
      end
      publisher:wait()
      assert.are.same({"jobs.* jobs.1 1", "jobs.* jobs.2 2", "jobs.* jobs.3 3"}, got)
    end)
  end)

  describe("authentication", function()
    it("fails with a structured error that does not contain the password", function()
      local wrong = "wrong-pw-d41d8cd9"
      local ok, err = opsh.try(redis.connect, {port = server.port, password = wrong})
      assert.is_false(ok)
      assert.are.equal("auth", err.kind)
      assert.are.equal("WRONGPASS", err.code)
      assert.is_nil(tostring(err):find(wrong, 1, true))
      for _, v in pairs(err) do
        if type(v) == "string" then assert.is_nil(v:find(wrong, 1, true)) end
      end
      ok, err = opsh.try(redis.connect, {port = server.port})
      local ok2, err2 = opsh.try(function()
        local c = redis.connect{port = server.port}
        return c:get("x")
      end)
      assert.is_true(ok)
      assert.is_false(ok2)
      assert.are.equal("NOAUTH", err2.code)
    end)

    it("accepts an opsh.secret password and a URL", function()
      local c = redis.connect{port = server.port, password = opsh.secret(PASSWORD)}
      assert.are.equal("PONG", c:ping())
      c:close()
      c = redis.connect(string.format("redis://:%s@127.0.0.1:%d/3", PASSWORD, server.port))
      assert.matches("db=3", c:client("INFO"))
      c:close()
    end)

    it("logs in as an ACL user with its own permissions", function()
      r:acl("SETUSER", "app", "reset", "on", ">app-pw", "~app:*", "+@all")
      local c = redis.connect{port = server.port, username = "app", password = "app-pw"}
      assert.are.equal("app", c:acl("WHOAMI"))
      assert.are.equal("OK", c:set("app:k", "v"))
      local ok, err = opsh.try(c.set, c, "other:k", "v")
      assert.is_false(ok)
      assert.are.equal("NOPERM", err.code)
      c:close()
      ok, err = opsh.try(redis.connect, {port = server.port, username = "app", password = "nope"})
      assert.are.equal("auth", err.kind)
    end)

    it("parses redis:// and rediss:// URLs", function()
      local o = redis.parse_url("rediss://ops%40team:p%3Aw@cache.example:6380/2")
      assert.are.equal("ops@team", o.username)
      assert.is_true(opsh.is_secret(o.password))
      assert.are.equal(opsh.secret("p:w"), o.password)
      assert.are.same({"cache.example", 6380, 2, true}, {o.host, o.port, o.db, o.tls})
      o = redis.parse_url("redis://[::1]:7000")
      assert.are.same({"::1", 7000, false}, {o.host, o.port, o.tls})
      local ok, err = opsh.try(redis.parse_url, "http://user:hunter2@x")
      assert.are.equal("usage", err.kind)
      assert.is_nil(tostring(err):find("hunter2", 1, true))
    end)
  end)

  describe("TLS", function()
    it("verifies the server with the right CA, as a file or PEM text", function()
      local c = redis.connect(server:options{tls = true})
      assert.are.equal("PONG", c:ping())
      assert.matches("%(tls%)", tostring(c))
      local res = c:pipeline(function(p)
        for i = 1, 5000 do p:set("tls:" .. i, string.rep("x", 200)) end
      end)
      assert.are.equal(5000, res.n)
      assert.are.equal(string.rep("x", 200), c:get("tls:5000"))
      c:close()
      c = redis.connect{host = "localhost", port = server.tls_port, tls = true, ca = fs.read(certs.ca),
        password = PASSWORD}
      assert.are.equal("PONG", c:ping())
      c:close()
    end)

    it("fails with kind 'tls' for another CA or another name", function()
      local ok, err = opsh.try(redis.connect, {port = server.tls_port, tls = true, ca = certs.other_ca,
        password = PASSWORD})
      assert.is_false(ok)
      assert.are.equal("tls", err.kind)
      assert.matches("certificate verify failed", err.message)
      ok, err = opsh.try(redis.connect, {port = server.tls_port, tls = true, ca = certs.ca,
        servername = "elsewhere.example", password = PASSWORD})
      assert.are.equal("tls", err.kind)
      ok, err = opsh.try(redis.connect, {port = server.tls_port, tls = true, password = PASSWORD})
      assert.are.equal("tls", err.kind)
      -- TLS against the plain port is not a silent success
      ok, err = opsh.try(redis.connect, {port = server.port, tls = true, ca = certs.ca,
        connect_timeout = 0.5})
      assert.is_false(ok)
      -- redis reads the ClientHello as the start of an inline command and waits for its end
      assert.are.equal("timeout", err.kind)
      assert.matches("not connected within 0.5 s", err.message)
    end)

    it("subscribes over TLS", function()
      local sub = r:subscribe("tls-news")
      local ts = redis.connect(server:options{tls = true})
      local subtls = ts:subscribe("tls-chan", {timeout = 2})
      r:publish("tls-chan", "secure")
      assert.are.same({channel = "tls-chan", payload = "secure"}, subtls:next())
      subtls:close()
      sub:close()
      ts:close()
    end)
  end)

  describe("connections", function()
    it("raises {kind='connect'} when nothing listens", function()
      local port = require("opsh.net").free_port()
      local ok, err = opsh.try(redis.connect, {port = port})
      assert.is_false(ok)
      assert.are.equal("connect", err.kind)
      assert.are.equal(port, err.port)
      assert.matches("refused", err.message)
    end)

    it("closes with <close> and refuses commands afterwards", function()
      local c
      do
        local conn <close> = redis.connect(server:options())
        c = conn
        assert.are.equal("PONG", conn:ping())
      end
      local ok, err = opsh.try(c.ping, c)
      assert.is_false(ok)
      assert.are.equal("usage", err.kind)
    end)

    it("parses INFO into typed sections", function()
      r:set("info:k", "v")
      local info = r:info()
      assert.are.equal(S.sh("redis-server --version"):match("v=(%S+)"), info.server.redis_version)
      assert.are.equal("integer", math.type(info.server.tcp_port))
      assert.are.equal(server.port, info.server.tcp_port)
      assert.are.equal("integer", math.type(info.memory.used_memory))
      assert.is_true(info.memory.used_memory > 0)
      assert.are.equal("float", math.type(info.memory.mem_fragmentation_ratio))
      assert.is_true(info.memory.mem_fragmentation_ratio > 0)
      assert.are.equal(r:dbsize(), info.keyspace.db0.keys)
      assert.are.equal("integer", math.type(info.keyspace.db0.expires))
      local mem = r:info("memory")
      assert.are.same({"memory"}, (function() local k = {} for name in pairs(mem) do k[#k + 1] = name end return k end)())
      assert.matches("^%d+%.?%d*[BKMG]$", mem.memory.used_memory_human)
    end)

    it("reconnects after a server restart, selecting the database again", function()
      local c = redis.connect{port = server.port, password = PASSWORD, db = 2}
      c:set("r:k", "before")
      local blocked = opsh.spawn(function() return c:blpop("r:empty", 5) end)
      opsh.sleep(0.05)
      server:restart()
      -- a write that was in flight when the server went away is not retried
      local ok, err = pcall(blocked.wait, blocked)
      assert.is_false(ok)
      assert.are.equal("connect", err.kind)
      assert.is_true(err.sent)
      -- the next command reconnects, authenticates and selects db 2 again
      assert.are.equal("OK", c:set("r:k", "after"))
      assert.matches("db=2", c:client("INFO"))
      assert.are.equal("after", c:get("r:k"))
      assert.are.equal("PONG", r:ping())
      c:close()
    end)

    it("ends a connect within connect_timeout when AUTH or SELECT get no reply", function()
      local _ <close>, port = S.silent_server()
      for _, o in ipairs({{password = "pw", command = "AUTH"}, {db = 2, command = "SELECT"}}) do
        local ok, err = opsh.try(opsh.timeout, 5, redis.connect, {port = port, connect_timeout = 0.3,
          password = o.password, db = o.db})
        assert.is_false(ok)
        assert.are.equal("timeout", err.kind)
        assert.are.equal(o.command, err.command)
        assert.are.equal(string.format("redis 127.0.0.1:%d: not connected within 0.3 s (no reply to %s)",
          port, o.command), err.message)
      end
    end)

    it("times out connecting to a server that never answers", function()
      local _ <close>, port = S.silent_server()
      local ok, err = opsh.try(redis.connect, {port = port, tls = true, ca = certs.ca,
        connect_timeout = 0.2})
      assert.is_false(ok)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(string.format("redis 127.0.0.1:%d: not connected within 0.2 s", port), err.message)
    end)
  end)
end)
