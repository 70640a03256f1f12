-- opsh.http: the HTTP(S) client every Azure and Kubernetes call goes through.
-- Transport is libcurl on the opsh loop (opsh._http); this layer holds the policy: argument
-- checks, query and header encoding, JSON bodies, retries with backoff and Retry-After within
-- one deadline, streaming callbacks, structured errors whose URLs carry no secrets.
local core = require("opsh._core")
local C = require("opsh._http")
local lines = require("opsh.lines")

local M = {}

--- Defaults for every request; a request's own options win.
M.defaults = {
  timeout = 300,            -- seconds for the whole call, retries included (none when streaming)
  connect_timeout = 10,     -- seconds per connection attempt
  retries = 3,              -- extra attempts after the first
  backoff = 0.5,            -- first backoff in seconds, doubled at each retry
  max_backoff = 30,
  max_retry_after = 120,    -- a longer Retry-After ends the retries instead of waiting
  max_body = 256 * 1024 * 1024,
}

local IDEMPOTENT = {GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true}
local RETRY_STATUS = {[429] = true, [502] = true, [503] = true, [504] = true}
local METHODS = {GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  OPTIONS = true}
-- query keys whose values are credentials (substring match, lower case): SAS `sig`, OAuth
-- `code`/`access_token`/`client_secret`, `password`, API keys...
local SENSITIVE = {"sig", "token", "password", "passwd", "pwd", "secret", "code", "key", "credential",
  "auth", "session"}
local REQUEST_ID_HEADERS = {"x-ms-request-id", "x-request-id", "request-id", "x-amzn-requestid"}

-- ---- URLs ----

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function sensitive(key)
  local k = unescape(key):lower()
  for _, w in ipairs(SENSITIVE) do
    if k:find(w, 1, true) then return true end
  end
  return false
end

-- url -> redacted url; the values it hid are appended to `hidden` (if given), raw and decoded
local function redact(url, hidden)
  local base, query = url:match("^([^?#]*)%??([^#]*)")
  base = base:gsub("^(%a[%w+.-]*://)([^/@]*)@", function(scheme, userinfo)
    if hidden then
      local pass = userinfo:match(":(.*)$")
      if pass and pass ~= "" then hidden[#hidden + 1] = pass end
    end
    return scheme .. "REDACTED@"
  end)
  if query == "" then return base end
  local parts = {}
  for pair in query:gmatch("[^&]+") do
    local k, eq, v = pair:match("^([^=]*)(=?)(.*)$")
    if eq == "=" and sensitive(k) then
      parts[#parts + 1] = k .. "=REDACTED"
      if hidden and v ~= "" then
        hidden[#hidden + 1] = v
        local plain = unescape(v)
        if plain ~= v then hidden[#hidden + 1] = plain end
      end
    else
      parts[#parts + 1] = pair
    end
  end
  return base .. "?" .. table.concat(parts, "&")
end

--- redact(url) -> the URL without credentials: user:password@ and the values of query
-- parameters that carry secrets (sig, token, password, code, key...) become REDACTED.
function M.redact(url)
  return redact(url)
end

-- ---- argument handling ----

local SOURCE = debug.getinfo(1, "S").source

-- a programmer error, blamed on the first caller outside this module
local function usage(where, msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or info.source ~= SOURCE then break end
    level = level + 1
  end
  error(string.format("bad argument #%d to '%s' (%s)", where.arg, where.name, msg), level)
end

local function scalar(v, what, fname)
  local t = type(v)
  if t == "string" or core.is_secret(v) then return v end
  if t == "number" then return math.type(v) == "integer" and string.format("%d", v) or tostring(v) end
  if t == "boolean" then return tostring(v) end
  usage(fname, string.format("%s must be a string, number, boolean or opsh.secret, got %s", what, t))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- query table -> flat {k1, v1, k2, v2...} (sorted keys; an array value repeats its key)
-- and the redacted text shown in errors; secrets go to `secrets`
local function encode_query(query, fname, secrets)
  local flat, shown = {}, {}
  local function add(k, v)
    v = scalar(v, "query value '" .. k .. "'", fname)
    flat[#flat + 1] = k
    flat[#flat + 1] = v
    local hidden = core.is_secret(v) or sensitive(k)
    if hidden then secrets[#secrets + 1] = v end
    shown[#shown + 1] = escape(k) .. "=" .. (hidden and "REDACTED" or escape(v))
  end
  for _, k in ipairs(sorted_keys(query)) do
    if type(k) ~= "string" then usage(fname, "query keys must be strings") end
    local v = query[k]
    if type(v) == "table" and not core.is_secret(v) then
      for _, item in ipairs(v) do add(k, item) end
    else
      add(k, v)
    end
  end
  return flat, table.concat(shown, "&")
end

local function has_header(headers, name)
  for i = 1, #headers, 2 do
    if headers[i]:lower() == name then return true end
  end
  return false
end

-- ---- responses ----

local header_meta = {__index = function(t, k)
  if type(k) == "string" then return rawget(t, k:lower()) end
end}

local Response = {}
Response.__index = Response

--- res:json() -> the body decoded with opsh.json (nil for an empty body).
function Response:json()
  if self.body == nil or self.body == "" then return nil end
  local json = require("opsh.json")
  local ok, v = pcall(json.decode, self.body)
  if ok then return v end
  local detail = core.is_error(v) and v.message or tostring(v)
  error(core.error("protocol", string.format("%s %s: response is not valid JSON: %s",
    self.method, self.url, detail), {status = self.status, method = self.method, url = self.url}), 2)
end

local function wrap_response(res, req)
  setmetatable(res.headers, header_meta)
  res.method = req.method
  res.url = req.shown
  return setmetatable(res, Response)
end

-- ---- errors ----

local function request_id(headers)
  for _, h in ipairs(REQUEST_ID_HEADERS) do
    if headers[h] then return headers[h] end
  end
end

local function raise_transport(req, err, attempts)
  error(core.error(err.kind, string.format("%s %s: %s", req.method, req.shown, err.message), {
    method = req.method, url = req.shown, status = err.status, curl_code = err.curl_code,
    attempts = attempts, path = err.path,
  }), 0)
end

local function one_line(s, max)
  s = s:gsub("%s+", " ")
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

local function raise_status(req, res, attempts)
  local body = res.body or ""
  if #req.secrets > 0 then body = C.scrub(body, req.secrets) end
  local reason = res.reason ~= "" and (" " .. res.reason) or ""
  local msg = string.format("%s %s: HTTP %d%s", req.method, req.shown, res.status, reason)
  local excerpt = one_line(body, 300)
  if excerpt ~= "" and excerpt ~= " " then msg = msg .. ": " .. excerpt end
  error(core.error("http", msg, {
    status = res.status, method = req.method, url = req.shown, body = body,
    headers = res.headers, request_id = request_id(res.headers), attempts = attempts,
  }), 0)
end

-- ---- retries ----

local days_from_civil = require("opsh.time").days_from_civil

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12}

--- retry_after(value [, now]) -> seconds to wait from a Retry-After header (delta seconds or
-- an HTTP-date), or nil when it cannot be read.
function M.retry_after(value, now)
  if type(value) ~= "string" then return nil end
  local secs = value:match("^%s*(%d+)%s*$")
  if secs then return tonumber(secs) end
  local d, mon, y, hh, mm, ss = value:match("^%s*%a+,%s*(%d+)%s+(%a+)%s+(%d+)%s+(%d+):(%d+):(%d+)%s+GMT%s*$")
  if not d or not MONTHS[mon] then return nil end
  local t = days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
  return math.max(0, t - (now or os.time()))
end

local function backoff(req, attempt)
  local b = math.min(req.max_backoff, req.backoff * 2 ^ (attempt - 1))
  return b / 2 + math.random() * b / 2
end

-- ---- one attempt ----

local function ok_status(s) return s >= 200 and s < 300 end

-- a streamed attempt -> res | nil, err; and whether data reached the callback
local function stream_attempt(req, spec)
  local x <close> = C.open(spec)
  local status, headers = x:head()
  if not status then return nil, headers, false end
  local delivered = false
  if ok_status(status) or req.raise_for_status == false then
    local deliver = req.deliver
    while true do
      local chunk = x:read()
      if not chunk then break end
      delivered = true
      if deliver(chunk) == false then
        x:close()
        return {status = status, headers = headers, body = "", reason = ""}, nil, true
      end
    end
    if delivered and req.flush then req.flush() end
    return x:finish()
  end
  -- an error response: keep its body for the error, within max_body
  local parts, size = {}, 0
  while true do
    local chunk = x:read()
    if not chunk then break end
    if size < req.max_body then
      parts[#parts + 1] = chunk
      size = size + #chunk
    end
  end
  local res, err = x:finish()
  if res then res.body = table.concat(parts) end
  return res, err, false
end

-- ---- the request ----

local NUMERIC_OPTIONS = {"timeout", "connect_timeout", "retries", "backoff", "max_backoff",
  "max_retry_after", "max_body"}
local PEM_OPTIONS = {"ca", "cert"}

local function opt(opts, name)
  local v = opts[name]
  if v == nil then v = M.defaults[name] end
  return v
end

local function check_number(fname, opts, name)
  local v = opts[name]
  if v ~= nil and v ~= false and (type(v) ~= "number" or v < 0) then
    usage(fname, name .. " must be a non-negative number")
  end
end

-- options (url and method given apart: get() and friends pass the caller's table as it is)
-- -> the C spec and the request's policy
local function prepare(opts, fname, url, method)
  if type(url) ~= "string" or not url:find("^[hH][tT][tT][pP][sS]?://.") then
    usage(fname, "url must be an http:// or https:// URL")
  end
  method = method or "GET"
  if not METHODS[method] then
    if type(method) ~= "string" or not METHODS[method:upper()] then
      usage(fname, "method must be one of GET HEAD POST PUT PATCH DELETE OPTIONS")
    end
    method = method:upper()
  end
  for i = 1, #NUMERIC_OPTIONS do
    local n = NUMERIC_OPTIONS[i]
    if opts[n] ~= nil then check_number(fname, opts, n) end
  end
  local streaming = opts.on_data ~= nil or opts.on_line ~= nil
  if opts.on_data ~= nil and opts.on_line ~= nil then usage(fname, "give on_data or on_line, not both") end
  if streaming and type(opts.on_data or opts.on_line) ~= "function" then
    usage(fname, "on_data/on_line must be a function")
  end
  local nbodies = (opts.body ~= nil and 1 or 0) + (opts.json ~= nil and 1 or 0) + (opts.body_file ~= nil and 1 or 0)
  if nbodies > 1 then usage(fname, "give one of body, json, body_file") end
  if opts.body ~= nil and type(opts.body) ~= "string" and not core.is_secret(opts.body) then
    usage(fname, "body must be a string or opsh.secret")
  end
  if opts.body_file ~= nil and type(opts.body_file) ~= "string" then usage(fname, "body_file must be a path") end

  local secrets = {}
  local headers
  if opts.headers ~= nil then
    if type(opts.headers) ~= "table" then usage(fname, "headers must be a table") end
    headers = {}
    for _, name in ipairs(sorted_keys(opts.headers)) do
      if type(name) ~= "string" then usage(fname, "header names must be strings") end
      local v = scalar(opts.headers[name], "header '" .. name .. "'", fname)
      if core.is_secret(v) then secrets[#secrets + 1] = v end
      headers[#headers + 1] = name
      headers[#headers + 1] = v
    end
  end
  local body = opts.body
  if core.is_secret(body) then secrets[#secrets + 1] = body end
  if opts.json ~= nil then
    body = require("opsh.json").encode(opts.json)
    headers = headers or {}
    if not has_header(headers, "content-type") then
      headers[#headers + 1] = "Content-Type"
      headers[#headers + 1] = "application/json"
    end
    if not has_header(headers, "accept") then
      headers[#headers + 1] = "Accept"
      headers[#headers + 1] = "application/json"
    end
  end
  local query, shown_query
  if opts.query ~= nil then
    if type(opts.query) ~= "table" then usage(fname, "query must be a table") end
    query, shown_query = encode_query(opts.query, fname, secrets)
  end
  local shown = url:find("[?@#]") and redact(url, secrets) or url
  if shown_query and shown_query ~= "" then
    shown = shown .. (shown:find("?", 1, true) and "&" or "?") .. shown_query
  end
  for i = 1, #PEM_OPTIONS do
    local name = PEM_OPTIONS[i]
    local v = opts[name]
    if v ~= nil and type(v) ~= "string" and not core.is_secret(v) then
      usage(fname, name .. " must be PEM text or a file path")
    end
  end
  if opts.key ~= nil and type(opts.key) ~= "string" and not core.is_secret(opts.key) then
    usage(fname, "key must be PEM text, an opsh.secret or a file path")
  end
  if opts.proxy ~= nil and type(opts.proxy) ~= "string" then usage(fname, "proxy must be a URL") end

  local timeout = opts.timeout
  if timeout == nil and not streaming and opts.body_file == nil then timeout = M.defaults.timeout end
  local max_body = opt(opts, "max_body")
  local spec = {
    method = method, url = url, query = query, headers = headers, body = body,
    body_file = opts.body_file, ca = opts.ca, cert = opts.cert, key = opts.key,
    insecure = opts.insecure == true, proxy = opts.proxy, follow = opts.follow == true,
    max_body = max_body and math.floor(max_body) or 0,
    compressed = not streaming and opts.compressed ~= false,
    connect_timeout_ms = math.ceil(opt(opts, "connect_timeout") * 1000),
  }
  local req = {
    method = method, shown = shown, secrets = secrets, streaming = streaming,
    timed = timeout ~= nil and timeout ~= false, timeout = timeout,
    retries = math.floor(opt(opts, "retries")),
    backoff = opt(opts, "backoff"), max_backoff = opt(opts, "max_backoff"),
    max_retry_after = opt(opts, "max_retry_after"),
    retry_unsafe = opts.retry_unsafe == true, raise_for_status = opts.raise_for_status,
    missing_ok = opts.missing_ok == true, max_body = max_body or math.huge,
  }
  if opts.on_line then
    req.deliver, req.flush = lines.splitter(opts.on_line)
  else
    req.deliver = opts.on_data
  end
  return spec, req
end

local function log_retry(req, attempt, wait, why)
  local log = require("opsh.log")
  if log.enabled("debug") then
    log.debug("http retry", {method = req.method, url = req.shown, attempt = attempt,
      wait = string.format("%.2f", wait), reason = why})
  end
end

local function request(opts, where, url, method)
  local spec, req = prepare(opts, where, url, method)
  local may_retry = IDEMPOTENT[req.method] or req.retry_unsafe
  local attempt = 0
  while true do
    attempt = attempt + 1
    if req.deadline or (attempt == 1 and req.timed) then
      local left
      if attempt == 1 then
        left = req.timeout
        req.deadline = core.hrtime() + left
      else
        left = req.deadline - core.hrtime()
      end
      if left <= 0 then
        raise_transport(req, {kind = "timeout", message = string.format("timed out after %g s", req.timeout)},
          attempt - 1)
      end
      spec.timeout_ms = math.max(1, math.ceil(left * 1000))
    end
    local res, err, delivered
    if req.streaming then
      res, err, delivered = stream_attempt(req, spec)
    else
      res, err = C.request(spec)
    end
    local why
    if res then
      if RETRY_STATUS[res.status] then why = "HTTP " .. res.status end
    elseif err.kind == "connect" and not delivered then
      why = err.message
    end
    local wait
    if why and may_retry and attempt <= req.retries then
      local ra = res and res.headers["retry-after"]
      wait = ra and M.retry_after(ra) or backoff(req, attempt)
      if wait > req.max_retry_after then wait = nil end
      if wait and req.deadline and core.hrtime() + wait >= req.deadline then wait = nil end
    end
    if wait then
      log_retry(req, attempt, wait, why)
      core.sleep(wait)
    else
      if not res then raise_transport(req, err, attempt) end
      wrap_response(res, req)
      if res.status == 404 and req.missing_ok then return nil end
      if res.status >= 400 and req.raise_for_status ~= false then raise_status(req, res, attempt) end
      return res
    end
  end
end

--- request{method, url, query, headers, body | json | body_file, timeout, connect_timeout,
-- ca, cert, key, insecure, proxy, retries, retry_unsafe, on_data | on_line, max_body,
-- follow, missing_ok, raise_for_status} -> {status, reason, headers, body, version, json()}
local REQUEST_ARG = {name = "request", arg = 1}
local NO_OPTIONS = setmetatable({}, {__newindex = function() error("read-only", 2) end})

function M.request(opts)
  if type(opts) ~= "table" then usage(REQUEST_ARG, "table expected, got " .. type(opts)) end
  return request(opts, REQUEST_ARG, opts.url, opts.method)
end

local function with_method(method, fname)
  local url_arg, opts_arg = {name = fname, arg = 1}, {name = fname, arg = 2}
  return function(url, opts)
    if opts == nil then
      opts = NO_OPTIONS
    elseif type(opts) ~= "table" then
      usage(opts_arg, "table expected, got " .. type(opts))
    end
    if type(url) ~= "string" then usage(url_arg, "url expected, got " .. type(url)) end
    return request(opts, opts_arg, url, method)
  end
end

--- get/head/delete/post/put/patch(url [, opts]) -> request{method=..., url=url, ...opts}
M.get = with_method("GET", "get")
M.head = with_method("HEAD", "head")
M.delete = with_method("DELETE", "delete")
M.post = with_method("POST", "post")
M.put = with_method("PUT", "put")
M.patch = with_method("PATCH", "patch")

--- configure{max_host_connections = 64, max_total_connections = 0 (no limit)}
function M.configure(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'configure' (table expected)", 2) end
  C.configure(opts)
end

--- stats() -> {running=, pooled=, sockets=}: transfers in flight, idle easy handles, watched sockets
M.stats = C.stats

--- curl_version() -> libcurl's version, and whether it speaks HTTP/2
M.curl_version = C.version

return M
