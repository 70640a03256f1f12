-- opsh.server: an HTTP(S) server on the opsh loop. Routes by method and path pattern; every
-- request runs its handler in a task of its own. The C part (opsh._server) reads requests and
-- writes responses; this layer routes, decodes, normalises handler results and owns the tasks.
local C = require("opsh._server")
local core = require("opsh._core")
local check = require("opsh.check")

local M = {}

local server_meta = C.server_meta
local cmethods = server_meta.__index
local methods = {}
for k, v in pairs(cmethods) do methods[k] = v end
local c_close, c_accept, c_state, c_port = cmethods.close, cmethods.accept, cmethods.state, cmethods.port

local function log()
  return require("opsh.log")
end

-- ---- decoding ----

local unescape = require("opsh.http.url").unescape
M.unescape = unescape

--- parse_query("a=1&b=x%20y&b=2") -> {a="1", b="x y"}, {a={"1"}, b={"x y", "2"}}
function M.parse_query(qs)
  check.string("server.parse_query", 1, qs, true)
  local first, all = {}, {}
  for pair in (qs or ""):gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = unescape(k, true), unescape(v, true)
    if k ~= "" then
      if first[k] == nil then first[k] = v end
      local list = all[k]
      if not list then list = {}; all[k] = list end
      list[#list + 1] = v
    end
  end
  return first, all
end

local headers_meta = {
  __index = function(t, k)
    if type(k) == "string" then return rawget(t, k:lower()) end
  end,
}

-- ---- routing ----
-- A trie of path segments: literal children first, then a {param}, then a trailing {rest...}.

local function new_node()
  return {lit = {}, param = nil, rest = nil, methods = nil}
end

local function split_path(path)
  local segs = {}
  for seg in path:gmatch("[^/]+") do segs[#segs + 1] = seg end
  return segs
end

local valid_method = {GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  OPTIONS = true, ["*"] = true}

local function add_route(root, method, pattern, fn)
  local node = root
  local segs = split_path(pattern)
  for i, seg in ipairs(segs) do
    local rest = seg:match("^{([%w_]+)%.%.%.}$")
    local param = seg:match("^{([%w_]+)}$")
    if rest then
      if i ~= #segs then check.fail("srv:route", 2, "{" .. rest .. "...} must be the last segment") end
      node.rest = node.rest or {name = rest, node = new_node()}
      if node.rest.name ~= rest then check.fail("srv:route", 2, "conflicting names for one segment") end
      node = node.rest.node
    elseif param then
      node.param = node.param or {name = param, node = new_node()}
      if node.param.name ~= param then
        check.fail("srv:route", 2, "{" .. param .. "} conflicts with {" .. node.param.name .. "}")
      end
      node = node.param.node
    elseif seg:find("[{}]") then
      check.fail("srv:route", 2, "bad segment '" .. seg .. "'")
    else
      node.lit[seg] = node.lit[seg] or new_node()
      node = node.lit[seg]
    end
  end
  node.methods = node.methods or {}
  if node.methods[method] then
    check.fail("srv:route", 2, method .. " " .. pattern .. " is already routed")
  end
  node.methods[method] = fn
end

-- Walk the trie in priority order; visit(methods, params) returns true to stop.
local function walk(node, segs, i, params, visit)
  if i > #segs then
    if node.methods and visit(node.methods, params) then return true end
  else
    local seg = segs[i]
    local child = node.lit[seg]
    if child and walk(child, segs, i + 1, params, visit) then return true end
    if node.param then
      params[node.param.name] = seg
      if walk(node.param.node, segs, i + 1, params, visit) then return true end
      params[node.param.name] = nil
    end
  end
  if node.rest and node.rest.node.methods then
    params[node.rest.name] = table.concat(segs, "/", i)
    if visit(node.rest.node.methods, params) then return true end
    params[node.rest.name] = nil
  end
  return false
end

-- -> fn, params | nil, allowed methods (path known) | nil, nil (no such path)
local function match(root, method, segs)
  local found, found_params, allowed = nil, nil, nil
  walk(root, segs, 1, {}, function(ms, params)
    local fn = ms[method] or (method == "HEAD" and ms.GET) or ms["*"]
    if fn then
      found, found_params = fn, {}
      for k, v in pairs(params) do found_params[k] = v end
      return true
    end
    allowed = allowed or {}
    for m in pairs(ms) do allowed[m] = true end
    if ms.GET then allowed.HEAD = true end
    return false
  end)
  return found, found_params or allowed
end

-- ---- responses ----

local function json_encode(v)
  return require("opsh.json").encode(v)
end

local response_keys = {status = true, headers = true, body = true, json = true}

local function is_response_table(t)
  if type(t.status) ~= "number" then return false end
  for k in pairs(t) do
    if not response_keys[k] then return false end
  end
  return true
end

local function with_type(headers, ctype)
  headers = headers or {}
  for k in pairs(headers) do
    if type(k) == "string" and k:lower() == "content-type" then return headers end
  end
  local h = {}
  for k, v in pairs(headers) do h[k] = v end
  h["Content-Type"] = ctype
  return h
end

-- A handler's results -> status, headers, body
local function normalise(a, b, c)
  if a == nil then return 204, c, "" end
  local ta = type(a)
  if ta == "number" then
    if type(b) == "table" then return a, with_type(c, "application/json"), json_encode(b) end
    return a, with_type(c, "text/plain; charset=utf-8"), b ~= nil and tostring(b) or ""
  elseif ta == "string" then
    return 200, with_type(b, "text/plain; charset=utf-8"), a
  elseif ta == "table" then
    if is_response_table(a) then
      local body = a.body
      if a.json ~= nil then return a.status, with_type(a.headers, "application/json"), json_encode(a.json) end
      if type(body) == "table" then return a.status, with_type(a.headers, "application/json"), json_encode(body) end
      return a.status, a.headers, body ~= nil and tostring(body) or ""
    end
    return 200, with_type(nil, "application/json"), json_encode(a)
  end
  error("a handler returned a " .. ta .. " (expected a response table, status and body, a string or a table)", 0)
end

local function error_body(message)
  local ok, body = pcall(json_encode, {error = message})
  if ok then return body end
  return '{"error":"' .. message:gsub('[%c"\\]', " ") .. '"}'
end

local function one_line(err)
  return (tostring(err):gsub("[\r\n]+", " "):sub(1, 500))
end

-- ---- requests ----

local X = setmetatable({}, {__mode = "k"})   -- request -> exchange, hidden from handlers

local request_methods = {}
request_methods.__index = request_methods

local stream_methods = {}
stream_methods.__index = stream_methods

--- req:stream(status, headers) -> res with res:write(chunk), res:close(): a chunked response.
function request_methods:stream(status, headers)
  local x = X[self]
  if not x then check.fail("req:stream", 1, "not a request") end
  if type(status) ~= "number" then check.fail("req:stream", 1, "status expected") end
  x:stream(status, headers)
  local res = setmetatable({x = x}, stream_methods)
  self._stream = res
  return res
end

--- req:json() -> the body decoded as JSON
function request_methods:json()
  if not X[self] then check.fail("req:json", 1, "not a request") end
  return require("opsh.json").decode(self.body)
end

--- res:write(chunk): suspends until the chunk is handed to the kernel; raises {kind="closed"}
-- when the client has gone away.
function stream_methods:write(chunk)
  if type(chunk) ~= "string" then check.fail("res:write", 1, "string expected") end
  return self.x:write(chunk)
end

--- res:close(): the last chunk; idempotent.
function stream_methods:close()
  if not self.x:is_done() then self.x:finish() end
end

--- res:closed() -> true when the client has gone away
function stream_methods:closed()
  return self.x:is_closed()
end

local function build_request(raw, x)
  local target = raw.target
  local path, qs = target:match("^([^?#]*)%??([^#]*)")
  local query, query_all = M.parse_query(qs)
  local req = setmetatable({
    method = raw.method,
    target = target,
    raw_path = path,
    path = unescape(path),
    query = query,
    query_all = query_all,
    headers = setmetatable(raw.headers, headers_meta),
    body = raw.body,
    remote = raw.remote,
    tls = raw.tls,
    version = raw.version,
    client_cert = raw.client_cert,
    params = {},
  }, request_methods)
  X[req] = x
  return req
end

local function handle(srv, st, raw, x)
  local me = core.current()
  local _ <close> = setmetatable({}, {__close = function()
    st.tasks[me] = nil
    if not x:is_done() then x:abort() end   -- cancelled half-way: the client must not hang
  end})
  local req = build_request(raw, x)
  local segs = {}
  for _, seg in ipairs(split_path(req.raw_path)) do segs[#segs + 1] = unescape(seg) end
  local fn, params = match(st.router, req.method, segs)
  if not fn and params then
    local allow = {}
    for m in pairs(params) do if m ~= "*" then allow[#allow + 1] = m end end
    table.sort(allow)
    x:respond(405, {["Content-Type"] = "application/json", Allow = table.concat(allow, ", ")},
      error_body("method " .. req.method .. " not allowed for " .. req.path))
    return
  end
  if not fn then fn, params = st.fallback, {} end
  if not fn then
    x:respond(404, {["Content-Type"] = "application/json"}, error_body("no route for " .. req.method .. " " .. req.path))
    return
  end
  req.params = params
  local ok, err = pcall(function()
    local status, headers, body = normalise(fn(req))
    if x:is_done() then return end
    if req._stream then req._stream:close() else x:respond(status, headers, body) end
  end)
  if ok then return end
  if core.is_error(err, "cancelled") or core.is_error(err, "interrupted") then error(err, 0) end
  local msg = one_line(err)
  log().error("server handler failed", {method = req.method, path = req.path, error = msg})
  if x:is_done() then return end
  if req._stream then
    x:abort()   -- half a stream must not look like a complete one
  else
    x:respond(500, {["Content-Type"] = "application/json"}, error_body(msg))
  end
end

local function accept_loop(srv, st)
  while true do
    local raw, x = c_accept(srv)
    if raw == nil then break end
    if raw then
      local t = core.spawn(handle, srv, st, raw, x)
      st.tasks[t] = true
    end
  end
end

-- ---- the server handle ----

--- srv:route(method, pattern, fn): "GET", "/apis/{group}/{version}/namespaces/{ns}/{resource}";
-- "{name}" matches one segment, a last "{name...}" the rest of the path; method "*" matches any.
function methods:route(method, pattern, fn)
  if type(method) ~= "string" or not valid_method[method:upper()] then
    check.fail("srv:route", 1, "an HTTP method or \"*\" expected")
  end
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    check.fail("srv:route", 2, "a path starting with / expected")
  end
  if type(fn) ~= "function" then check.fail("srv:route", 3, "function expected") end
  add_route(c_state(self).router, method:upper(), pattern, fn)
  return self
end

--- srv:handle(fn): the handler for requests no route matches (instead of 404).
function methods:handle(fn)
  if type(fn) ~= "function" then check.fail("srv:handle", 1, "function expected") end
  local st = c_state(self)
  if st.fallback then
    error(core.error("usage", "srv:handle: this server already has a handler for unrouted requests"), 2)
  end
  st.fallback = fn
  return self
end

--- srv:close(): stop listening, drop the connections, cancel the running handlers. Idempotent.
function methods:close()
  local st = c_state(self)
  c_close(self)
  local me = core.current()
  for t in pairs(st.tasks) do
    if t ~= me then t:cancel() end
  end
  local waiters = st.waiters
  st.waiters = {}
  for _, t in ipairs(waiters) do core.wake(t) end
end

--- srv:wait(): suspend the calling task until the server is closed.
function methods:wait()
  if self:is_closed() then return end
  local st = c_state(self)
  st.waiters[#st.waiters + 1] = core.current()
  core.suspend()
end

--- srv.url -> "http://127.0.0.1:PORT" (https when TLS)
local fields = {
  port = function(s) return c_port(s) end,
  url = function(s)
    local st = c_state(s)
    local port = c_port(s)
    if not port then return nil end
    local host = st.host:find(":") and "[" .. st.host .. "]" or st.host
    return (st.tls and "https" or "http") .. "://" .. host .. ":" .. port
  end,
}

server_meta.__index = function(s, k)
  local f = fields[k]
  if f then return f(s) end
  return methods[k]
end
server_meta.__close = methods.close   -- __gc stays the C close: at exit there is no task to cancel

-- PEM text, or the text of the file v names. A key file is only checked here: the C side reads
-- it into memory it wipes once OpenSSL has the key, so the key never becomes a Lua string.
local function read_pem(v, what, secret)
  if v == nil then return nil end
  if core.is_secret(v) then return v end
  if type(v) ~= "string" then check.fail("server.listen", 1, "tls." .. what .. " must be a string") end
  if v:find("-----BEGIN", 1, true) then return v end
  local f, err = io.open(v, "rb")
  if not f then error(core.error("usage", "tls." .. what .. ": " .. tostring(err)), 0) end
  if secret then
    f:close()
    return v
  end
  local data = f:read("a")
  f:close()
  return data
end

local LISTEN_OPTIONS = {host = "string", port = {"integer", min = 0, max = 65535}, tls = "table",
  max_body = {"integer", min = 0}, timeout = "number", routes = "table", handler = "function"}

--- listen{host="127.0.0.1", port=0, tls={cert=, key=, client_ca=, client_auth="optional"|"require"},
--   max_body=8 MiB, timeout=60, routes={{method, pattern, fn}, ...}, handler=fn} -> server
function M.listen(opts)
  check.options("server.listen", 1, opts, LISTEN_OPTIONS)
  if opts == check.EMPTY then check.fail("server.listen", 1, "options table expected, got nil") end
  local host = opts.host or "127.0.0.1"
  local tls = opts.tls
  local args = {host = host, port = opts.port or 0, max_body = opts.max_body, timeout = opts.timeout}
  if tls ~= nil then
    if type(tls) ~= "table" then check.fail("server.listen", 1, "tls must be a table") end
    args.cert = read_pem(tls.cert, "cert")
    args.key = read_pem(tls.key, "key", true)
    args.client_ca = read_pem(tls.client_ca, "client_ca")
    if tls.client_auth ~= nil and tls.client_auth ~= "optional" and tls.client_auth ~= "require" then
      check.fail("server.listen", 1, "tls.client_auth must be \"optional\" or \"require\"")
    end
    args.require_client_cert = tls.client_auth == "require"
  end
  if opts.handler ~= nil and type(opts.handler) ~= "function" then
    check.fail("server.listen", 1, "handler must be a function")
  end
  local srv = C.listen(args)
  local st = c_state(srv)
  st.router = new_node()
  st.tasks = {}
  st.waiters = {}
  st.fallback = opts.handler
  st.host = host
  st.tls = tls ~= nil
  for i, r in ipairs(opts.routes or {}) do
    if type(r) ~= "table" then check.fail("server.listen", 1, "routes[" .. i .. "] must be {method, pattern, fn}") end
    methods.route(srv, r[1], r[2], r[3])
  end
  st.acceptor = core.spawn(accept_loop, srv, st)
  return srv
end

return M
