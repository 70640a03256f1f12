-- opsh.http: the HTTP(S) client every Azure and Kubernetes call goes through.
-- Transport is libcurl on the opsh loop (opsh._http); this layer holds the policy: argument
-- checks, query and header encoding, JSON bodies, retries with backoff and Retry-After within
-- one deadline, streaming callbacks, structured errors whose URLs carry no secrets, and the
-- dry-run rule (a mutation is recorded, not sent).
local core = require("opsh._core")
local C = require("opsh._http")
local lines = require("opsh.lines")
local redact = require("opsh.redact")
local dryrun = require("opsh.dryrun")

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

local function raise_transport(req, err, attempts)
  local elapsed = core.hrtime() - req.t0
  local msg = string.format("%s %s: %s", req.method, req.shown, transport_detail(err.message))
  if err.kind ~= "io" then msg = msg .. " " .. attempts_text(attempts, elapsed) end
  error(redact.error(core.error(err.kind, msg, {
    method = req.method, url = req.shown, status = err.status, curl_code = err.curl_code,
    attempts = attempts, elapsed = elapsed, path = err.path,
  }), req.secrets), 0)
end

local function clip(s, max)
  s = s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

local function str(v) return type(v) == "string" and v ~= "" and v or nil end

-- {"error": {"code", "message"}} (Azure), a Kubernetes Status, OAuth's {"error", "error_description"},
-- RFC 9457 problem details -> summary, code
local function json_summary(body)
  local ok, doc = pcall(require("opsh.json").decode, body)
  if not ok or type(doc) ~= "table" then return nil end
  local e = doc.error
  if type(e) == "table" then
    local code, msg = str(e.code), str(e.message)
    if code and msg then return code .. ": " .. msg, code end
    return msg or code, code
  end
  if str(e) then
    local desc = str(doc.error_description)
    return desc and (e .. ": " .. desc) or e, e
  end
  if str(doc.message) then return doc.message, str(doc.reason) or str(doc.code) end
  local title, detail = str(doc.title), str(doc.detail)
  if detail then return title and (title .. ": " .. detail) or detail end
  return title
end

local ENTITIES = {amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = " ", ["#39"] = "'"}

local function ci(word)
  return (word:gsub("%a", function(c) return "[" .. c:lower() .. c:upper() .. "]" end))
end
local SCRIPT_BLOCK = "<" .. ci("script") .. ".-</" .. ci("script") .. "%s*>"
local STYLE_BLOCK = "<" .. ci("style") .. ".-</" .. ci("style") .. "%s*>"

-- the first line of an HTML page's text that says more than the status line does
local function html_summary(body, status, reason)
  local text = body:gsub("<!%-%-.-%-%->", ""):gsub(SCRIPT_BLOCK, "\n"):gsub(STYLE_BLOCK, "\n")
    :gsub("<[^>]*>", "\n"):gsub("&(#?%w+);", function(e) return ENTITIES[e] end)
  local same = {[tostring(status)] = true, [reason:lower()] = true,
    [(status .. " " .. reason):lower()] = true, ["error " .. status] = true, ["http error " .. status] = true}
  for line in text:gmatch("[^\r\n]+") do
    line = clip(line, 1000)
    local l = line:lower():gsub("[%s%-:]+", " ")
    -- skip a line that only repeats the status, and a server signature such as nginx/1.22.1
    if line ~= "" and not same[l] and not line:find("^[%w%-_.]+/%d[%w.%-]*$") then return line end
  end
end

-- a response and its body (scrubbed) -> a one-line summary of the body (or nil), the error's code
local function summarise(res, body)
  if body == "" then return nil end
  if #body > 65536 then body = body:sub(1, 65536) end
  local ctype = (res.headers["content-type"] or ""):lower()
  local first = body:match("^%s*(.)")
  if ctype:find("json", 1, true) or first == "{" then
    local text, code = json_summary(body)
    if text then return clip(text, 300), code end
  end
  if ctype:find("html", 1, true) or first == "<" then
    local text = html_summary(body, res.status, res.reason or "")
    return text and clip(text, 300)
  end
  for line in body:gmatch("[^\r\n]+") do
    if line:find("%S") then return clip(line, 300) end
  end
end

local function raise_status(req, res, attempts)
  local elapsed = core.hrtime() - req.t0
  local reason = res.reason ~= "" and (" " .. res.reason) or ""
  local msg = string.format("%s %s: HTTP %d%s", req.method, req.shown, res.status, reason)
  -- scrubbed before it is cut to a summary, which could leave part of a secret
  local body = redact.text(res.body or "", req.secrets)
  local summary, code = summarise(res, body)
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
local OPTION_LIST = {"url", "method", "query", "headers", "body", "json", "body_file", "timeout",
  "connect_timeout", "ca", "cert", "key", "insecure", "proxy", "follow", "retries", "retry_unsafe",
  "backoff", "max_backoff", "max_retry_after", "on_data", "on_line", "max_body", "compressed",
  "missing_ok", "raise_for_status", "read", "dry_run"}
local OPTIONS = {}
for _, name in ipairs(OPTION_LIST) do OPTIONS[name] = true end

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

local function check_options(opts, fname)
  for k in pairs(opts) do
    if not OPTIONS[k] then
      local near = type(k) == "string" and require("opsh.script").nearest(k, OPTION_LIST)
      usage(fname, string.format("unknown option '%s'%s", tostring(k), near and ("; did you mean '" .. near .. "'?") or ""))
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

-- options (url and method given apart: get() and friends pass the caller's table as it is)
-- -> the C spec and the request's policy
local function prepare(opts, fname, url_arg, url, method)
  if opts ~= NO_OPTIONS then check_options(opts, fname) end
  if url == nil then usage(url_arg, "url is required") end
  if type(url) ~= "string" then usage(url_arg, "url must be a string, got " .. type(url)) end
  if not url:find("^[hH][tT][tT][pP][sS]?://.") then
    usage(url_arg, string.format("url '%s' is not http:// or https://", redact_url(url)))
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
  if opts.read ~= nil and type(opts.read) ~= "boolean" then usage(fname, "read must be a boolean") end
  if opts.dry_run ~= nil and opts.dry_run ~= "server" then
    usage(fname, 'dry_run must be "server" (the request carries the server\'s own dry-run)')
  end

  -- every credential the call carries, to be scrubbed from what it shows: opsh.secret values,
  -- credential headers and query values, the URL's (and proxy's) password
  local secrets = {}
  local headers
  if opts.headers ~= nil then
    if type(opts.headers) ~= "table" then usage(fname, "headers must be a table") end
    headers = {}
    for _, name in ipairs(sorted_keys(opts.headers)) do
      if type(name) ~= "string" then usage(fname, "header names must be strings") end
      local v = scalar(opts.headers[name], "header '" .. name .. "'", fname)
      if core.is_secret(v) then
        secrets[#secrets + 1] = v
      elseif credential_header(name) then
        add_credential(secrets, v)
      end
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
  local shown = url:find("[?@#]") and redact_url(url, secrets) or url
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
  if opts.key ~= nil then
    if type(opts.key) ~= "string" and not core.is_secret(opts.key) then
      usage(fname, "key must be PEM text, an opsh.secret or a file path")
    end
    if core.is_secret(opts.key) then secrets[#secrets + 1] = opts.key end
  end
  if opts.proxy ~= nil then
    if type(opts.proxy) ~= "string" then usage(fname, "proxy must be a URL") end
    if opts.proxy:find("@", 1, true) then redact_url(opts.proxy, secrets) end
  end

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
  local is_read = opts.read
  if is_read == nil then is_read = READS[method] == true end
  local req = {
    method = method, shown = shown, secrets = secrets, streaming = streaming,
    timed = timeout ~= nil and timeout ~= false, timeout = timeout,
    retries = math.floor(opt(opts, "retries")),
    backoff = opt(opts, "backoff"), max_backoff = opt(opts, "max_backoff"),
    max_retry_after = opt(opts, "max_retry_after"),
    retry_unsafe = opts.retry_unsafe == true, raise_for_status = opts.raise_for_status,
    missing_ok = opts.missing_ok == true, max_body = max_body or math.huge,
    mutation = not is_read and opts.dry_run ~= "server",
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
    log.debug(redact.text(string.format("http retry: %s %s: %s; attempt %d of %d failed, next in %.2f s",
      req.method, req.shown, transport_detail(why), attempt, req.retries + 1, wait), req.secrets))
  end
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
  if opts.json ~= nil then
    request.json = opts.json
  elseif spec.body ~= nil then
    request.body = spec.body
  end
  if spec.body_file then
    local path = spec.body_file
    local st = require("opsh.fs").stat(path)
    local why = not st and "No such file or directory" or st.type == "dir" and "Is a directory" or nil
    if why then
      raise_transport(req, {kind = "io", message = string.format("body_file %s: %s", path, why), path = path}, 1)
    end
    request.body_file = {path = path, size = st.size}
  end
  local path = req.shown:match("^[^?#]*")
  local target = path:match("://[^/]*/.-([^/]+)/*$") or path:match("://([^/]+)")
  local record = dryrun.record{kind = "http", action = req.method .. " " .. req.shown, target = target,
    request = request, secrets = req.secrets}
  return setmetatable({dry_run = true, record = record, method = req.method, url = req.shown,
    headers = setmetatable({}, header_meta)}, Response)
end

local function request(opts, where, url_arg, url, method)
  local spec, req = prepare(opts, where, url_arg, url, method)
  req.t0 = core.hrtime()
  if req.mutation and dryrun.active() then return not_sent(req, spec, opts) end
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
-- follow, missing_ok, raise_for_status, read, dry_run} -> {status, reason, headers, body, version, json()}
local REQUEST_ARG = {name = "request", arg = 1}

function M.request(opts)
  if type(opts) ~= "table" then usage(REQUEST_ARG, "table expected, got " .. type(opts)) end
  return request(opts, REQUEST_ARG, REQUEST_ARG, opts.url, opts.method)
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
    return request(opts, opts_arg, url_arg, url, method)
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
