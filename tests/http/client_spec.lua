-- opsh.http clients (http.client{...}) against tests/support/http_server.py, started here on
-- 127.0.0.1 on free ports: base URLs, default headers, TLS material, per-client policy, the auth
-- provider and its single refresh, throttles and budgets, idle and low-speed limits, bodies from
-- a file range or a generator, secret_fields, JSON bodies with secrets, the -v line.
local opsh = require("opsh")
local http = require("opsh.http")
local json = require("opsh.json")
local proc = require("opsh.proc")
local fs = require("opsh.fs")
local dryrun = require("opsh.dryrun")
local runtime = require("opsh.runtime")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/http"
local SERVER = here .. "/../support/http_server.py"

local S = dofile(here .. "/../support/helpers.lua")

local tmp = fs.tmpdir("opsh-http-client-spec")
local servers = {}

local function start_server(args)
  local portfile = string.format("%s/port-%d", tmp, #servers + 1)
  local argv = {"python3", SERVER, "--port-file", portfile}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local srv = {proc = proc.spawn{argv = argv, stdout_file = portfile .. ".log", stderr = "stdout"}}
  servers[#servers + 1] = srv
  local text = S.poll(function() return fs.read(portfile, {missing_ok = true}) end,
    function(t) return t and t:match("^listening %d+") end)
  local port = text and text:match("^listening (%d+)")
  if not port then error("test server did not start: " .. fs.read(portfile .. ".log")) end
  srv.port = tonumber(port)
  return srv
end

describe("opsh.http client", function()
  local base, mtls_base, ca_pem

  local function count(id)
    return http.get(base .. "/count/" .. id):json().count
  end

  lazy_setup(function()
    local certs = S.server_certs(tmp)
    S.cert(tmp, "client", {cert = certs.ca, key = certs.ca_key}, {subject = "/CN=opsh-client",
      ext = "extendedKeyUsage=clientAuth"})
    ca_pem = fs.read(certs.ca)
    base = "http://127.0.0.1:" .. start_server().port
    mtls_base = "https://localhost:" .. start_server({"--cert", tmp .. "/server.pem", "--key", tmp .. "/server.key",
      "--client-ca", tmp .. "/ca.pem"}).port
  end)

  lazy_teardown(function()
    for _, s in ipairs(servers) do s.proc:stop(1) end
    fs.rmtree(tmp)
  end)

  describe("settings", function()
    it("joins paths to the base URL, and takes absolute URLs on its origin only", function()
      local c = http.client{base_url = base .. "/echo/"}
      assert.are.equal("/echo/pods/web-0", c:get("pods/web-0"):json().path)
      assert.are.equal("/echo/pods", c:get("/pods"):json().path)
      assert.are.equal("/echo", c:get(""):json().path)
      local doc = c:get("?watch=1", {query = {rv = "5"}}):json()
      assert.are.equal("/echo", doc.path)
      assert.are.equal("watch=1&rv=5", doc.raw_query)
      assert.are.equal(base .. "/echo/a", c:url("a"))
      -- an absolute URL on the same origin (nextLink, Location) is sent as it is
      assert.are.equal("/echo/next", c:get(base .. "/echo/next?page=2"):json().path)
      local err = S.catch(c.get, c, "http://127.0.0.2:1/echo")
      assert.are.equal("usage", err.kind)
      assert.matches("not on this client's origin http://127%.0%.0%.1:%d+", err.message)
      err = S.catch(http.client{}.get, http.client{}, "/echo")
      assert.matches("not absolute and the client has no base_url", err.message)
      err = S.catch(http.client, {base_url = base .. "/x?a=1"})
      assert.matches("base_url cannot have a query", err.message)
      err = S.catch(http.client, {base_url = base, timout = 3})
      assert.are.equal("bad argument #1 to 'http.client' (unknown option 'timout'; did you mean 'timeout'?)", err.message)
    end)

    it("sends its default headers and query; a call's own win; with{} makes another client", function()
      local c = http.client{base_url = base, headers = {["X-Team"] = "sre", ["X-Env"] = "prod"},
        query = {["api-version"] = "2024-01-01"}}
      local doc = c:get("/echo", {headers = {["x-env"] = "stage"}, query = {n = "1"}}):json()
      assert.are.equal("sre", doc.headers["x-team"])
      assert.are.equal("stage", doc.headers["x-env"])
      assert.are.same({["api-version"] = "2024-01-01", n = "1"}, doc.query)
      local c2 = c:with{headers = {["X-Team"] = "dba"}, query = {["api-version"] = "2025-01-01"}}
      doc = c2:get("/echo"):json()
      assert.are.equal("dba", doc.headers["x-team"])
      assert.are.equal("prod", doc.headers["x-env"])
      assert.are.equal("2025-01-01", doc.query["api-version"])
      assert.are.equal("sre", c:get("/echo"):json().headers["x-team"])   -- the first is unchanged
      local err = S.catch(function() c.base_url = "http://elsewhere" end)
      assert.are.equal("usage", err.kind)
      assert.matches("cannot be changed", err.message)
      err = S.catch(function() http.defaults.timeout = 5 end)
      assert.are.equal("usage", err.kind)
      assert.are.equal(300, http.defaults.timeout)
    end)

    it("holds TLS material in memory: a client certificate the server checks", function()
      local c = http.client{base_url = mtls_base, ca = ca_pem, cert = fs.read(tmp .. "/client.pem"),
        key = opsh.secret(fs.read(tmp .. "/client.key"))}
      assert.are.equal("opsh-client", c:get("/echo"):json().client_cn)
      local err = S.catch(http.client{base_url = mtls_base, ca = ca_pem, retries = 0}.get,
        http.client{base_url = mtls_base, ca = ca_pem, retries = 0}, "/echo")
      assert.are.equal("tls", err.kind)
    end)

    it("has its own retry and timeout policy, a call's own options winning", function()
      local none = http.client{base_url = base, retries = 0}
      assert.are.equal(503, S.catch(none.get, none, "/flaky/c1?fail=5").status)
      assert.are.equal(1, count("c1"))
      local two = http.client{base_url = base, retries = 2, backoff = 0.01}
      assert.are.equal(503, S.catch(two.get, two, "/flaky/c2?fail=5").status)
      assert.are.equal(3, count("c2"))
      assert.are.equal(503, S.catch(two.get, two, "/flaky/c3?fail=5", {retries = 1}).status)
      assert.are.equal(2, count("c3"))
      local quick = http.client{base_url = base, timeout = 0.3}
      local err = S.catch(quick.get, quick, "/slow?delay=3")
      assert.are.equal("timeout", err.kind)
      assert.are.equal(404, http.client{base_url = base, raise_for_status = false}:get("/nothing").status)
    end)
  end)

  describe("auth", function()
    it("calls the provider for each request and sends its value (a secret) as the header", function()
      local calls = {}
      local c = http.client{base_url = base, auth = function(ctx)
        calls[#calls + 1] = ctx
        return opsh.secret("Bearer tok-per-request")
      end}
      for _ = 1, 3 do assert.are.equal(200, c:get("/bearer/tok-per-request").status) end
      assert.are.equal(3, #calls)
      assert.is_false(calls[1].refresh)
      assert.are.equal("GET", calls[1].method)
      assert.are.equal(base .. "/bearer/tok-per-request", calls[1].url)
      -- the call's own Authorization header wins: the provider is not asked
      assert.are.equal(200, c:get("/bearer/own", {headers = {Authorization = "Bearer own"}}).status)
      assert.are.equal(3, #calls)
      local err = S.catch(http.client, {base_url = base, headers = {authorization = "x"}, auth = function() end})
      assert.matches("give the Authorization header or auth, not both", err.message)
    end)

    it("refreshes once on a 401 however many requests meet it together", function()
      local token, refreshes, challenge = "stale", 0, nil
      local c = http.client{base_url = base, auth = function(ctx)
        if ctx.refresh then
          refreshes = refreshes + 1
          challenge = ctx.challenge
          opsh.sleep(0.05)   -- the others meet their 401 meanwhile
          token = "fresh"
        end
        return opsh.secret("Bearer " .. token)
      end}
      local items = {}
      for i = 1, 20 do items[i] = i end
      local res = opsh.parallel(items, function() return c:get("/bearer/fresh").status end)
      for i = 1, 20 do assert.are.equal(200, res[i]) end
      assert.are.equal(1, refreshes)
      assert.are.equal('Bearer realm="opsh-test", scope="read"', challenge)
      -- a client made from it shares its credential and refresh
      assert.are.equal(200, c:with{headers = {["X-A"] = "1"}}:get("/bearer/fresh").status)
      assert.are.equal(1, refreshes)
    end)

    it("sends nothing until the provider has a credential, then answers the challenge (Key Vault)", function()
      local seen = {}
      local c = http.client{base_url = base, auth = function(ctx)
        seen[#seen + 1] = ctx.refresh and ctx.challenge or "first"
        if ctx.refresh and ctx.challenge:find('scope="read"', 1, true) then return opsh.secret("Bearer kv") end
      end}
      assert.are.equal(200, c:get("/bearer/kv").status)
      assert.are.same({"first", 'Bearer realm="opsh-test", scope="read"'}, seen)
      assert.are.equal(2, count("bearer-kv"))
    end)

    it("raises the second 401 after a refresh instead of looping", function()
      local refreshes = 0
      local c = http.client{base_url = base, auth = function(ctx)
        if ctx.refresh then refreshes = refreshes + 1 end
        return "Bearer never-right-" .. refreshes
      end}
      local err = S.catch(c.get, c, "/bearer/wanted")
      assert.are.equal("http", err.kind)
      assert.are.equal(401, err.status)
      assert.are.equal(1, refreshes)
      assert.are.equal(2, count("bearer-wanted"))
      assert.is_nil(tostring(err):find("never-right", 1, true))
    end)

    it("bearer(fetch) fetches once for concurrent requests and again after a 401", function()
      local fetches = 0
      local c = http.client{base_url = base, auth = http.bearer(function()
        fetches = fetches + 1
        opsh.sleep(0.02)
        return fetches == 1 and "first" or opsh.secret("second"), os.time() + 3600
      end)}
      local items = {}
      for i = 1, 10 do items[i] = i end
      opsh.parallel(items, function() return c:get("/bearer/first").status end)
      assert.are.equal(1, fetches)
      assert.are.equal(200, c:get("/bearer/second").status)   -- 401 with "first": fetched again
      assert.are.equal(2, fetches)
    end)
  end)

  describe("throttle", function()
    it("calls before each attempt and after each response, in order", function()
      local events = {}
      local c = http.client{base_url = base, backoff = 0.01, throttle = {
        before = function(_, info) events[#events + 1] = "before " .. info.attempt end,
        after = function(_, headers, info)
          events[#events + 1] = string.format("after %d %d %s", info.attempt, info.status, headers["Content-Type"])
        end}}
      c:get("/flaky/t1?fail=1")
      assert.are.same({"before 1", "after 1 503 text/plain", "before 2", "after 2 200 text/plain"}, events)
    end)

    it("paces clients that share a budget: no request goes without a token", function()
      local budget = http.budget{rate = 0, burst = 3}
      local a = http.client{base_url = base, throttle = budget}
      local b = http.client{base_url = base .. "/", throttle = {budget}}
      local tasks = {}
      for i = 1, 4 do tasks[i] = opsh.spawn((i % 2 == 0 and a or b).get, i % 2 == 0 and a or b, "/ratelimit/b1") end
      S.poll(function() return count("b1") end, function(n) return n >= 3 end)
      for _ = 1, 5 do opsh.yield() end
      assert.are.equal(3, count("b1"))
      local waiting = 0
      for _, t in ipairs(tasks) do if t:status() == "suspended" then waiting = waiting + 1 end end
      assert.are.equal(1, waiting)
      budget:set(1)
      for _, t in ipairs(tasks) do assert.are.equal(200, t:wait().status) end
      assert.are.equal(4, count("b1"))
    end)

    it("takes the budget's level from a response header (ARM's remaining reads)", function()
      local budget = http.budget{rate = 0, burst = 100, header = "x-ms-ratelimit-remaining-subscription-reads"}
      local c = http.client{base_url = base, throttle = budget}
      c:get("/ratelimit/b2?remaining=0")
      assert.are.equal(0, budget:level())
      local t = opsh.spawn(c.get, c, "/ratelimit/b2")
      for _ = 1, 5 do opsh.yield() end
      assert.are.equal("suspended", t:status())
      assert.are.equal(1, count("b2"))
      budget:set(5)
      t:wait()
      assert.are.equal(2, count("b2"))
      assert.are.equal(100, budget:level())   -- what the last answer said
    end)
  end)

  describe("streams", function()
    it("ends a silent stream after idle_timeout with kind timeout", function()
      local c = http.client{base_url = base, idle_timeout = 0.3}
      local got = {}
      local err = S.catch(c.get, c, "/stream/idle1?lines=3", {on_line = function(l) got[#got + 1] = l end})
      http.get(base .. "/release/idle1")
      assert.are.equal("timeout", err.kind)
      assert.are.equal(200, err.status)
      assert.matches("idle_timeout", err.message)
      assert.are.same({"line 1 of 3"}, got)
      assert.are.equal(0, http.stats().running)
    end)

    it("keeps a stream that goes on sending, and time the task holds it back is not idle", function()
      local c = http.client{base_url = base, idle_timeout = 0.3}
      local n = 0
      c:get("/drip/idle2", {on_data = function()
        n = n + 1
        if n == 12 then return false end
      end})
      assert.are.equal(12, n)
      -- 8 MiB while the callback sleeps: receiving stops once 1 MiB waits for the task, and
      -- that pause is the task's doing, not the server's silence
      local bytes, slept = 0, false
      c:get("/big?size=8388608", {on_data = function(chunk)
        bytes = bytes + #chunk
        if not slept then
          slept = true
          opsh.sleep(0.8)
        end
      end})
      assert.are.equal(8388608, bytes)
    end)

    it("ends a transfer slower than low_speed_limit for low_speed_time with kind timeout", function()
      local c = http.client{base_url = base, low_speed_limit = 1000, low_speed_time = 1}
      local err = S.catch(c.get, c, "/drip/slow1")
      assert.are.equal("timeout", err.kind)
      assert.matches("too slow", err.message)
    end)
  end)

  describe("request bodies", function()
    it("sends a byte range of a file", function()
      local path = tmp .. "/range.txt"
      fs.write(path, "0123456789abcdefghij")
      local c = http.client{base_url = base}
      local doc = c:put("/echo", {body_file = path, offset = 3, length = 5}):json()
      assert.are.equal("34567", doc.body)
      assert.are.equal("5", doc.headers["content-length"])
      assert.are.equal("abcdefghij", c:put("/echo", {body_file = path, offset = 10}):json().body)
      local err = S.catch(c.put, c, "/echo", {body_file = path, offset = 15, length = 10})
      assert.are.equal("io", err.kind)
      assert.matches("beyond the end of the file %(20 bytes%)", err.message)
      err = S.catch(c.put, c, "/echo", {body = "x", offset = 1})
      assert.matches("offset needs body_file", err.message)
      local records = dryrun.with(c.put, c, "/echo", {body_file = path, offset = 2, length = 4})
      assert.are.same({path = path, size = 20, offset = 2, length = 4}, records[1].request.body_file)
    end)

    it("streams a body from a generator, chunked or with its length", function()
      local c = http.client{base_url = base}
      local chunks = {"alpha-", "", "beta-", "gamma"}
      local i = 0
      local doc = c:post("/echo", {body_source = function()
        i = i + 1
        return chunks[i]
      end}):json()
      assert.are.equal("alpha-beta-gamma", doc.body)
      assert.are.equal("chunked", doc.headers["transfer-encoding"])
      i = 0
      doc = c:put("/echo", {length = 16, body_source = function()
        i = i + 1
        return chunks[i]
      end}):json()
      assert.are.equal("alpha-beta-gamma", doc.body)
      assert.are.equal("16", doc.headers["content-length"])
      -- 64 MiB in 1 MiB chunks: the generator is called as the network takes them
      local block, n = string.rep("b", 1024 * 1024), 0
      local res = c:put("/upload", {length = 64 * 1024 * 1024, body_source = function()
        n = n + 1
        if n <= 64 then return block end
      end})
      assert.are.equal(64 * 1024 * 1024, res:json().bytes)
      -- a process's output as it comes (a pg_dump stream)
      local p = proc.spawn{argv = {"seq", "1", "30000"}, stdout = "pipe"}
      doc = c:put("/echo", {body_source = function()
        local _, chunk = p:read("stdout")
        return chunk
      end}):json()
      p:wait()
      local want = {}
      for k = 1, 30000 do want[k] = tostring(k) end
      assert.are.equal(table.concat(want, "\n") .. "\n", doc.body)
    end)

    it("refuses retries and a wrong length for a generator", function()
      local c = http.client{base_url = base}
      local function once(s) local done = false; return function() if not done then done = true; return s end end end
      local err = S.catch(c.put, c, "/echo", {body_source = once("x"), retries = 2})
      assert.are.equal("usage", err.kind)
      assert.matches("body_source cannot be sent twice", err.message)
      err = S.catch(c.put, c, "/echo", {body_source = once("abc"), length = 5})
      assert.matches("body_source ended after 3 of length %(5%) bytes", err.message)
      err = S.catch(c.put, c, "/echo", {body_source = once("abcdef"), length = 5})
      assert.matches("body_source gave more than length %(5%) bytes", err.message)
      -- a client's retries do not apply to it: the 503 is raised after one attempt
      local r = http.client{base_url = base, retries = 3, backoff = 0.01}
      assert.are.equal(503, S.catch(r.put, r, "/flaky/gen1?fail=5", {body_source = once("x")}).status)
      assert.are.equal(1, count("gen1"))
      local records = dryrun.with(c.put, c, "/echo", {body_source = once("x"), length = 1})
      assert.are.same({length = 1}, records[1].request.body_source)
    end)
  end)

  describe("secrets", function()
    it("decodes secret_fields into opsh.secret values, never plain strings", function()
      local c = http.client{base_url = base}
      local res = c:get("/secret", {secret_fields = {"value"}})
      assert.is_nil(res.body:find("s3cr3t", 1, true))
      assert.is_nil(res.body:find("acct-key", 1, true))
      local doc = res:json()
      assert.is_true(opsh.is_secret(doc.value))
      assert.is_true(doc.value == opsh.secret('kv-s3cr3t-"q"\u{e9}/\n'))
      assert.is_true(opsh.is_secret(doc.keys[1].value))
      assert.is_true(doc.keys[2].value == opsh.secret("acct-key-two=="))
      assert.are.equal("key1", doc.keys[1].keyName)
      assert.are.equal(5, doc.list[1].value)
      assert.are.equal("https://vault/secrets/db/1", doc.id)
      -- an error response with such a body: the error carries it without them
      local err = S.catch(c.get, c, "/secret?status=500", {secret_fields = {"value"}})
      assert.are.equal(500, err.status)
      assert.is_nil(err.body:find("acct-key", 1, true))
      assert.is_nil(err.body:find("s3cr3t", 1, true))
      err = S.catch(c.get, c, "/drip/sf", {secret_fields = {"value"}, on_data = function() end})
      assert.matches("secret_fields needs a whole response", err.message)
    end)

    it("sends a secret inside json as its real bytes, and shows it redacted everywhere else", function()
      local secret = opsh.secret("kv-value-4242")
      local doc = http.put(base .. "/echo", {json = {value = secret, contentType = "text/plain"}}):json()
      assert.are.same({value = "kv-value-4242", contentType = "text/plain"}, json.decode(doc.body))
      local c = http.client{base_url = base}
      local err = S.catch(c.put, c, "/status/400?echo=body", {json = {value = secret}})
      assert.are.equal(400, err.status)
      assert.is_nil(err.body:find("kv-value-4242", 1, true), err.body)
      assert.matches("<redacted>", err.body)
      local records = dryrun.with(c.put, c, "/secrets/db", {json = {value = secret}})
      local text = json.encode(records[1])
      assert.is_nil(text:find("kv-value-4242", 1, true))
      assert.matches('"value":"<redacted>"', text)
    end)

    it("records a client's auth header as <redacted> in a dry-run, without calling it", function()
      local called = false
      local c = http.client{base_url = base, auth = function() called = true; return "Bearer x-1234" end}
      local records = dryrun.with(c.delete, c, "/pods/web-0")
      assert.is_false(called)
      assert.are.equal("DELETE " .. base .. "/pods/web-0", records[1].action)
      assert.are.equal("<redacted>", records[1].request.headers.Authorization)
    end)
  end)

  it("logs one line per request at -v: method, redacted URL, status, time, attempts", function()
    local r = proc.run{argv = {runtime.exe(), "-v", "-e", string.format([[
      local http = require("opsh.http")
      local c = http.client{base_url = %q, backoff = 0.01, auth = function() return "Bearer tok-log-5150" end}
      c:get("/echo", {query = {sig = "sig-log-6060"}})
      c:get("/flaky/log1?fail=1")
      pcall(c.get, c, "/status/404")
      http.get(%q .. "/echo")
    ]], base, base)}, check = false, env_add = {OPSH_ENV = false}}
    local got = {}
    for line in r.stderr:gmatch("[^\n]+") do
      if line:find(" http GET ", 1, true) then got[#got + 1] = line end
    end
    assert.are.equal(4, #got, r.stderr)
    assert.matches("http GET " .. base:gsub("%p", "%%%0") .. "/echo%?sig=REDACTED 200 %d+ ms$", got[1])
    assert.matches("/flaky/log1%?fail=1 200 %d+ ms, 2 attempts$", got[2])
    assert.matches("/status/404 404 %d+ ms$", got[3])
    assert.matches("/echo 200 %d+ ms$", got[4])
    assert.is_nil(r.stderr:find("sig-log-6060", 1, true))
    assert.is_nil(r.stderr:find("tok-log-5150", 1, true))
  end)
end)
