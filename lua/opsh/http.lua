-- opsh.http: the HTTP(S) client every Azure and Kubernetes call goes through.
-- Transport is libcurl on the opsh loop (opsh._http); this layer holds the policy: argument
-- checks, query and header encoding, JSON bodies, retries with backoff and Retry-After within
-- one deadline, streaming callbacks, structured errors whose URLs carry no secrets, and the
-- dry-run rule (a mutation is recorded, not sent). Clients (http.client{...}, opsh.http.client)
-- run their calls through the same request engine with their own settings, auth and throttle.
local core = require("opsh._core")
local C = require("opsh._http")
local lines = require("opsh.lines")
local redact = require("opsh.redact")
local dryrun = require("opsh.dryrun")
local log = require("opsh.log")

local M = {}

-- The defaults of every request; a client's settings, then a call's own options, win.
local DEFAULTS = {
  timeout = 300,            -- seconds for the whole call, retries included (none when streaming)
  connect_timeout = 10,     -- seconds per connection attempt
  retries = 3,              -- extra attempts after the first
  backoff = 0.5,            -- first backoff in seconds, doubled at each retry
  max_backoff = 30,
  max_retry_after = 120,    -- a longer Retry-After ends the retries instead of waiting
  max_body = 256 * 1024 * 1024,
}

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
-- sent in a dry-run unless the call says read = false
local READS = {GET = true, HEAD = true, OPTIONS = true}
local RETRY_STATUS = {[429] = true, [502] = true, [503] = true, [504] = true}
local METHODS = {GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  OPTIONS = true}
-- query keys whose values are credentials (substring match, lower case): SAS `sig`, OAuth
-- `code`/`access_token`/`client_secret`, `pass`/`password`, API keys...
local SENSITIVE = {"sig", "token", "pass", "pwd", "secret", "code", "key", "credential", "auth", "session"}
-- request headers whose values are credentials even as plain strings: these names, and any name
-- containing one of CREDENTIAL_WORDS (X-Api-Key, Ocp-Apim-Subscription-Key, x-ms-*-key, X-Vault-Token)
local CREDENTIAL_HEADERS = {authorization = true, ["proxy-authorization"] = true, cookie = true}
local CREDENTIAL_WORDS = {"auth", "token", "key", "secret", "pass", "pwd", "signature", "credential",
  "session", "cookie"}
local REQUEST_ID_HEADERS = {"x-ms-request-id", "x-request-id", "request-id", "x-amzn-requestid"}
local NO_OPTIONS = setmetatable({}, {__newindex = function() error("read-only", 2) end})

-- a plain-string credential to scrub from what the call shows; one shorter than 4 bytes is left
-- (removing every "ab" from an error would garble it, and URLs hide such values anyway)
local function add_plain(secrets, v)
  if #v >= 4 then secrets[#secrets + 1] = v end
end

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
local function redact_url(url, hidden)
  local base, query = url:match("^([^?#]*)%??([^#]*)")
  base = base:gsub("^(%a[%w+.-]*://)([^/@]*)@", function(scheme, userinfo)
    if hidden then
      local pass = userinfo:match(":(.*)$")
      if pass then
        add_plain(hidden, pass)
        local plain = unescape(pass)
        if plain ~= pass then add_plain(hidden, plain) end
      end
    end
    return scheme .. "REDACTED@"
  end)
  if query == "" then return base end
  local parts = {}
  for pair in query:gmatch("[^&]+") do
    local k, eq, v = pair:match("^([^=]*)(=?)(.*)$")
    if eq == "=" and sensitive(k) then
      parts[#parts + 1] = k .. "=REDACTED"
      if hidden then
        add_plain(hidden, v)
        local plain = unescape(v)
        if plain ~= v then add_plain(hidden, plain) end
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
  return redact_url(url)
end

-- ---- argument handling ----

-- a usage error naming the argument: {kind = "usage", message = "bad argument #2 to 'get' (...)"}
local function usage(where, msg)
  error(core.error("usage", string.format("bad argument #%d to '%s' (%s)", where.arg, where.name, msg)), 0)
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
    if core.is_secret(v) then secrets[#secrets + 1] = v elseif hidden then add_plain(secrets, v) end
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

-- ---- options ----

local NUMERIC_OPTIONS = {"timeout", "connect_timeout", "retries", "backoff", "max_backoff",
  "max_retry_after", "max_body", "idle_timeout", "low_speed_limit", "low_speed_time"}
local PEM_OPTIONS = {"ca", "cert"}
-- options a client may hold for all its calls (a call's own win), and those only a call has
local SHARED_OPTIONS = {"query", "headers", "timeout", "connect_timeout", "idle_timeout", "low_speed_limit",
  "low_speed_time", "ca", "cert", "key", "insecure", "proxy", "follow", "retries", "retry_unsafe", "backoff",
  "max_backoff", "max_retry_after", "max_body", "compressed", "missing_ok", "raise_for_status", "secret_fields"}
local CALL_ONLY = {"url", "method", "body", "json", "body_file", "offset", "length", "body_source", "on_data",
  "on_line", "read", "dry_run"}
local CLIENT_ONLY = {"base_url", "auth", "auth_header", "throttle"}
local OPTION_LIST, CLIENT_OPTION_LIST = {}, {}
for _, n in ipairs(CALL_ONLY) do OPTION_LIST[#OPTION_LIST + 1] = n end
for _, n in ipairs(SHARED_OPTIONS) do
  OPTION_LIST[#OPTION_LIST + 1] = n
  CLIENT_OPTION_LIST[#CLIENT_OPTION_LIST + 1] = n
end
for _, n in ipairs(CLIENT_ONLY) do CLIENT_OPTION_LIST[#CLIENT_OPTION_LIST + 1] = n end
local OPTIONS, CLIENT_OPTIONS = {}, {}
for _, name in ipairs(OPTION_LIST) do OPTIONS[name] = true end
for _, name in ipairs(CLIENT_OPTION_LIST) do CLIENT_OPTIONS[name] = true end

local function check_number(fname, opts, name)
  local v = opts[name]
  if v ~= nil and v ~= false and (type(v) ~= "number" or v < 0) then
    usage(fname, name .. " must be a non-negative number")
  end
end

local function check_options(opts, fname, known, list)
  for k in pairs(opts) do
    if not known[k] then
      local near = type(k) == "string" and require("opsh.script").nearest(k, list)
      usage(fname, string.format("unknown option '%s'%s", tostring(k), near and ("; did you mean '" .. near .. "'?") or ""))
    end
  end
end

-- the values of the options a client and a call share
local function check_values(opts, fname)
  for i = 1, #NUMERIC_OPTIONS do
    local n = NUMERIC_OPTIONS[i]
    if opts[n] ~= nil then check_number(fname, opts, n) end
  end
  if opts.low_speed_limit ~= nil and math.type(opts.low_speed_limit) ~= "integer" then
    usage(fname, "low_speed_limit must be a whole number of bytes per second")
  end
  if opts.low_speed_time ~= nil and (math.type(opts.low_speed_time) ~= "integer" or opts.low_speed_time < 1) then
    usage(fname, "low_speed_time must be a whole number of seconds, at least 1")
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then usage(fname, "headers must be a table") end
  if opts.query ~= nil and type(opts.query) ~= "table" then usage(fname, "query must be a table") end
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
  local sf = opts.secret_fields
  if sf ~= nil then
    if type(sf) ~= "table" or #sf == 0 then usage(fname, "secret_fields must be a list of member names") end
    for i = 1, #sf do
      if type(sf[i]) ~= "string" or sf[i] == "" then usage(fname, "secret_fields must be a list of member names") end
    end
  end
end

local function credential_header(name)
  local n = name:lower()
  if CREDENTIAL_HEADERS[n] then return true end
  for i = 1, #CREDENTIAL_WORDS do
    if n:find(CREDENTIAL_WORDS[i], 1, true) then return true end
  end
  return false
end

-- the plain-string value of a credential header -> secrets: the value, the credentials after an
-- auth scheme ("Bearer <token>"), each cookie's value
local function add_credential(secrets, v)
  add_plain(secrets, v)
  local cred = v:match("^[%w!#$%%&'*+.^_`|~-]+ +(%S.*)$")
  if cred then add_plain(secrets, cred) end
  for value in v:gmatch("=%s*([^;,]+)") do add_plain(secrets, (value:gsub("%s+$", ""))) end
end

-- a headers table -> the flat list {n1, v1, ...} (sorted by name); credentials go to `secrets`
local function flatten_headers(t, fname, secrets)
  local headers = {}
  for _, name in ipairs(sorted_keys(t)) do
    if type(name) ~= "string" then usage(fname, "header names must be strings") end
    local v = scalar(t[name], "header '" .. name .. "'", fname)
    if core.is_secret(v) then
      secrets[#secrets + 1] = v
    elseif credential_header(name) then
      add_credential(secrets, v)
    end
    headers[#headers + 1] = name
    headers[#headers + 1] = v
  end
  return headers
end

local function append(list, more)
  for i = 1, #more do list[#list + 1] = more[i] end
end

-- The settings a call runs with: `d` the scalar options (DEFAULTS overlaid), and for a client its
-- headers and query (flattened once, with the credentials they carry), base URL, auth, throttle
-- (opsh.http.client makes them).
local PLAIN = {d = DEFAULTS}

local function check_url(url, where, what)
  if type(url) ~= "string" then usage(where, string.format("%s must be a string, got %s", what, type(url))) end
  if not url:find("^[hH][tT][tT][pP][sS]?://.") then
    usage(where, string.format("%s '%s' is not http:// or https://", what, redact_url(url)))
  end
end

--- (internal, opsh.http.client) what a client's settings are made with
M._internal = {
  PLAIN = PLAIN, SHARED_OPTIONS = SHARED_OPTIONS, CLIENT_OPTIONS = CLIENT_OPTIONS,
  CLIENT_OPTION_LIST = CLIENT_OPTION_LIST, usage = usage, check_url = check_url, check_options = check_options,
  check_values = check_values, flatten_headers = flatten_headers, encode_query = encode_query,
  has_header = has_header, redact_url = redact_url,
}


-- ---- the request ----

-- options (url and method given apart: get() and friends pass the caller's table as it is) and
-- the settings -> the C spec and the request's policy
local function prepare(opts, fname, url_arg, url, method, cfg)
  local d = cfg.d
  if opts ~= NO_OPTIONS then
    check_options(opts, fname, OPTIONS, OPTION_LIST)
    check_values(opts, fname)
  end
  if url == nil then usage(url_arg, "url is required") end
  check_url(url, url_arg, "url")
  method = method or "GET"
  if not METHODS[method] then
    if type(method) ~= "string" or not METHODS[method:upper()] then
      usage(fname, "method must be one of GET HEAD POST PUT PATCH DELETE OPTIONS")
    end
    method = method:upper()
  end
  local streaming = opts.on_data ~= nil or opts.on_line ~= nil
  if opts.on_data ~= nil and opts.on_line ~= nil then usage(fname, "give on_data or on_line, not both") end
  if streaming and type(opts.on_data or opts.on_line) ~= "function" then
    usage(fname, "on_data/on_line must be a function")
  end
  local source = opts.body_source
  local nbodies = (opts.body ~= nil and 1 or 0) + (opts.json ~= nil and 1 or 0) + (opts.body_file ~= nil and 1 or 0)
    + (source ~= nil and 1 or 0)
  if nbodies > 1 then usage(fname, "give one of body, json, body_file, body_source") end
  if opts.body ~= nil and type(opts.body) ~= "string" and not core.is_secret(opts.body) then
    usage(fname, "body must be a string or opsh.secret")
  end
  if opts.body_file ~= nil and type(opts.body_file) ~= "string" then usage(fname, "body_file must be a path") end
  if source ~= nil then
    if type(source) ~= "function" then usage(fname, "body_source must be a function() -> chunk | nil") end
    if opts.retries ~= nil and opts.retries ~= 0 then
      usage(fname, "body_source cannot be sent twice (a generator cannot be replayed): retries must be 0")
    end
  end
  if opts.offset ~= nil or opts.length ~= nil then
    for _, name in ipairs({"offset", "length"}) do
      local v = opts[name]
      if v ~= nil and (math.type(v) ~= "integer" or v < 0) then
        usage(fname, name .. " must be a whole number of bytes")
      end
    end
    if opts.offset ~= nil and opts.body_file == nil then usage(fname, "offset needs body_file") end
    if opts.length ~= nil and opts.body_file == nil and source == nil then
      usage(fname, "length needs body_file or body_source")
    end
  end
  if opts.read ~= nil and type(opts.read) ~= "boolean" then usage(fname, "read must be a boolean") end
  if opts.dry_run ~= nil and opts.dry_run ~= "server" then
    usage(fname, 'dry_run must be "server" (the request carries the server\'s own dry-run)')
  end
  local secret_fields = opts.secret_fields or d.secret_fields
  if secret_fields and streaming then usage(fname, "secret_fields needs a whole response, not on_data/on_line") end

  -- every credential the call carries, to be scrubbed from what it shows: opsh.secret values,
  -- credential headers and query values, the URL's (and proxy's) password
  local secrets = {}
  local headers
  if opts.headers ~= nil then headers = flatten_headers(opts.headers, fname, secrets) end
  local client_headers = cfg.headers
  if client_headers then
    if headers == nil then
      headers = {}
      append(headers, client_headers)
    else
      local given = {}
      for i = 1, #headers, 2 do given[headers[i]:lower()] = true end
      for i = 1, #client_headers, 2 do
        if not given[client_headers[i]:lower()] then
          headers[#headers + 1] = client_headers[i]
          headers[#headers + 1] = client_headers[i + 1]
        end
      end
    end
    append(secrets, cfg.header_secrets)
  end
  local body = opts.body
  if core.is_secret(body) then secrets[#secrets + 1] = body end
  local wipe
  if opts.json ~= nil then
    -- the body carries the real bytes of the secrets in the table; everything shown has them redacted
    local n
    body, n = require("opsh.json").encode(opts.json, {reveal_secrets = true})
    if n > 0 then
      redact.collect(opts.json, secrets)
      wipe = body
    end
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
  local query, shown_query, query_table = nil, nil, opts.query
  if cfg.query then
    if query_table ~= nil then
      local merged = {}
      for k, v in pairs(cfg.query) do merged[k] = v end
      for k, v in pairs(query_table) do merged[k] = v end
      query_table = merged
      query, shown_query = encode_query(merged, fname, secrets)
    else
      query_table = cfg.query
      query, shown_query = cfg.query_flat, cfg.query_shown
      append(secrets, cfg.query_secrets)
    end
  elseif query_table ~= nil then
    query, shown_query = encode_query(query_table, fname, secrets)
  end
  local shown = url:find("[?@#]") and redact_url(url, secrets) or url
  if shown_query and shown_query ~= "" then
    shown = shown .. (shown:find("?", 1, true) and "&" or "?") .. shown_query
  end
  local key = opts.key or d.key
  if core.is_secret(key) then secrets[#secrets + 1] = key end
  local proxy = opts.proxy or d.proxy
  if proxy and proxy:find("@", 1, true) then redact_url(proxy, secrets) end

  local timeout = opts.timeout
  if timeout == nil and not streaming and opts.body_file == nil and source == nil then timeout = d.timeout end
  -- the call's option, else the settings' (`or` where false means nothing else)
  local max_body = opts.max_body or d.max_body
  local idle = opts.idle_timeout
  if idle == nil then idle = d.idle_timeout end
  local insecure, follow, compressed = opts.insecure, opts.follow, opts.compressed
  if insecure == nil then insecure = d.insecure end
  if follow == nil then follow = d.follow end
  if compressed == nil then compressed = d.compressed end
  local spec = {
    method = method, url = url, query = query, headers = headers, body = body, body_file = opts.body_file,
    ca = opts.ca or d.ca, cert = opts.cert or d.cert, key = key,
    insecure = insecure == true, proxy = proxy, follow = follow == true,
    max_body = max_body and math.floor(max_body) or 0,
    compressed = not streaming and compressed ~= false,
    connect_timeout_ms = math.ceil((opts.connect_timeout or d.connect_timeout) * 1000),
    low_speed_limit = opts.low_speed_limit or d.low_speed_limit,
    secret_fields = secret_fields,
  }
  if idle then spec.idle_timeout_ms = math.max(1, math.ceil(idle * 1000)) end
  if spec.low_speed_limit then spec.low_speed_time = opts.low_speed_time or d.low_speed_time end
  if source then spec.body_source = true end
  if opts.offset or opts.length then spec.offset, spec.length = opts.offset, opts.length end
  local is_read = opts.read
  if is_read == nil then is_read = READS[method] == true end
  local raise_for_status, retry_unsafe, missing_ok = opts.raise_for_status, opts.retry_unsafe, opts.missing_ok
  if raise_for_status == nil then raise_for_status = d.raise_for_status end
  if retry_unsafe == nil then retry_unsafe = d.retry_unsafe end
  if missing_ok == nil then missing_ok = d.missing_ok end
  local req = {
    method = method, shown = shown, secrets = secrets, streaming = streaming, where = fname,
    timed = timeout ~= nil and timeout ~= false, timeout = timeout,
    retries = source and 0 or math.floor(opts.retries or d.retries),
    backoff = opts.backoff or d.backoff, max_backoff = opts.max_backoff or d.max_backoff,
    max_retry_after = opts.max_retry_after or d.max_retry_after,
    retry_unsafe = retry_unsafe == true, raise_for_status = raise_for_status,
    missing_ok = missing_ok == true, max_body = max_body or math.huge,
    read = is_read, mutation = not is_read and opts.dry_run ~= "server",
    url = url, query = query_table, throttle = cfg.throttle,
  }
  if source then req.source, req.length = source, opts.length end
  if wipe then req.wipe = wipe end
  if secret_fields then req.secret_fields = secret_fields end
  if cfg.auth and not (headers and has_header(headers, cfg.auth_lower)) then
    -- an Authorization header the call gives itself wins over the client's auth
    req.auth, req.auth_header = cfg.auth_state, cfg.auth_header
    if not headers then
      headers = {}
      spec.headers = headers
    end
  end
  if opts.on_line then
    req.deliver, req.flush = lines.splitter(opts.on_line)
  else
    req.deliver = opts.on_data
  end
  return spec, req
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

local function request(opts, where, url_arg, url, method, cfg)
  local spec, req = prepare(opts, where, url_arg, url, method, cfg)
  req.t0 = core.hrtime()
  if req.mutation and dryrun.active() then return not_sent(req, spec, opts) end
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

--- (internal, opsh.http.client) the request engine with a client's settings
M._request = request
M._no_options = NO_OPTIONS

--- request{method, url, query, headers, body | json | body_file | body_source, ...} -> response
-- (see docs/http.md for every option)
local REQUEST_ARG = {name = "request", arg = 1}

function M.request(opts)
  if type(opts) ~= "table" then usage(REQUEST_ARG, "table expected, got " .. type(opts)) end
  return request(opts, REQUEST_ARG, REQUEST_ARG, opts.url, opts.method, PLAIN)
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
