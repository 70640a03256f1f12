-- opsh.server against real clients: curl, python3 and (when installed) kubectl, run as background
-- processes so that the server, in this same process and loop, keeps serving while they run.
local opsh = require("opsh")
local core = require("opsh._core")
local server = require("opsh.server")

local fs = require("opsh.fs")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local wait_until = S.wait_until

local dir = fs.tmpdir("opsh-server-spec-")

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  return fs.read(path, {missing_ok = true})
end

-- Start a shell command in the background; returns a job to await.
local seq = 0
local function bg(cmd)
  seq = seq + 1
  local base = dir .. "/job" .. seq
  assert(os.execute(string.format("( ( %s ) >%s.out 2>%s.err </dev/null; echo $? >%s.rc ) >/dev/null 2>&1 &",
    cmd, base, base, base)))
  return {base = base, cmd = cmd}
end

-- Poll (sleeping the task, so the server keeps running) until the job ends: rc, stdout, stderr.
local function await(job, timeout)
  local deadline = core.hrtime() + (timeout or 30)
  while true do
    local rc = slurp(job.base .. ".rc")
    if rc and rc:match("%d") then
      return tonumber(rc:match("%d+")), slurp(job.base .. ".out"), slurp(job.base .. ".err")
    end
    if core.hrtime() > deadline then error("background job did not finish: " .. job.cmd) end
    opsh.sleep(0.02)
  end
end

-- curl in the background; -> {status=, body=, headers=(raw text), rc=, err=}
local function curl_job(args)
  seq = seq + 1
  local base = dir .. "/curl" .. seq
  local job = bg(string.format("curl -sS -D %s.hdr -o %s.body -w '%%{http_code}' %s", base, base, args))
  job.files = base
  return job
end

local function curl_result(job, timeout)
  local rc, out, err = await(job, timeout)
  return {rc = rc, status = tonumber(out), body = slurp(job.files .. ".body"),
    headers = slurp(job.files .. ".hdr") or "", err = err}
end

local function curl(args)
  return curl_result(curl_job(args))
end

local function header(res, name)
  local pat = "\n" .. name:lower():gsub("%p", "%%%0") .. ": "
  local _, e = res.headers:lower():find(pat)
  return e and res.headers:match("^[^\r\n]*", e + 1)
end

describe("opsh.server", function()
  local srv, base

  before_each(function()
    srv = server.listen{port = 0}
    base = "http://127.0.0.1:" .. srv.port
  end)

  after_each(function()
    srv:close()
  end)

  it("listens on loopback on a free port and says so", function()
    assert.is_true(srv.port > 0)
    assert.are.equal("http://127.0.0.1:" .. srv.port, srv.url)
    assert.matches("opsh.server %(http, port %d+%)", tostring(srv))
    local ok, err = opsh.try(server.listen, {port = srv.port})
    assert.is_false(ok)
    assert.are.equal("server", err.kind)
    assert.are.equal("EADDRINUSE", err.code)
  end)

  it("routes by method and pattern with path parameters, most specific first", function()
    srv:route("GET", "/apis/{group}/{version}/namespaces/{ns}/{resource}", function(req)
      local p = req.params
      return string.format("generic %s %s %s %s", p.group, p.version, p.ns, p.resource)
    end)
    srv:route("GET", "/apis/apps/v1/namespaces/{ns}/deployments", function(req)
      return "deployments in " .. req.params.ns
    end)
    srv:route("*", "/files/{path...}", function(req) return req.method .. " rest=" .. req.params.path end)
    local generic = curl_job(base .. "/apis/batch/v1/namespaces/prod/jobs")
    local specific = curl_job(base .. "/apis/apps/v1/namespaces/my%20ns/deployments")
    local rest = curl_job("-X PUT " .. base .. "/files/a/b/c.txt")
    assert.are.equal("generic batch v1 prod jobs", curl_result(generic).body)
    local r = curl_result(specific)
    assert.are.equal(200, r.status)
    assert.are.equal("deployments in my ns", r.body)
    assert.are.equal("PUT rest=a/b/c.txt", curl_result(rest).body)
  end)

  it("answers 404 for unknown paths, 405 with Allow for known paths, or calls the catch-all", function()
    srv:route("GET", "/things/{id}", function() return "thing" end)
    srv:route("DELETE", "/things/{id}", function() return 204 end)
    local r = curl(base .. "/nothing/here")
    assert.are.equal(404, r.status)
    assert.matches('"error"', r.body)
    r = curl("-X POST " .. base .. "/things/1")
    assert.are.equal(405, r.status)
    assert.are.equal("DELETE, GET, HEAD", header(r, "allow"))
    r = curl("-X DELETE " .. base .. "/things/1")
    assert.are.equal(204, r.status)
    assert.are.equal("", r.body)
    srv:handle(function(req) return 418, "catch-all " .. req.path end)
    r = curl(base .. "/nothing/here")
    assert.are.equal(418, r.status)
    assert.are.equal("catch-all /nothing/here", r.body)
    local err = S.catch(srv.handle, srv, function() return 200 end)
    assert.are.equal("usage", err.kind)
    r = curl(base .. "/nothing/here")
    assert.are.equal(418, r.status)
  end)

  it("decodes the query and gives case-insensitive headers", function()
    local seen
    srv:route("GET", "/q", function(req)
      seen = req
      return 200, "ok", {["X-Reply"] = "yes", ["Set-Cookie"] = {"a=1", "b=2"}}
    end)
    local r = curl("-H 'X-Custom: Abc' -H 'X-Custom: Def' " ..
      sh_quote(base .. "/q?labelSelector=app%3Dweb%2Ctier+in+(a)&limit=5&x=1&x=2&flag"))
    assert.are.equal(200, r.status)
    assert.are.equal("app=web,tier in (a)", seen.query.labelSelector)
    assert.are.equal("5", seen.query.limit)
    assert.are.equal("1", seen.query.x)
    assert.are.same({"1", "2"}, seen.query_all.x)
    assert.are.equal("", seen.query.flag)
    assert.are.equal("Abc, Def", seen.headers["X-Custom"])
    assert.are.equal("Abc, Def", seen.headers["x-custom"])
    assert.matches("^curl/", seen.headers["User-Agent"])
    assert.matches("^127%.0%.0%.1:%d+$", seen.remote)
    assert.is_nil(seen.client_cert)
    assert.are.equal("yes", header(r, "x-reply"))
    assert.matches("set%-cookie: a=1\r\nset%-cookie: b=2", r.headers:lower())
  end)

  it("gives handlers the request body and answers HEAD without one", function()
    srv:route("POST", "/echo", function(req)
      return 201, req.body, {["X-Length"] = tostring(#req.body)}
    end)
    srv:route("GET", "/doc", function() return "twelve bytes" end)
    local payload = {}
    for i = 1, 20000 do payload[i] = string.format("%05d", i) end
    payload = table.concat(payload)
    fs.write(dir .. "/payload", payload)
    local r = curl("--data-binary @" .. dir .. "/payload " .. base .. "/echo")
    assert.are.equal(201, r.status)
    assert.are.equal(tostring(#payload), header(r, "x-length"))
    assert.are.equal(payload, r.body)
    r = curl("-H 'Transfer-Encoding: chunked' --data-binary @" .. dir .. "/payload " .. base .. "/echo")
    assert.are.equal(payload, r.body)
    r = curl("-I " .. base .. "/doc")
    assert.are.equal(200, r.status)
    assert.are.equal("12", header(r, "content-length"))
    assert.are.equal("\r\n\r\n", r.body:sub(-4))   -- curl -I saves the head only: no body followed
    assert.is_nil(r.body:find("twelve", 1, true))
  end)

  it("refuses bodies over max_body with 413 and keeps serving", function()
    local small = server.listen{port = 0, max_body = 1024}
    local _ <close> = small
    local called = 0
    small:route("POST", "/up", function(req) called = called + 1; return #req.body .. "" end)
    fs.write(dir .. "/big", string.rep("x", 4096))
    local url = small.url .. "/up"
    local r = curl("--data-binary @" .. dir .. "/big " .. url)
    assert.are.equal(413, r.status)
    r = curl("-H 'Transfer-Encoding: chunked' --data-binary @" .. dir .. "/big " .. url)
    assert.are.equal(413, r.status)
    assert.are.equal(0, called)
    r = curl("--data-binary 'small body' " .. url)
    assert.are.equal(200, r.status)
    assert.are.equal("10", r.body)
  end)

  it("runs each request in its own task: 50 slow handlers are in flight together", function()
    local active, peak, arrived = 0, 0, 0
    srv:route("GET", "/slow/{i}", function(req)
      active = active + 1
      arrived = arrived + 1
      peak = math.max(peak, active)
      -- a barrier: this completes only if all 50 handlers run at the same time
      local deadline = core.hrtime() + 15
      while arrived < 50 and core.hrtime() < deadline do opsh.sleep(0.01) end
      opsh.sleep(0.1)
      active = active - 1
      return "done " .. req.params.i
    end)
    local urls = {}
    for i = 1, 50 do urls[i] = string.format("-o %s/slow%d %s/slow/%d", dir, i, base, i) end
    local job = bg("curl -sS --parallel --parallel-immediate --parallel-max 50 " .. table.concat(urls, " "))
    local rc = await(job)
    assert.are.equal(0, rc)
    assert.are.equal(50, peak)
    for i = 1, 50 do assert.are.equal("done " .. i, slurp(dir .. "/slow" .. i)) end
  end)

  it("streams a chunked response that curl -N reads line by line", function()
    local step = 0
    srv:route("GET", "/watch", function(req)
      local res = req:stream(200, {["Content-Type"] = "application/json"})
      for i = 1, 3 do
        res:write(string.format('{"type":"ADDED","n":%d}\n', i))
        wait_until(function() return step >= i end, "the test to read line " .. i)
      end
      res:close()
    end)
    local job = bg("curl -sS -N -D " .. dir .. "/watch.hdr " .. base .. "/watch")
    for i = 1, 3 do
      -- line i must reach curl while the handler still holds the response open
      wait_until(function()
        local out = slurp(job.base .. ".out") or ""
        return select(2, out:gsub("\n", "")) >= i
      end, "line " .. i)
      step = i
    end
    local rc, out = await(job)
    assert.are.equal(0, rc)
    assert.are.equal('{"type":"ADDED","n":1}\n{"type":"ADDED","n":2}\n{"type":"ADDED","n":3}\n', out)
    assert.matches("transfer%-encoding: chunked", slurp(dir .. "/watch.hdr"):lower())
  end)

  it("ends a stream with a 'closed' error when the client goes away", function()
    local stream_err, written = nil, 0
    srv:route("GET", "/forever", function(req)
      local res = req:stream(200)
      local ok, err = opsh.try(function()
        while true do
          res:write(string.rep("x", 100) .. "\n")
          written = written + 1
          opsh.sleep(0.01)
        end
      end)
      stream_err = err
      assert(res:closed())
    end)
    local job = bg("curl -sS -N " .. base .. "/forever | head -n 3")
    await(job)
    wait_until(function() return stream_err ~= nil end, "the handler to see the disconnect")
    assert.are.equal("closed", stream_err.kind)
    assert.is_true(written >= 3)
  end)

  it("turns a handler error into a 500 with a JSON body and serves the next request", function()
    srv:route("GET", "/boom", function() error("database went away\nsecond line") end)
    srv:route("GET", "/fine", function() return "fine" end)
    local r = curl(base .. "/boom")
    assert.are.equal(500, r.status)
    assert.are.equal("application/json", header(r, "content-type"))
    assert.matches('^{"error":".*database went away second line"}$', r.body)
    r = curl(base .. "/fine")
    assert.are.equal(200, r.status)
    assert.are.equal("fine", r.body)
  end)

  it("shapes responses from what handlers return", function()
    srv:route("GET", "/table", function() return {status = 201, headers = {["X-A"] = "1"}, body = "made"} end)
    srv:route("GET", "/pair", function() return 202, "accepted" end)
    srv:route("GET", "/nothing", function() end)
    local r = curl(base .. "/table")
    assert.are.same({201, "made", "1"}, {r.status, r.body, header(r, "x-a")})
    r = curl(base .. "/pair")
    assert.are.same({202, "accepted", "text/plain; charset=utf-8"}, {r.status, r.body, header(r, "content-type")})
    r = curl(base .. "/nothing")
    assert.are.same({204, ""}, {r.status, r.body})
  end)

  local has_json = pcall(require, "opsh.json");
  (has_json and it or pending)("encodes tables as JSON, a Kubernetes Status object included", function()
    local json = require("opsh.json")
    srv:route("GET", "/status", function()
      return {kind = "Status", apiVersion = "v1", status = "Failure", code = 404, reason = "NotFound"}
    end)
    srv:route("GET", "/missing", function() return {status = 404, json = {reason = "NotFound"}} end)
    srv:route("POST", "/echo", function(req) return 200, {got = req:json().name} end)
    local r = curl(base .. "/status")
    assert.are.equal(200, r.status)
    assert.are.equal("application/json", header(r, "content-type"))
    assert.are.equal("Failure", json.decode(r.body).status)
    r = curl(base .. "/missing")
    assert.are.equal(404, r.status)
    assert.are.equal("NotFound", json.decode(r.body).reason)
    r = curl("--data-binary '{\"name\":\"web\"}' " .. base .. "/echo")
    assert.are.equal("web", json.decode(r.body).got)
  end)

  it("keeps connections alive across requests", function()
    srv:route("GET", "/n/{i}", function(req) return req.params.i end)
    local job = bg(string.format("curl -sS -v %s/n/1 %s/n/2 %s/n/3", base, base, base))
    local rc, out, err = await(job)
    assert.are.equal(0, rc)
    assert.are.equal("123", out)
    assert.matches("Re%-using existing connection", err)
    assert.are.equal(3, srv:stats().served)
  end)

  it("cancels running handlers when the server closes", function()
    local started, closed_ok = false, false
    srv:route("GET", "/hang", function()
      local _ <close> = setmetatable({}, {__close = function() closed_ok = true end})
      started = true
      opsh.sleep(60)
      return "never"
    end)
    local job = curl_job(base .. "/hang")
    wait_until(function() return started end, "the handler to start")
    local waiter = opsh.spawn(function() srv:wait(); return "woken" end)
    srv:close()
    assert.is_true(closed_ok)
    assert.are.equal("woken", waiter:wait(5))
    local r = curl_result(job)
    assert.are_not.equal(0, r.rc)
    assert.is_true(srv:is_closed())
    assert.is_nil(srv.port)
    local ok, err = opsh.try(srv.stats, srv)
    assert.is_false(ok)
    assert.are.equal("closed", err.kind)
  end)

  -- raw bytes over a socket from python3; prints everything the server sent until it closed
  local function raw_exchange(port, payload, opts)
    fs.write(dir .. "/raw.py", [[
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
data = open(sys.argv[2], "rb").read()
s.sendall(data)
if sys.argv[3] == "half":
    s.shutdown(socket.SHUT_WR)
s.settimeout(20)
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode("latin-1"))
]])
    seq = seq + 1
    local pf = dir .. "/payload" .. seq
    fs.write(pf, payload)
    local rc, out, err = await(bg(string.format("python3 %s/raw.py %d %s %s", dir, port, pf,
      opts and opts.half and "half" or "-")))
    assert.are.equal(0, rc, err)
    return out
end

  it("answers pipelined requests in order and 400 to a malformed one", function()
    srv:route("GET", "/p/{i}", function(req)
      opsh.sleep(0.01 * (4 - tonumber(req.params.i)))   -- the first takes longest
      return req.params.i
    end)
    local out = raw_exchange(srv.port, "GET /p/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p/2 HTTP/1.1\r\nHost: x\r\n\r\n" ..
      "GET /p/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local bodies = {}
    for body in out:gmatch("\r\n\r\n(%d)") do bodies[#bodies + 1] = body end
    assert.are.same({"1", "2", "3"}, bodies)
    out = raw_exchange(srv.port, "THIS IS NOT HTTP\r\n\r\n")
    assert.matches("^HTTP/1.1 400 Bad Request\r\n", out)
    assert.matches("Connection: close", out)
  end)

  it("closes a connection whose request does not arrive within the timeout", function()
    local quick = server.listen{port = 0, timeout = 0.2}
    local _ <close> = quick
    quick:route("GET", "/", function() return "never" end)
    local out = raw_exchange(quick.port, "GET / HTTP/1.1\r\nHost: x\r\n")   -- no blank line: incomplete
    assert.are.equal("", out)
    assert.are.equal(0, quick:stats().connections)
  end)

  it("answers an HTTP/1.0 client and closes after the response", function()
    srv:route("GET", "/old", function() return "legacy" end)
    local out = raw_exchange(srv.port, "GET /old HTTP/1.0\r\n\r\n")
    assert.matches("^HTTP/1.1 200 OK\r\n", out)
    assert.matches("Connection: close\r\n", out)
    assert.matches("\r\n\r\nlegacy$", out)
  end)

  it("turns a response with a header injection into a 500", function()
    srv:route("GET", "/inject", function() return 200, "x", {["X-Evil"] = "a\r\nSet-Cookie: pwned=1"} end)
    local r = curl(base .. "/inject")
    assert.are.equal(500, r.status)
    assert.matches("line break", r.body)
    assert.is_nil(header(r, "set-cookie"))
  end)

  it("rejects bad arguments with the argument position", function()
    local function usage(msg, fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      assert.same({"usage", msg}, {err.kind, err.message})
    end
    usage("bad argument #1 to 'srv:route' (an HTTP method or \"*\" expected)", srv.route, srv, "FETCH", "/x",
      function() end)
    usage("bad argument #2 to 'srv:route' (a path starting with / expected)", srv.route, srv, "GET", "x",
      function() end)
    usage("bad argument #3 to 'srv:route' (function expected)", srv.route, srv, "GET", "/x")
    usage("bad argument #1 to 'server.listen' (options table expected, got string)", server.listen, "127.0.0.1")
    usage("bad argument #1 to 'server.listen' (unknown option 'hots'; did you mean 'host'?)", server.listen,
      {hots = "127.0.0.1"})
    local ok, err = opsh.try(server.listen, {host = "localhost"})
    assert.is_false(ok)
    assert.matches("not an IP address", err.message)
  end)
end)

describe("opsh.server over TLS", function()
  local pki = dir .. "/pki"

  teardown(function()
    fs.rmtree(dir)   -- the last block of this file: nothing uses dir after it
  end)

  setup(function()
    local ca = S.ca(pki, "ca", {rsa = true})
    local otherca = S.ca(pki, "otherca", {rsa = true})
    S.cert(pki, "server", ca, {subject = "/CN=127.0.0.1", rsa = true,
      ext = "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1"})
    S.cert(pki, "jane", ca, {subject = "/O=system:masters/O=devs/CN=jane", rsa = true,
      ext = "extendedKeyUsage=clientAuth"})
    S.cert(pki, "mallory", otherca, {subject = "/O=system:masters/CN=mallory", rsa = true,
      ext = "extendedKeyUsage=clientAuth"})
  end)

  local function tls_server(client_auth)
    local srv = server.listen{port = 0, tls = {
      cert = slurp(pki .. "/server.pem"),
      key = opsh.secret(slurp(pki .. "/server.key")),
      client_ca = pki .. "/ca.pem",   -- a path works as well as PEM text
      client_auth = client_auth,
    }}
    srv:route("GET", "/whoami", function(req)
      local c = req.client_cert
      if not c then return 401, "anonymous" end
      return string.format("cn=%s o=%s subject=%s sha256=%s tls=%s", c.cn, table.concat(c.o, ","), c.subject,
        c.sha256, tostring(req.tls))
    end)
    return srv
  end

  it("serves HTTPS to curl and python3 with the certificate the CA signed", function()
    local srv <close> = tls_server()
    assert.matches("^https://127%.0%.0%.1:%d+$", srv.url)
    local r = curl("--cacert " .. pki .. "/ca.pem " .. srv.url .. "/whoami")
    assert.are.equal(401, r.status)
    assert.are.equal("anonymous", r.body)
    local py = bg(string.format("python3 -c %s %s %s", sh_quote(
      "import ssl,sys,urllib.request,urllib.error\n" ..
      "ctx=ssl.create_default_context(cafile=sys.argv[1])\n" ..
      "try: urllib.request.urlopen(sys.argv[2], context=ctx)\n" ..
      "except urllib.error.HTTPError as e: print(e.code, e.read().decode())\n"),
      pki .. "/ca.pem", srv.url .. "/whoami"))
    local rc, out, err = await(py)
    assert.are.equal(0, rc, err)
    assert.are.equal("401 anonymous\n", out)
  end)

  it("gives handlers the verified client certificate's subject", function()
    local srv <close> = tls_server()
    local r = curl(string.format("--cacert %s/ca.pem --cert %s/jane.pem --key %s/jane.key %s/whoami",
      pki, pki, pki, srv.url))
    assert.are.equal(200, r.status)
    local fp = S.sh("openssl x509 -in " .. pki .. "/jane.pem -noout -fingerprint -sha256")
    fp = fp:match("=([%x:]+)"):gsub(":", ""):lower()
    assert.are.equal("cn=jane o=system:masters,devs subject=CN=jane,O=devs,O=system:masters sha256=" .. fp ..
      " tls=true", r.body)
  end)

  it("refuses a client certificate from another CA, and none at all when required", function()
    local srv <close> = tls_server("require")
    local r = curl(string.format("--cacert %s/ca.pem --cert %s/mallory.pem --key %s/mallory.key %s/whoami",
      pki, pki, pki, srv.url))
    assert.are_not.equal(0, r.rc)
    r = curl(string.format("--cacert %s/ca.pem %s/whoami", pki, srv.url))
    assert.are_not.equal(0, r.rc)
    r = curl(string.format("--cacert %s/ca.pem --cert %s/jane.pem --key %s/jane.key %s/whoami",
      pki, pki, pki, srv.url))
    assert.are.equal(200, r.status)
    assert.matches("^cn=jane ", r.body)
  end)

  it("streams over TLS", function()
    local srv <close> = tls_server()
    srv:route("GET", "/watch", function(req)
      local res = req:stream(200)
      for i = 1, 5 do res:write("event " .. i .. "\n") end
      res:close()
    end)
    local r = curl("-N --cacert " .. pki .. "/ca.pem " .. srv.url .. "/watch")
    assert.are.equal(200, r.status)
    assert.are.equal("event 1\nevent 2\nevent 3\nevent 4\nevent 5\n", r.body)
  end)

  it("reports unusable certificates and keys without echoing the key", function()
    local ok, err = opsh.try(server.listen, {port = 0, tls = {cert = slurp(pki .. "/server.pem"),
      key = opsh.secret(slurp(pki .. "/jane.key"))}})
    assert.is_false(ok)
    assert.are.equal("tls", err.kind)
    assert.are.equal("tls.key does not match tls.cert", err.message)
    ok, err = opsh.try(server.listen, {port = 0, tls = {cert = "-----BEGIN CERTIFICATE-----\nnope\n",
      key = opsh.secret("-----BEGIN PRIVATE KEY-----\nsecret-material\n")}})
    assert.is_false(ok)
    assert.are.equal("tls", err.kind)
    assert.is_nil(tostring(err):find("secret-material", 1, true))
  end)

  local has_kubectl = os.execute("command -v kubectl >/dev/null 2>&1")
  local kubectl_it = has_kubectl and it or pending
  kubectl_it("answers real kubectl with client-certificate authentication", function()
    local srv <close> = tls_server()
    srv:route("GET", "/api/v1/namespaces/{ns}/pods/{name}", function(req)
      local c = req.client_cert
      return 200, string.format('{"kind":"Pod","apiVersion":"v1","metadata":{"name":"%s","namespace":"%s",' ..
        '"annotations":{"user":"%s","groups":"%s"}}}', req.params.name, req.params.ns, c and c.cn or "",
        c and table.concat(c.o, ",") or ""), {["Content-Type"] = "application/json"}
    end)
    local kubeconfig = string.format([[
apiVersion: v1
kind: Config
clusters:
- name: twin
  cluster: {server: "%s", certificate-authority: "%s/ca.pem"}
users:
- name: jane
  user: {client-certificate: "%s/jane.pem", client-key: "%s/jane.key"}
contexts:
- name: twin
  context: {cluster: twin, user: jane}
current-context: twin
]], srv.url, pki, pki, pki)
    fs.write(pki .. "/kubeconfig", kubeconfig)
    local job = bg("kubectl --kubeconfig " .. pki .. "/kubeconfig get --raw /api/v1/namespaces/default/pods/web-0")
    local rc, out, err = await(job)
    assert.are.equal(0, rc, err)
    assert.matches('"user":"jane"', out)
    assert.matches('"groups":"system:masters,devs"', out)
  end)
end)
