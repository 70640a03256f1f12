-- opsh.http against servers that are not opsh's own: tests/support/http_server.py (Python's
-- http.server and ssl), started here on 127.0.0.1 on free ports and stopped in teardown.
local opsh = require("opsh")
local http = require("opsh.http")
local net = require("opsh.net")
local proc = require("opsh.proc")
local fs = require("opsh.fs")
local crypto = require("opsh.crypto")
local dryrun = require("opsh.dryrun")
local runtime = require("opsh.runtime")

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
      assert.matches("gzip", doc.headers["accept-encoding"])
      doc = echo(http.get(base .. "/echo", {compressed = false}))
      assert.is_nil(doc.headers["x-custom"])
      assert.is_nil(doc.headers["accept-encoding"])
      assert.are.equal("hello", echo(http.put(base .. "/echo", {body = "hello"})).body)
      doc = echo(http.get(base .. "/echo"))
      assert.are.equal("GET", doc.method)
      assert.are.equal("", doc.body)
      assert.matches("gzip", doc.headers["accept-encoding"])
      assert.are.equal("", http.head(base .. "/echo").body)
      assert.are.equal("GET", echo(http.get(base .. "/echo")).method)
      local port = base:match(":(%d+)$")
      doc = echo(http.get("http://user:pw123456@127.0.0.1:" .. port .. "/echo"))
      assert.are.equal("Basic " .. crypto.base64_encode("user:pw123456"), doc.headers.authorization)
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

    it("raises programmer errors as usage errors with the argument position", function()
      local err = S.catch(http.get, 42)
      assert.are.equal("usage", err.kind)
      assert.are.equal("bad argument #1 to 'http.get' (url expected, got number)", err.message)
      err = S.catch(http.post, base, {body = "a", json = {}})
      assert.are.equal("usage", err.kind)
      assert.are.equal("bad argument #2 to 'http.post' (give one of body, json, body_file, body_source)", err.message)
    end)

    it("names an unknown option and the nearest valid one", function()
      local err = S.catch(http.get, base .. "/echo", {timout = 5})
      assert.are.equal("usage", err.kind)
      assert.are.equal("bad argument #2 to 'http.get' (unknown option 'timout'; did you mean 'timeout'?)", err.message)
      err = S.catch(http.request, {url = base .. "/echo", hedaers = {}})
      assert.are.equal("bad argument #1 to 'http.request' (unknown option 'hedaers'; did you mean 'headers'?)",
        err.message)
      err = S.catch(http.get, base .. "/echo", {zzzzzzzz = 1})
      assert.are.equal("bad argument #2 to 'http.get' (unknown option 'zzzzzzzz')", err.message)
    end)

    it("names a URL of another scheme, without its secrets, as argument #1", function()
      local err = S.catch(http.get, "ftp://bob:hunter22@files.example/x?sig=abcdef")
      assert.are.equal("usage", err.kind)
      assert.are.equal("bad argument #1 to 'http.get' (url 'ftp://REDACTED@files.example/x?sig=REDACTED' is not "
        .. "http:// or https://)", err.message)
      err = S.catch(http.request, {url = "ftp://x"})
      assert.are.equal("bad argument #1 to 'http.request' (url 'ftp://x' is not http:// or https://)", err.message)
      err = S.catch(http.request, {})
      assert.are.equal("bad argument #1 to 'http.request' (url is required)", err.message)
    end)
  end)

  describe("failures", function()
    it("raises kind connect on connection refused, saying how many attempts and how long", function()
      local port = net.free_port()
      local ok, err = opsh.try(http.get, "http://127.0.0.1:" .. port .. "/", {retries = 2, backoff = 0.05})
      assert.is_false(ok)
      assert.are.equal("connect", err.kind)
      assert.are.equal(3, err.attempts)
      -- the waits between attempts are at least backoff/2 and 2 * backoff/2
      assert.is_true(err.elapsed >= 0.075, "elapsed " .. tostring(err.elapsed))
      assert.matches("^GET http://127.0.0.1:" .. port .. "/: .*Connection refused %(3 attempts in %d+ ms%)$",
        err.message)
      assert.is_nil(err.message:find(" after 0 ms", 1, true), err.message)
    end)

    it("logs each retry at debug level with the attempt count", function()
      local port = net.free_port()
      local r = proc.run{argv = {runtime.exe(), "-v", "-e", string.format([[
        local http = require("opsh.http")
        pcall(http.get, "http://127.0.0.1:%d/x?sig=qs-secret-1", {retries = 2, backoff = 0.01,
          headers = {Authorization = "Bearer plain-token-0042"}})
      ]], port)}, check = false, env_add = {OPSH_ENV = false}}
      local retries = {}
      for line in r.stderr:gmatch("[^\n]+") do
        if line:find("retry", 1, true) then retries[#retries + 1] = line end
      end
      assert.are.equal(2, #retries, r.stderr)
      assert.matches("attempt 1 of 3", retries[1])
      assert.matches("attempt 2 of 3", retries[2])
      assert.matches("sig=REDACTED", retries[1])
      assert.is_nil(r.stderr:find("qs-secret-1", 1, true))
      assert.is_nil(r.stderr:find("plain-token-0042", 1, true))
    end)

    it("summarises an HTML error page in one line and keeps the whole page in err.body", function()
      local err = S.catch(http.post, base .. "/page/501?type=html")
      assert.are.equal("http", err.kind)
      assert.are.equal(501, err.status)
      assert.are.equal("page-req-501", err.request_id)
      assert.are.equal(string.format("POST %s/page/501?type=html: HTTP 501 Not Implemented: The requested method "
        .. "is not supported for this resource.", base), err.message)
      assert.matches("resource%. %(request%-id page%-req%-501%)$", tostring(err))
      assert.matches("^<!DOCTYPE html>.*<!%-%- padding %-%->\r\n$", err.body)
      err = S.catch(http.get, base .. "/page/404?type=html")
      assert.are.equal(404, err.status)
      assert.is_nil(err.message:find("<", 1, true), err.message)
    end)

    it("summarises JSON error bodies of Azure and Kubernetes", function()
      local err = S.catch(http.get, base .. "/page/404?type=azure")
      assert.are.equal(string.format("GET %s/page/404?type=azure: HTTP 404 Not Found: ResourceNotFound: The Resource "
        .. "'Microsoft.Web/sites/legal' under resource group 'rg' was not found.", base), err.message)
      assert.are.equal("ResourceNotFound", err.code)
      err = S.catch(http.get, base .. "/page/404?type=k8s")
      assert.are.equal(string.format("GET %s/page/404?type=k8s: HTTP 404 Not Found: pods \"web-0\" not found",
        base), err.message)
      assert.are.equal("NotFound", err.code)
    end)

    it("raises kind protocol for a response cut off inside its headers", function()
      local err = S.catch(http.get, base .. "/cut-head", {retries = 0})
      assert.are.equal("protocol", err.kind)
      assert.matches("closed the connection inside the response headers", err.message)
      err = S.catch(http.get, base .. "/cut-head", {retries = 0, on_data = function() end})
      assert.are.equal("protocol", err.kind)
    end)

    it("keeps every credential the call carried out of an error that echoes the request", function()
      local port = base:match(":(%d+)$")
      local err = S.catch(http.get, "http://bob:basic-pw-31337@127.0.0.1:" .. port
        .. "/status/500?echo=1&pass=query-pass-555&sv=2022", {retries = 0, headers = {
          Authorization = "Bearer plain-bearer-1111", Cookie = "session=cookie-val-2222; theme=dark",
          ["X-Api-Key"] = "api-key-3333", ["Ocp-Apim-Subscription-Key"] = "apim-4444",
          ["x-ms-account-key"] = "ms-key-5555", ["X-Vault-Token"] = "vault-6666",
          ["api-key"] = "azure-openai-7777", ["X-Trace"] = "trace-visible-8888"},
        query = {code = "oauth-code-9999", page = "2"}})
      assert.are.equal(500, err.status)
      local text = tostring(err) .. "\n" .. err.url .. "\n" .. err.body .. "\n" .. require("opsh.json").encode(err)
      for _, s in ipairs({"basic-pw-31337", crypto.base64_encode("bob:basic-pw-31337"), "query-pass-555",
          "plain-bearer-1111", "cookie-val-2222", "api-key-3333", "apim-4444", "ms-key-5555", "vault-6666",
          "azure-openai-7777", "oauth-code-9999"}) do
        assert.is_nil(text:find(s, 1, true), s .. " leaked: " .. text)
      end
      assert.matches("trace%-visible%-8888", err.body)   -- not a credential: left alone
      assert.matches("page=2", err.body)
      assert.matches("sv=2022", err.url)
      -- a credential shorter than 4 bytes is not scrubbed from texts (it would garble them)
      err = S.catch(http.get, base .. "/status/500?echo=1", {retries = 0, query = {key = "1"}})
      assert.matches("^GET http://127%.0%.0%.1:%d+/status/500%?echo=1&key=REDACTED: HTTP 500", err.message)
    end)

    it("raises kind timeout when the overall deadline passes", function()
      local ok, err = opsh.try(http.get, base .. "/slow?delay=3", {timeout = 0.3})
      assert.is_false(ok)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(1, err.attempts)
      assert.matches("^GET " .. base .. "/slow%?delay=3: Operation timed out with 0 bytes received "
        .. "%(1 attempt in %d+ ms%)$", err.message)
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
      assert.matches("'Authorization': '<redacted>'", err.body)   -- the server echoed it; scrubbed
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

  describe("dry-run", function()
    local function count(id)
      return http.get(base .. "/count/" .. id):json().count
    end

    after_each(function()
      dryrun.enable(false)
      dryrun.reset()
    end)

    it("records a mutation instead of sending it and returns a response that says so", function()
      local records, res = dryrun.with(http.post, base .. "/flaky/dr1?x=1", {json = {replicas = 3}})
      assert.are.equal(0, count("dr1"))
      assert.are.equal(1, #records)
      local r = records[1]
      assert.are.equal("http", r.kind)
      assert.are.equal("POST " .. base .. "/flaky/dr1?x=1", r.action)
      assert.are.equal("dr1", r.target)
      assert.are.same({method = "POST", url = base .. "/flaky/dr1?x=1", json = {replicas = 3},
        headers = {["Content-Type"] = "application/json", Accept = "application/json"}}, r.request)
      assert.is_nil(res.status)
      assert.is_true(res.dry_run)
      assert.are.equal(r, res.record)
      assert.are.equal("POST", res.method)
      assert.is_nil(res:json())
      for _, m in ipairs({"PUT", "PATCH", "DELETE"}) do
        records = dryrun.with(http.request, {method = m, url = base .. "/flaky/dr2", body = "b"})
        assert.are.equal(m .. " " .. base .. "/flaky/dr2", records[1].action)
        assert.are.equal("b", records[1].request.body)
      end
      assert.are.equal(0, count("dr2"))
    end)

    it("sends GET, HEAD and OPTIONS, and what declares itself a read", function()
      local records = dryrun.with(function()
        assert.are.equal("ok", http.get(base .. "/flaky/dr3?fail=0").body)
        http.head(base .. "/flaky/dr3?fail=0")
        http.request{method = "OPTIONS", url = base .. "/flaky/dr3?fail=0"}
        assert.are.equal("ok", http.post(base .. "/flaky/dr3?fail=0", {read = true, json = {query = "x"}}).body)
      end)
      assert.are.equal(0, #records)
      assert.are.equal(4, count("dr3"))
      -- a GET that changes something says so, and is recorded
      records = dryrun.with(http.get, base .. "/flaky/dr4", {read = false})
      assert.are.equal("GET " .. base .. "/flaky/dr4", records[1].action)
      assert.are.equal(0, count("dr4"))
    end)

    it("sends a request that carries the server's own dry-run, recording nothing", function()
      local records, res = dryrun.with(http.patch, base .. "/echo", {dry_run = "server",
        query = {dryRun = "All"}, json = {spec = {replicas = 2}}})
      assert.are.equal(0, #records)
      assert.are.equal(200, res.status)
      assert.are.equal("All", res:json().query.dryRun)
    end)

    it("scrubs every credential from the record", function()
      local port = base:match(":(%d+)$")
      local records = dryrun.with(http.put, "http://bob:basic-pw-31337@127.0.0.1:" .. port
        .. "/blob/x?sig=sas-sig-4242&sv=2022", {
        headers = {Authorization = "Bearer plain-bearer-1111", ["X-Api-Key"] = opsh.secret("api-key-3333"),
          ["X-Trace"] = "t-1"},
        body = "password=plain-bearer-1111&user=bob"})
      local r = records[1]
      local text = require("opsh.json").encode(r)
      for _, secret in ipairs({"basic-pw-31337", "sas-sig-4242", "plain-bearer-1111", "api-key-3333"}) do
        assert.is_nil(text:find(secret, 1, true), secret .. " leaked: " .. text)
      end
      assert.are.equal("PUT http://REDACTED@127.0.0.1:" .. port .. "/blob/x?sig=REDACTED&sv=2022", r.action)
      assert.are.equal("<redacted>", r.request.headers.Authorization)
      assert.are.equal("<redacted>", r.request.headers["X-Api-Key"])
      assert.are.equal("t-1", r.request.headers["X-Trace"])
      assert.are.equal("password=<redacted>&user=bob", r.request.body)
    end)

    it("records a body_file by path and size, not its bytes", function()
      local path = tmp .. "/dry.bin"
      fs.write(path, string.rep("z", 4096))
      local records = dryrun.with(http.put, base .. "/upload", {body_file = path})
      assert.are.same({path = path, size = 4096}, records[1].request.body_file)
      assert.is_nil(records[1].request.body)
      local err = S.catch(dryrun.with, http.put, base .. "/upload", {body_file = tmp .. "/missing"})
      assert.are.equal("io", err.kind)
    end)

    it("refuses a dry_run or read option it does not know", function()
      local err = S.catch(http.post, base .. "/echo", {dry_run = "yes"})
      assert.are.equal("usage", err.kind)
      assert.matches("dry_run must be \"server\"", err.message)
      err = S.catch(http.post, base .. "/echo", {read = "yes"})
      assert.matches("read must be a boolean", err.message)
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

    it("reads an impossible Retry-After date as no date, not an error", function()
      assert.is_nil(http.retry_after("Tue, 52 May 2024 09:31:00 GMT", 1700000000))
      assert.is_nil(http.retry_after("Tue, 00 May 2024 09:31:00 GMT", 1700000000))
      assert.is_nil(http.retry_after("Tue, 12 May 2024 25:31:00 GMT", 1700000000))
      assert.is_nil(http.retry_after("Tue, 12 May 99999999999999999999 09:31:00 GMT", 1700000000))
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
      local err = S.catch(http.put, base .. "/upload", {body_file = tmp .. "/nope"})
      assert.are.equal("io", err.kind)
      assert.are.equal(tmp .. "/nope", err.path)
      assert.are.equal(string.format("PUT %s/upload: body_file %s/nope: No such file or directory", base, tmp),
        err.message)
      err = S.catch(http.put, base .. "/upload", {body_file = tmp})
      assert.are.equal("io", err.kind)
      assert.matches("Is a directory", err.message)
    end)

    it("sends body_file in order whether it is in the page cache or must be read from disk", function()
      local parts = {}
      for i = 1, 60000 do parts[i] = string.format("%07d\n", i) end
      local want = table.concat(parts)
      local path = tmp .. "/lines.txt"
      fs.write(path, want)
      assert.are.equal(want, http.put(base .. "/echo", {body_file = path}):json().body)
      -- out of the page cache (where the file system allows): read on the thread pool instead
      proc.run{argv = {"dd", "if=" .. path, "iflag=nocache", "count=0", "status=none"}}
      assert.are.equal(want, http.put(base .. "/echo", {body_file = path}):json().body)
    end)

    it("sends body_file again after a redirect (curl rewinds it)", function()
      local path = tmp .. "/redirected.txt"
      fs.write(path, string.rep("0123456789", 5000))
      local doc = http.put(base .. "/redirect", {body_file = path, follow = true}):json()
      assert.are.equal("PUT", doc.method)
      assert.are.equal("/echo", doc.path)
      assert.are.equal(string.rep("0123456789", 5000), doc.body)
    end)

    it("opens and reads body_file off the loop: other tasks run while it blocks", function()
      local fifo = tmp .. "/upload.fifo"
      proc.run{argv = {"mkfifo", fifo}}
      -- should the open block the loop, this writer ends the wait (and the test fails)
      local valve = proc.spawn{argv = {"sh", "-c", "sleep 3; exec 3>" .. fifo}}
      local writer
      local ok, err = pcall(function()
        local t = opsh.spawn(http.put, base .. "/upload", {body_file = fifo})
        local ticks = 0
        for _ = 1, 5 do
          opsh.sleep(0.01)
          ticks = ticks + 1
        end
        assert.are.equal(5, ticks)
        assert.are.equal("suspended", t:status())
        writer = proc.spawn{argv = {"sh", "-c", "printf 'payload' >" .. fifo}}
        assert.are.equal(7, t:wait():json().bytes)
      end)
      valve:stop(1)
      if writer then writer:stop(1) end
      fs.remove(fifo)
      assert(ok, err)
    end)

    it("survives a server that closes keep-alive connections as they are reused: 300/300 without retries", function()
      -- /ka/2: every second connection (at most 2 at a time) is closed (FIN, then a reset) when its next request comes
      local items = {}
      for i = 1, 300 do items[i] = i end
      local got = opsh.parallel(items, function(i)
        local method = i % 2 == 0 and "GET" or "PATCH"
        local res = http.request{method = method, url = base .. "/ka/2", retries = 0,
          body = method == "PATCH" and string.rep("p", i) or nil}
        return res:json().bytes
      end, {limit = 32})
      for i = 1, 300 do assert.are.equal(i % 2 == 0 and 0 or i, got[i]) end
      local resets = http.get(base .. "/count/ka-resets"):json().count
      assert.is_true(resets >= 10, "the server reset " .. resets .. " reused connections")
      -- /ka/1, one request at a time: each reuses the connection of the last, which is closed
      local path = tmp .. "/small.bin"
      fs.write(path, string.rep("u", 3000))
      for i = 1, 60 do
        local res
        if i % 3 == 0 then
          res = http.put(base .. "/ka/1", {body_file = path, retries = 0})
        else
          res = http.request{method = i % 3 == 1 and "GET" or "PATCH", url = base .. "/ka/1", retries = 0,
            body = i % 3 == 2 and "patch" or nil}
        end
        assert.are.equal(({3000, 0, 5})[i % 3 + 1], res:json().bytes)
      end
      assert.is_true(http.get(base .. "/count/ka-resets"):json().count >= resets + 40)
    end)

    it("reconnects every GET whose reused connection died, however many a pooled handle met before", function()
      -- libcurl before 8.17 counts these reconnects per easy handle, not per request, and fails the
      -- sixth one it meets ("Connection died, tried 5 times"): a pooled handle must start from zero
      local resets = http.get(base .. "/count/ka-resets"):json().count
      for _ = 1, 12 do
        assert.are.equal(0, http.get(base .. "/ka/1", {retries = 0}):json().bytes)
      end
      assert.is_true(http.get(base .. "/count/ka-resets"):json().count >= resets + 10)
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
