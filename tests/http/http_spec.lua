-- opsh.http against servers that are not opsh's own: tests/support/http_server.py (Python's
-- http.server and ssl), started here on 127.0.0.1 on free ports and stopped in teardown.
local opsh = require("opsh")
local http = require("opsh.http")
local net = require("opsh.net")
local proc = require("opsh.proc")
local fs = require("opsh.fs")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/http"
local SERVER = here .. "/../support/http_server.py"

local S = dofile(here .. "/../support/helpers.lua")

local tmp = fs.tmpdir("opsh-http-spec")

local servers = {}

-- start http_server.py with extra arguments; waits for its "listening PORT" line
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

local function stop_server(srv)
  if srv.proc then srv.proc:stop(1) end
  srv.proc = nil
end

local function vm_kb(field)
  return tonumber(fs.read("/proc/self/status"):match("\n" .. field .. ":%s+(%d+) kB"))
end

local function echo(res)
  return res:json()
end

describe("opsh.http", function()
  local plain, base, tls, tls_base, mtls, mtls_base
  local ca_pem, other_ca_pem

  -- what the test server says of the drip transfer `id`, once it is `want` (or the last answer)
  local function drip_state(id, want)
    return S.poll(function() return http.get(base .. "/state/" .. id).body end, function(st) return st == want end)
  end

  lazy_setup(function()
    local certs = S.server_certs(tmp)
    S.cert(tmp, "client", {cert = certs.ca, key = certs.ca_key}, {subject = "/CN=opsh-client",
      ext = "extendedKeyUsage=clientAuth"})
    ca_pem = fs.read(certs.ca)
    other_ca_pem = fs.read(certs.other_ca)
    plain = start_server()
    tls = start_server({"--cert", tmp .. "/server.pem", "--key", tmp .. "/server.key"})
    mtls = start_server({"--cert", tmp .. "/server.pem", "--key", tmp .. "/server.key",
      "--client-ca", tmp .. "/ca.pem"})
    base = "http://127.0.0.1:" .. plain.port
    tls_base = "https://127.0.0.1:" .. tls.port
    mtls_base = "https://localhost:" .. mtls.port
  end)

  lazy_teardown(function()
    for _, s in ipairs(servers) do stop_server(s) end
    fs.rmtree(tmp)
  end)

  describe("requests", function()
    it("GETs and returns status, reason, headers and body", function()
      local res = http.get(base .. "/status/200")
      assert.are.equal(200, res.status)
      assert.are.equal("OK", res.reason)
      assert.are.equal("status 200", res.body)
      assert.are.equal("1.1", res.version)
    end)

    it("looks headers up case-insensitively", function()
      local res = http.get(base .. "/status/200")
      assert.are.equal("text/plain", res.headers["content-type"])
      assert.are.equal("text/plain", res.headers["Content-Type"])
      assert.are.equal("10", res.headers["CONTENT-LENGTH"])
      assert.is_nil(res.headers["X-Not-There"])
    end)

    it("sends headers, a string body and the method", function()
      local res = http.request{method = "put", url = base .. "/echo", body = "hello",
        headers = {["X-Custom"] = "v1", ["X-Number"] = 42}}
      local doc = echo(res)
      assert.are.equal("PUT", doc.method)
      assert.are.equal("hello", doc.body)
      assert.are.equal("v1", doc.headers["x-custom"])
      assert.are.equal("42", doc.headers["x-number"])
      assert.are.equal("5", doc.headers["content-length"])
    end)

    it("sends Content-Length: 0 on an empty POST and supports HEAD and DELETE", function()
      assert.are.equal("0", echo(http.post(base .. "/echo")).headers["content-length"])
      local head = http.head(base .. "/status/200")
      assert.are.equal(200, head.status)
      assert.are.equal("", head.body)
      assert.are.equal("DELETE", echo(http.delete(base .. "/echo")).method)
    end)

    it("carries nothing of one request into the next on a reused handle", function()
      -- one request at a time: each takes the handle the previous one gave back
      local doc = echo(http.get(base .. "/echo", {headers = {["X-Custom"] = "v1"}}))
      assert.are.equal("v1", doc.headers["x-custom"])
      assert.is_not_nil(doc.headers["accept-encoding"])
      doc = echo(http.get(base .. "/echo", {compressed = false}))
      assert.is_nil(doc.headers["x-custom"])
      assert.is_nil(doc.headers["accept-encoding"])
      assert.are.equal("hello", echo(http.put(base .. "/echo", {body = "hello"})).body)
      doc = echo(http.get(base .. "/echo"))
      assert.are.equal("GET", doc.method)
      assert.are.equal("", doc.body)
      assert.is_not_nil(doc.headers["accept-encoding"])
      assert.are.equal("", http.head(base .. "/echo").body)
      assert.are.equal("GET", echo(http.get(base .. "/echo")).method)
      local port = base:match(":(%d+)$")
      doc = echo(http.get("http://user:pw123456@127.0.0.1:" .. port .. "/echo"))
      assert.is_not_nil(doc.headers.authorization)
      assert.is_nil(echo(http.get(base .. "/echo")).headers.authorization)
      assert.are.equal("GET", echo(http.get(base .. "/redirect", {follow = true})).method)
      assert.are.equal(302, http.get(base .. "/redirect", {raise_for_status = false}).status)
    end)

    it("encodes the query table, arrays as repeated keys", function()
      local doc = echo(http.get(base .. "/echo", {query = {q = "a b&c=d/é", n = 5, flag = true,
        list = {"x", "y"}}}))
      assert.are.same({flag = "true", list = {"x", "y"}, n = "5", q = "a b&c=d/é"}, doc.query)
      assert.matches("q=a%%20b%%26c%%3Dd%%2F%%C3%%A9", doc.raw_query)
      local doc2 = echo(http.get(base .. "/echo?api-version=1", {query = {x = "1"}}))
      assert.are.equal("api-version=1&x=1", doc2.raw_query)
    end)

    it("POSTs JSON and decodes a JSON response", function()
      local res = http.post(base .. "/echo", {json = {name = "web", replicas = 3, tags = {"a", "b"}}})
      local doc = res:json()
      assert.are.equal("application/json", doc.headers["content-type"])
      assert.are.equal("application/json", doc.headers["accept"])
      assert.are.same({name = "web", replicas = 3, tags = {"a", "b"}},
        require("opsh.json").decode(doc.body))
    end)

    it("sends an opsh.secret header and body without exposing them", function()
      local doc = echo(http.post(base .. "/echo", {headers = {Authorization = opsh.secret("Bearer abc123xyz")},
        body = opsh.secret("p4ssw0rd-body")}))
      assert.are.equal("Bearer abc123xyz", doc.headers.authorization)
      assert.are.equal("p4ssw0rd-body", doc.body)
    end)

    it("rejects a header value with a line break", function()
      local ok, err = pcall(http.get, base .. "/echo", {headers = {["X-Bad"] = "a\r\nInjected: 1"}})
      assert.is_false(ok)
      assert.matches("line break", tostring(err))
    end)

    it("follows redirects only when asked", function()
      assert.are.equal(302, http.get(base .. "/redirect").status)
      local res = http.get(base .. "/redirect", {follow = true})
      assert.are.equal(200, res.status)
      assert.are.equal("/echo", echo(res).path)
    end)

    it("raises kind http for 4xx/5xx, nil for 404 with missing_ok, the response with raise_for_status=false", function()
      local ok, err = opsh.try(http.get, base .. "/status/500")
      assert.is_false(ok)
      assert.are.equal("http", err.kind)
      assert.are.equal(500, err.status)
      assert.are.equal("GET", err.method)
      assert.are.equal("status 500", err.body)
      assert.matches("^req%-", err.request_id)
      assert.matches("GET http://127.0.0.1:%d+/status/500: HTTP 500 Internal Server Error: status 500", err.message)
      assert.is_nil(http.get(base .. "/status/404", {missing_ok = true}))
      local res = http.get(base .. "/status/503", {raise_for_status = false, retries = 0})
      assert.are.equal(503, res.status)
    end)

    it("goes through a proxy", function()
      local doc = echo(http.get("http://127.0.0.1:" .. net.free_port() .. "/echo", {proxy = base}))
      assert.is_true(doc.absolute_uri)
      assert.are.equal("/echo", doc.path)
    end)

    it("raises kind protocol for a body that is not JSON", function()
      local res = http.get(base .. "/notjson")
      local ok, err = opsh.try(res.json, res)
      assert.is_false(ok)
      assert.are.equal("protocol", err.kind)
      assert.matches("GET http://127.0.0.1:%d+/notjson: response is not valid JSON", err.message)
    end)

    it("limits the body with max_body (kind protocol)", function()
      assert.are.equal(1000, #http.get(base .. "/big?size=1000", {max_body = 1000}).body)
      local ok, err = opsh.try(http.get, base .. "/big?size=100000", {max_body = 1000})
      assert.is_false(ok)
      assert.are.equal("protocol", err.kind)
      assert.matches("max_body", err.message)
    end)

    it("raises programmer errors with the argument position", function()
      local ok, err = pcall(http.get, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'get'", err)
      ok, err = pcall(http.request, {url = "ftp://x"})
      assert.matches("bad argument #1 to 'request' %(url must be", err)
      ok, err = pcall(http.post, base, {body = "a", json = {}})
      assert.matches("bad argument #2 to 'post' %(give one of body, json, body_file%)", err)
    end)
  end)

  describe("failures", function()
    it("raises kind connect on connection refused", function()
      local port = net.free_port()
      local ok, err = opsh.try(http.get, "http://127.0.0.1:" .. port .. "/", {retries = 1, backoff = 0.01})
      assert.is_false(ok)
      assert.are.equal("connect", err.kind)
      assert.are.equal(2, err.attempts)
      assert.matches("^GET http://127.0.0.1:%d+/: ", err.message)
    end)

    it("raises kind timeout when the overall deadline passes", function()
      local ok, err = opsh.try(http.get, base .. "/slow?delay=3", {timeout = 0.3})
      assert.is_false(ok)
      assert.are.equal("timeout", err.kind)
    end)

    it("keeps secrets out of errors: query values, secret headers, echoed bodies", function()
      local ok, err = opsh.try(http.get, base .. "/status/401?echo=1&sig=sigvalue123&user=bob", {
        query = {token = opsh.secret("tok-secret-999"), password = "pw-plain-777", page = "2"},
        headers = {Authorization = opsh.secret("Bearer s3cr3t-token-value")}})
      assert.is_false(ok)
      assert.are.equal(401, err.status)
      local text = tostring(err) .. err.url .. err.body
      for _, s in ipairs({"sigvalue123", "tok-secret-999", "pw-plain-777", "s3cr3t-token-value"}) do
        assert.is_nil(text:find(s, 1, true), s .. " leaked")
      end
      assert.matches("sig=REDACTED", err.url)
      assert.matches("user=bob", err.url)
      assert.matches("page=2", err.url)
      assert.matches("token=REDACTED", err.url)
      assert.matches("'Authorization': 'REDACTED'", err.body)   -- the server echoed it; scrubbed
      ok, err = opsh.try(http.get, "http://user:hunter2@127.0.0.1:" .. net.free_port() .. "/x?code=oauth-code-1",
        {retries = 0, headers = {Authorization = opsh.secret("Bearer s3cr3t-token-value")}})
      assert.are.equal("connect", err.kind)
      assert.is_nil(tostring(err):find("hunter2", 1, true))
      assert.is_nil(tostring(err):find("oauth-code-1", 1, true))
    end)

    it("redacts URLs", function()
      assert.are.equal("https://REDACTED@h/p?sv=2022&sig=REDACTED&se=1",
        http.redact("https://u:p@h/p?sv=2022&sig=abc%2B&se=1#frag"))
      assert.are.equal("http://h/?client_secret=REDACTED&access_token=REDACTED&x=1",
        http.redact("http://h/?client_secret=s&access_token=t&x=1"))
    end)
  end)

  describe("retries", function()
    local function count(id)
      return http.get(base .. "/count/" .. id):json()
    end

    it("retries 429 after the delay Retry-After gives in seconds", function()
      local res = http.get(base .. "/flaky/ra1?fail=2&status=429&retry_after=1", {backoff = 0.001})
      assert.are.equal(200, res.status)
      assert.are.equal("ok", res.body)
      local c = count("ra1")
      assert.are.equal(3, c.count)
      assert.is_true(c.times[2] - c.times[1] >= 0.9, "waited less than Retry-After")
    end)

    it("honours Retry-After given as an HTTP-date", function()
      local res = http.get(base .. "/flaky/ra2?fail=1&status=503&retry_after=date", {backoff = 0.001})
      assert.are.equal(200, res.status)
      local c = count("ra2")
      assert.are.equal(2, c.count)
      assert.is_true(c.times[2] - c.times[1] >= 0.9, "waited less than Retry-After")
    end)

    it("reads Retry-After values", function()
      assert.are.equal(7, http.retry_after("7"))
      assert.are.equal(30, http.retry_after("Sun, 06 Nov 1994 08:50:07 GMT", 784111777))
      assert.are.equal(0, http.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800))
      assert.is_nil(http.retry_after("soon"))
    end)

    it("gives up on 503 after the retries and raises the last response", function()
      local ok, err = opsh.try(http.get, base .. "/flaky/ex?fail=100&status=503",
        {retries = 2, backoff = 0.01})
      assert.is_false(ok)
      assert.are.equal("http", err.kind)
      assert.are.equal(503, err.status)
      assert.are.equal(3, err.attempts)
      assert.are.equal(3, count("ex").count)
    end)

    it("does not retry POST unless retry_unsafe", function()
      local ok, err = opsh.try(http.post, base .. "/flaky/post1?fail=1&status=503", {backoff = 0.01})
      assert.is_false(ok)
      assert.are.equal(503, err.status)
      assert.are.equal(1, count("post1").count)
      local res = http.post(base .. "/flaky/post2?fail=1&status=503", {backoff = 0.01, retry_unsafe = true})
      assert.are.equal(200, res.status)
      assert.are.equal(2, count("post2").count)
    end)

    it("does not wait for a Retry-After beyond max_retry_after or the deadline", function()
      local ok, err = opsh.try(http.get, base .. "/flaky/long?fail=5&status=429&retry_after=3600")
      assert.are.equal(429, err.status)
      assert.are.equal(1, count("long").count)
      ok, err = opsh.try(http.get, base .. "/flaky/dl?fail=5&status=429&retry_after=2", {timeout = 1})
      assert.are.equal(429, err.status)
      assert.are.equal(1, count("dl").count)
    end)
  end)

  describe("TLS", function()
    it("verifies the server with ca as PEM text or as a file", function()
      local res = http.get(tls_base .. "/echo", {ca = ca_pem})
      assert.are.equal(200, res.status)
      assert.are.equal(200, http.get("https://localhost:" .. tls.port .. "/echo", {ca = tmp .. "/ca.pem"}).status)
    end)

    it("fails with kind tls without the CA, with another CA; insecure opts out", function()
      local ok, err = opsh.try(http.get, tls_base .. "/echo")
      assert.is_false(ok)
      assert.are.equal("tls", err.kind)
      ok, err = opsh.try(http.get, tls_base .. "/echo", {ca = other_ca_pem})
      assert.is_false(ok)
      assert.are.equal("tls", err.kind)
      assert.are.equal(200, http.get(tls_base .. "/echo", {insecure = true}).status)
    end)

    it("authenticates with a client certificate and key held in memory", function()
      local res = http.get(mtls_base .. "/echo", {ca = ca_pem, cert = fs.read(tmp .. "/client.pem"),
        key = opsh.secret(fs.read(tmp .. "/client.key"))})
      assert.are.equal("opsh-client", echo(res).client_cn)
      local ok, err = opsh.try(http.get, mtls_base .. "/echo", {ca = ca_pem, retries = 0})
      assert.is_false(ok)
      assert.are.equal("tls", err.kind)
    end)
  end)

  describe("HTTP/2", function()
    local nginx, h2_base

    lazy_setup(function()
      local port = net.free_port()
      local dir = tmp .. "/nginx"
      fs.mkdir(dir)
      fs.write(dir .. "/nginx.conf", string.format([[
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %s;
  server {
    listen 127.0.0.1:%d ssl http2;
    ssl_certificate %s/server.pem;
    ssl_certificate_key %s/server.key;
    location / { return 200 "connection $connection\n"; }
  }
}
]], dir, dir, dir, port, tmp, tmp))
      nginx = proc.spawn{argv = {"nginx", "-p", dir, "-c", dir .. "/nginx.conf"}, stdout_file = dir .. "/out.log",
        stderr = "stdout"}
      net.wait_port("127.0.0.1", port)
      h2_base = "https://localhost:" .. port
    end)

    lazy_teardown(function()
      if nginx then nginx:stop(2) end
    end)

    it("speaks HTTP/2 when the server offers it and multiplexes concurrent requests on one connection", function()
      local items = {}
      for i = 1, 50 do items[i] = i end
      local seen = {}
      local res = opsh.parallel(items, function()
        local r = http.get(h2_base .. "/", {ca = ca_pem})
        seen[r.body] = true
        return r.version
      end)
      for i = 1, 50 do assert.are.equal("2", res[i]) end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.are.equal(1, n, "requests used more than one connection")
    end)
  end)

  describe("concurrency and streaming", function()
    it("runs 1,000 concurrent requests", function()
      local items = {}
      for i = 1, 1000 do items[i] = i end
      local res = opsh.parallel(items, function(i)
        return echo(http.get(base .. "/echo", {query = {i = i}})).query.i
      end)
      for i = 1, 1000 do assert.are.equal(tostring(i), res[i]) end
      assert.are.equal(0, http.stats().running)
    end)

    it("delivers a chunked response line by line while it streams", function()
      local lines = {}
      local res = http.get(base .. "/stream/s1?lines=6", {timeout = 20, on_line = function(line)
        lines[#lines + 1] = line
        -- the server sends the rest only once this request arrives: a buffering client would hang
        if #lines == 1 then http.get(base .. "/release/s1") end
      end})
      assert.are.equal(200, res.status)
      assert.are.equal("", res.body)
      assert.are.same({"line 1 of 6", "line 2 of 6", "line 3 of 6", "line 4 of 6", "line 5 of 6",
        "line 6 of 6"}, lines)
    end)

    it("delivers chunks with on_data and stops when the callback returns false", function()
      local got, calls = {}, 0
      http.get(base .. "/release/s2")
      http.get(base .. "/stream/s2?lines=50", {on_data = function(chunk)
        calls = calls + 1
        got[#got + 1] = chunk
      end})
      assert.is_true(calls > 1)
      assert.matches("^line 1 of 50\r\n.*line 50 of 50\r\n$", table.concat(got))
      local n = 0
      http.get(base .. "/drip/stop1", {on_data = function()
        n = n + 1
        if n == 3 then return false end
      end})
      assert.are.equal(3, n)
      assert.are.equal(0, http.stats().running)
    end)

    it("raises the error response of a stream instead of streaming it", function()
      local called = false
      local ok, err = opsh.try(http.get, base .. "/status/403", {on_line = function() called = true end})
      assert.is_false(ok)
      assert.are.equal(403, err.status)
      assert.are.equal("status 403", err.body)
      assert.is_false(called)
    end)

    it("streams a 1 GB upload from a file in little memory", function()
      local path = tmp .. "/upload.bin"
      proc.run{argv = {"truncate", "-s", "1G", path}}
      fs.write("/proc/self/clear_refs", "5")   -- VmHWM is the process's peak: count from here
      local before = vm_kb("VmRSS")
      local res = http.put(base .. "/upload", {body_file = path, timeout = 300})
      assert.are.equal(1024 * 1024 * 1024, res:json().bytes)
      local peak = vm_kb("VmHWM")
      assert.is_true(peak - before < 100 * 1024, string.format("peak %d kB, before %d kB", peak, before))
      fs.remove(path)
    end)

    it("raises kind io for a body_file that cannot be read", function()
      local ok, err = opsh.try(http.put, base .. "/upload", {body_file = tmp .. "/nope"})
      assert.is_false(ok)
      assert.are.equal("io", err.kind)
    end)

    it("aborts the transfer when the task is cancelled", function()
      local t = opsh.spawn(http.get, base .. "/drip/c1")
      drip_state("c1", "sending")
      assert.are.equal("suspended", t:status())
      assert.is_true(t:cancel())
      assert.are.equal(0, http.stats().running)
      assert.are.equal("closed", drip_state("c1", "closed"))
    end)

    it("aborts a stream when its task is cancelled inside the callback's wait", function()
      local chunks = 0
      local t = opsh.spawn(http.get, base .. "/drip/c3", {on_data = function()
        chunks = chunks + 1
        opsh.sleep(0.01)
      end})
      S.poll(function() return chunks end, function(n) return n >= 3 end)
      assert.is_true(t:cancel())
      assert.are.equal(0, http.stats().running)
      assert.are.equal("closed", drip_state("c3", "closed"))
    end)

    it("cancels a retry wait at once", function()
      local t = opsh.spawn(http.get, base .. "/flaky/cw?fail=5&status=503&retry_after=60", {max_retry_after = 100})
      S.poll(function() return http.get(base .. "/count/cw"):json().count end, function(n) return n >= 1 end)
      opsh.sleep(0.05)
      assert.are.equal("suspended", t:status())
      assert.is_true(t:cancel())
      assert.are.equal("cancelled", t:status())
      assert.are.equal(1, http.get(base .. "/count/cw"):json().count)
    end)

    it("aborts the transfer on opsh.timeout", function()
      local ok, err = opsh.try(opsh.timeout, 0.3, http.get, base .. "/drip/c2")
      assert.is_false(ok)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(0, http.stats().running)
      assert.are.equal("closed", drip_state("c2", "closed"))
    end)
  end)
end)
