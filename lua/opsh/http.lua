-- opsh.http: the HTTP(S) client every Azure and Kubernetes call goes through.
-- Transport is libcurl on the opsh loop (opsh._http); this layer holds the policy: argument
-- checks, query and header encoding, JSON bodies, retries with backoff and Retry-After within
-- one deadline, streaming callbacks, structured errors whose URLs carry no secrets, and the
-- dry-run rule (a mutation is recorded, not sent). Clients (http.client{...}, opsh.http.client)
-- run their calls through the same request engine with their own settings, auth and throttle.
local core = require("opsh._core")
local C = require("opsh._http")
local redact = require("opsh.redact")
local dryrun = require("opsh.dryrun")
local log = require("opsh.log")

local M = {}

local P = require("opsh.http.prepare")
local DEFAULTS, NO_OPTIONS, PLAIN = P.DEFAULTS, P.NO_OPTIONS, P.PLAIN
local prepare, usage, add_credential = P.prepare, P.usage, P.add_credential

--- The defaults, read-only: a client (http.client{...}) holds other settings for its calls.
M.defaults = setmetatable({}, {
  __index = DEFAULTS,
  __newindex = function(_, k)
    error(core.error("usage", string.format("http.defaults is read-only: give %s to the call, or make a client "
      .. "with it (http.client{%s = ...})", tostring(k), tostring(k))), 2)
  end,
  __pairs = function() return next, DEFAULTS, nil end,
})

local IDEMPOTENT = {GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true}
local RETRY_STATUS = {[429] = true, [502] = true, [503] = true, [504] = true}
local REQUEST_ID_HEADERS = {"x-ms-request-id", "x-request-id", "request-id", "x-amzn-requestid"}

-- ---- URLs ----

local redact_url = require("opsh.http.url").redact

--- redact(url) -> the URL without credentials: user:password@ and the values of query
-- parameters that carry secrets (sig, token, password, code, key...) become REDACTED.
function M.redact(url)
  if type(url) ~= "string" then require("opsh.check").string("http.redact", 1, url) end
  return redact_url(url)
end

-- ---- responses ----

local header_meta = {__index = function(t, k)
  if type(k) == "string" then return rawget(t, k:lower()) end
end}

local Response = {}
Response.__index = Response

-- response -> {names = secret_fields, values = {opsh.secret...}}: the values taken out of its body
local SECRET_VALUES = setmetatable({}, {__mode = "k"})

-- put the secrets back where the body says "<redacted #N>" under one of the names
local function restore_secrets(v, names, values)
  if type(v) ~= "table" then return end
  for i = 1, #names do
    local s = rawget(v, names[i])
    if type(s) == "string" then
      local n = s:match("^<redacted #(%d+)>$")
      if n and values[tonumber(n)] then rawset(v, names[i], values[tonumber(n)]) end
    end
  end
  for _, child in pairs(v) do
    if type(child) == "table" then restore_secrets(child, names, values) end
  end
end

--- res:json() -> the body decoded with opsh.json (nil for an empty body); with secret_fields,
-- those members' string values are opsh.secret.
function Response:json()
  if self.body == nil or self.body == "" then return nil end
  local json = require("opsh.json")
  local ok, v = pcall(json.decode, self.body)
  if ok then
    local sv = SECRET_VALUES[self]
    if sv then restore_secrets(v, sv.names, sv.values) end
    return v
  end
  local detail = core.is_error(v) and v.message or tostring(v)
  error(core.error("protocol", string.format("%s %s: response is not valid JSON: %s",
    self.method, self.url, detail), {status = self.status, method = self.method, url = self.url}), 2)
end

local function wrap_response(res, req)
  setmetatable(res.headers, header_meta)
  res.method = req.method
  res.url = req.shown
  local sv = res.secret_values
  if sv then
    res.secret_values = nil
    SECRET_VALUES[res] = {names = req.secret_fields, values = sv}
    for i = 1, #sv do req.secrets[#req.secrets + 1] = sv[i] end
  end
  return setmetatable(res, Response)
end

-- ---- errors ----

local function request_id(headers)
  for _, h in ipairs(REQUEST_ID_HEADERS) do
    if headers[h] then return headers[h] end
  end
end

local function elapsed_text(s)
  if s < 1 then return string.format("%d ms", math.floor(s * 1000 + 0.5)) end
  return string.format("%.1f s", s)
end

local function attempts_text(n, elapsed)
  return string.format("(%d attempt%s in %s)", n, n == 1 and "" or "s", elapsed_text(elapsed))
end

-- curl's message without its per-attempt clock ("... after 0 ms: ..."): the error gives the
-- attempts and the time of the whole call instead
local function transport_detail(message)
  return (message:gsub(" after %d+ ms", ""):gsub(" after %d+ milliseconds", ""))
end

-- -v: one line per request, whatever its outcome
local function log_done(req, outcome, attempts)
  if not log.enabled("debug") then return end
  local line = string.format("http %s %s %s %s", req.method, req.shown, tostring(outcome),
    elapsed_text(core.hrtime() - req.t0))
  if attempts > 1 then line = line .. string.format(", %d attempts", attempts) end
  if req.refreshed then line = line .. ", auth refreshed" end
  log.debug(redact.text(line, req.secrets))
end

local function raise_transport(req, err, attempts)
  log_done(req, err.kind, attempts)
  local elapsed = core.hrtime() - req.t0
  local msg = string.format("%s %s: %s", req.method, req.shown, transport_detail(err.message))
  if err.kind ~= "io" then msg = msg .. " " .. attempts_text(attempts, elapsed) end
  error(redact.error(core.error(err.kind, msg, {
    method = req.method, url = req.shown, status = err.status, curl_code = err.curl_code,
    attempts = attempts, elapsed = elapsed, path = err.path,
  }), req.secrets), 0)
end

local function raise_status(req, res, attempts)
  log_done(req, res.status, attempts)
  local elapsed = core.hrtime() - req.t0
  local reason = res.reason ~= "" and (" " .. res.reason) or ""
  local msg = string.format("%s %s: HTTP %d%s", req.method, req.shown, res.status, reason)
  -- scrubbed before it is cut to a summary, which could leave part of a secret
  local body = redact.text(res.body or "", req.secrets)
  local summary, code = require("opsh.http.summary").summarise(res, body)
  if summary then msg = msg .. ": " .. summary end
  if attempts > 1 then msg = msg .. " " .. attempts_text(attempts, elapsed) end
  error(redact.error(core.error("http", msg, {
    status = res.status, method = req.method, url = req.shown, body = body, code = code,
    headers = res.headers, request_id = request_id(res.headers), attempts = attempts, elapsed = elapsed,
  }), req.secrets), 0)
end

-- ---- retries ----

local days_from_civil = require("opsh.time").days_from_civil

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12}

--- retry_after(value [, now]) -> seconds to wait from a Retry-After header (delta seconds or
-- an HTTP-date), or nil when it cannot be read.
function M.retry_after(value, now)
  if value ~= nil and type(value) ~= "string" then require("opsh.check").string("http.retry_after", 1, value) end
  if now ~= nil and type(now) ~= "number" then require("opsh.check").number("http.retry_after", 2, now) end
  if value == nil then return nil end
  local secs = value:match("^%s*(%d+)%s*$")
  if secs then return tonumber(secs) end
  local d, mon, y, hh, mm, ss = value:match("^%s*%a+,%s*(%d%d?)%s+(%a+)%s+(%d%d%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT%s*$")
  if not d or not MONTHS[mon] then return nil end
  d, y, hh, mm, ss = tonumber(d), tonumber(y), tonumber(hh), tonumber(mm), tonumber(ss)
  if d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60 then return nil end
  local t = days_from_civil(y, MONTHS[mon], d) * 86400 + hh * 3600 + mm * 60 + ss
  return math.max(0, t - (now or os.time()))
end

local function backoff(req, attempt)
  local b = math.min(req.max_backoff, req.backoff * 2 ^ (attempt - 1))
  return b / 2 + math.random() * b / 2
end

-- ---- one attempt ----

local function ok_status(s) return s >= 200 and s < 300 end

-- the body_source's chunks into the transfer; stops early when the transfer is over (the server
-- answered, or it failed: the outcome says which)
local function pump(x, req)
  local source, length, total = req.source, req.length, 0
  while true do
    local chunk = source()
    if chunk == nil then break end
    if type(chunk) ~= "string" then
      usage(req.where, "body_source must return strings, then nil at the end; it returned a " .. type(chunk))
    end
    total = total + #chunk
    if length and total > length then
      usage(req.where, string.format("body_source gave more than length (%d) bytes", length))
    end
    if #chunk > 0 and not x:write(chunk) then return end
  end
  if length and total < length then
    usage(req.where, string.format("body_source ended after %d of length (%d) bytes", total, length))
  end
  x:write(nil)
end

-- an attempt that streams the response (on_data/on_line), sends a body_source, or both
-- -> res | nil, err; and whether data reached the callback
local function open_attempt(req, spec)
  local x <close> = C.open(spec, not req.streaming)
  if req.source then pump(x, req) end
  if not req.streaming then
    local res, err = x:finish()
    return res, err, true
  end
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

local function log_retry(req, attempt, wait, why)
  if log.enabled("debug") then
    log.debug(redact.text(string.format("http retry: %s %s: %s; attempt %d of %d failed, next in %.2f s",
      req.method, req.shown, transport_detail(why), attempt, req.retries + 1, wait), req.secrets))
  end
end

-- ---- auth and throttle ----

-- what the auth provider is told: {refresh, status, challenge, method, url, query, headers}
local CTX_SPEC = setmetatable({}, {__mode = "k"})
local ctx_meta = {__index = function(t, k)
  if k ~= "headers" then return nil end
  local spec = CTX_SPEC[t]
  local h = setmetatable({}, header_meta)
  local list = spec and spec.headers or {}
  for i = 1, #list, 2 do h[list[i]:lower()] = list[i + 1] end
  rawset(t, "headers", h)
  return h
end}

local function auth_ctx(req, spec, res)
  local ctx = setmetatable({refresh = res ~= nil, status = res and res.status,
    challenge = res and res.headers["www-authenticate"], method = req.method, url = req.url,
    query = req.query}, ctx_meta)
  CTX_SPEC[ctx] = spec
  return ctx
end

-- the provider's value -> the request's auth header (none for nil)
local function set_auth(spec, req, value)
  local headers = spec.headers
  if req.auth_index then
    table.remove(headers, req.auth_index + 1)
    table.remove(headers, req.auth_index)
    req.auth_index = nil
  end
  if value == nil then return end
  if core.is_secret(value) then
    req.secrets[#req.secrets + 1] = value
  elseif type(value) == "string" then
    add_credential(req.secrets, value)
  else
    error(core.error("usage", "the client's auth must return a string, an opsh.secret or nil, got "
      .. type(value)), 0)
  end
  headers[#headers + 1] = req.auth_header
  headers[#headers + 1] = value
  req.auth_index = #headers - 1
end

-- what a throttle is told: {method, url (redacted), read, attempt, status}
local function throttle_info(req, attempt)
  local info = req.info
  if not info then
    info = {method = req.method, url = req.shown, read = req.read}
    req.info = info
  end
  info.attempt, info.status = attempt, nil
  return info
end

-- ---- dry-run ----

-- what a mutation would have been -> the record kept in opsh.dryrun, and a response that says it
-- was not sent: {status = nil, dry_run = true, record = ..., method, url, headers = {}}
local function not_sent(req, spec, opts)
  local request = {method = req.method, url = req.shown}
  if spec.headers then
    request.headers = {}
    for i = 1, #spec.headers, 2 do request.headers[spec.headers[i]] = spec.headers[i + 1] end
  end
  if req.auth then
    -- the credential the client's auth would add, not asked for (nothing is sent)
    request.headers = request.headers or {}
    request.headers[req.auth_header] = "<redacted>"
  end
  if opts.json ~= nil then
    request.json = opts.json
  elseif opts.body ~= nil then
    request.body = spec.body
  elseif req.source then
    request.body_source = {length = req.length}
  end
  if spec.body_file then
    local path = spec.body_file
    local st = require("opsh.fs").stat(path)
    local why = not st and "No such file or directory" or st.type == "dir" and "Is a directory" or nil
    if not why and st.type == "file" then
      local offset = spec.offset or 0
      if offset > st.size or (spec.length or 0) > st.size - offset then
        why = string.format("offset and length go beyond the end of the file (%d bytes)", st.size)
      end
    end
    if why then
      raise_transport(req, {kind = "io", message = string.format("body_file %s: %s", path, why), path = path}, 1)
    end
    request.body_file = {path = path, size = st.size, offset = spec.offset, length = spec.length}
  end
  local path = req.shown:match("^[^?#]*")
  local target = path:match("://[^/]*/.-([^/]+)/*$") or path:match("://([^/]+)")
  local record = dryrun.record{kind = "http", action = req.method .. " " .. req.shown, target = target,
    request = request, secrets = req.secrets}
  return setmetatable({dry_run = true, record = record, method = req.method, url = req.shown,
    headers = setmetatable({}, header_meta)}, Response)
end

-- ---- the attempts ----

local wiper_meta = {__close = function(w) C.wipe(w[1]) end}

local function send(req, spec)
  -- a body that holds secrets' bytes is wiped once the request is over
  local _ <close> = req.wipe and setmetatable({req.wipe}, wiper_meta)
  local auth, gen = req.auth, nil
  local A = auth and require("opsh.http.auth")
  if auth then
    local value
    value, gen = A.get(auth, auth_ctx(req, spec, nil))
    set_auth(spec, req, value)
  end
  local throttle = req.throttle
  local may_retry = IDEMPOTENT[req.method] or req.retry_unsafe
  local attempt = 0
  while true do
    attempt = attempt + 1
    if req.deadline or (attempt == 1 and req.timed) then
      local left
      if attempt == 1 then
        left = req.timeout
        req.deadline = req.t0 + left
      else
        left = req.deadline - core.hrtime()
      end
      if left <= 0 then
        raise_transport(req, {kind = "timeout", message = string.format("timed out after %g s", req.timeout)},
          attempt - 1)
      end
      spec.timeout_ms = math.max(1, math.ceil(left * 1000))
    end
    local info
    if throttle then
      info = throttle_info(req, attempt)
      for i = 1, #throttle do
        local t = throttle[i]
        if t.before then t.before(t.obj, info) end
      end
    end
    local res, err, delivered
    if req.streaming or req.source then
      res, err, delivered = open_attempt(req, spec)
    else
      res, err = C.request(spec)
    end
    if res and throttle then
      info.status = res.status
      setmetatable(res.headers, header_meta)
      for i = 1, #throttle do
        local t = throttle[i]
        if t.after then t.after(t.obj, res.headers, info) end
      end
    end
    local resend = false
    if res and res.status == 401 and auth and not req.refreshed then
      -- a new credential (one refresh however many requests meet the 401), then the request
      -- again; a body_source cannot go again: its 401 is raised, the next request has the new one
      req.refreshed = true
      set_auth(spec, req, A.refresh(auth, gen, auth_ctx(req, spec, res)))
      resend = not req.source
    end
    if not resend then
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
        if res.status >= 400 and req.raise_for_status ~= false and not (res.status == 404 and req.missing_ok) then
          raise_status(req, res, attempt)
        end
        log_done(req, res.status, attempt)
        if res.status == 404 and req.missing_ok then return nil end
        return res
      end
    end
  end
end

-- A mutation that is sent leaves one line in the audit log (opsh.audit), with the status it got.
local function request(opts, where, url_arg, url, method, cfg)
  local spec, req = prepare(opts, where, url_arg, url, method, cfg)
  req.t0 = core.hrtime()
  if not req.mutation then return send(req, spec) end
  if dryrun.active() then return not_sent(req, spec, opts) end
  local res = table.pack(pcall(send, req, spec))
  local path = req.shown:match("^[^?#]*")
  require("opsh.audit").record({kind = "http", action = req.method .. " " .. req.shown,
    target = path:match("://[^/]*/.-([^/]+)/*$") or path:match("://([^/]+)"), secrets = req.secrets,
    result = res[1] and (res[2] and tostring(res[2].status) or "404 (missing)") or ("error: " .. core.describe(res[2]))})
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- (internal, opsh.http.client) what a client's settings are made with
M._internal = P.internal

--- (internal, opsh.http.client) the request engine with a client's settings
M._request = request
M._no_options = NO_OPTIONS

--- request{method, url, query, headers, body | json | body_file | body_source, ...} -> response
-- (see docs/http.md for every option)
local REQUEST_ARG = {name = "http.request", arg = 1}

function M.request(opts)
  if type(opts) ~= "table" then usage(REQUEST_ARG, "table expected, got " .. type(opts)) end
  return request(opts, REQUEST_ARG, REQUEST_ARG, opts.url, opts.method, PLAIN)
end

local function with_method(method, fname)
  local url_arg, opts_arg = {name = "http." .. fname, arg = 1}, {name = "http." .. fname, arg = 2}
  return function(url, opts)
    if opts == nil then
      opts = NO_OPTIONS
    elseif type(opts) ~= "table" then
      usage(opts_arg, "table expected, got " .. type(opts))
    end
    if type(url) ~= "string" then usage(url_arg, "url expected, got " .. type(url)) end
    return request(opts, opts_arg, url_arg, url, method, PLAIN)
  end
end

--- get/head/delete/post/put/patch(url [, opts]) -> request{method=..., url=url, ...opts}
M.get = with_method("GET", "get")
M.head = with_method("HEAD", "head")
M.delete = with_method("DELETE", "delete")
M.post = with_method("POST", "post")
M.put = with_method("PUT", "put")
M.patch = with_method("PATCH", "patch")

--- client{base_url, headers, query, ca, cert, key, auth, throttle, timeout, retries, ...} -> a client:
-- client:get/head/delete/post/put/patch(path [, opts]), client:request{...}, client:with{...}
function M.client(opts)
  return require("opsh.http.client").new(opts)
end

--- budget{rate, burst [, level, header]} -> a token bucket shared by clients as a throttle
function M.budget(opts)
  return require("opsh.http.budget").new(opts)
end

--- bearer(fetch [, {margin = 300}]) -> an auth provider sending "Bearer <token>": fetch(ctx) ->
-- token, expires_at; one fetch at a time, cached until margin seconds before expires_at
function M.bearer(fetch, opts)
  return require("opsh.http.auth").bearer(fetch, opts)
end

local CONFIGURE_OPTIONS = {max_host_connections = {"integer", min = 0}, max_total_connections = {"integer", min = 0}}

--- configure{max_host_connections = 64, max_total_connections = 0 (no limit)}
function M.configure(opts)
  opts = require("opsh.check").options("http.configure", 1, opts, CONFIGURE_OPTIONS)
  C.configure(opts)
end

--- stats() -> {running=, pooled=, sockets=}: transfers in flight, idle easy handles, watched sockets
M.stats = C.stats

--- curl_version() -> libcurl's version, and whether it speaks HTTP/2
M.curl_version = C.version

return M
