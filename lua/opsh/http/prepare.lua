-- opsh.http.prepare: a call's options checked and turned into what the transport gets — the C
-- spec (URL, query, headers, body, TLS, timeouts) and the request's policy (retries, dry-run rule,
-- streaming, the credentials to scrub from everything shown). opsh.http runs the attempts.
local core = require("opsh._core")
local lines = require("opsh.lines")
local redact = require("opsh.redact")
local U = require("opsh.http.url")
local escape, sensitive, redact_url, add_plain = U.escape, U.sensitive, U.redact, U.add_plain

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
M.DEFAULTS = DEFAULTS

-- sent in a dry-run unless the call says read = false
local READS = {GET = true, HEAD = true, OPTIONS = true}
local METHODS = {GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  OPTIONS = true}
-- request headers whose values are credentials even as plain strings: these names, and any name
-- containing one of CREDENTIAL_WORDS (X-Api-Key, Ocp-Apim-Subscription-Key, x-ms-*-key, X-Vault-Token)
local CREDENTIAL_HEADERS = {authorization = true, ["proxy-authorization"] = true, cookie = true}
local CREDENTIAL_WORDS = {"auth", "token", "key", "secret", "pass", "pwd", "signature", "credential",
  "session", "cookie"}
local NO_OPTIONS = setmetatable({}, {__newindex = function() error("read-only", 2) end})
M.NO_OPTIONS = NO_OPTIONS

-- ---- argument handling ----

-- a usage error naming the argument: {kind = "usage", message = "bad argument #2 to 'get' (...)"}
local function usage(where, msg)
  require("opsh.check").fail(where.name, where.arg, msg)
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
      require("opsh.check").unknown(fname.name, fname.arg, k, list)
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

M.prepare = prepare
M.usage = usage
M.has_header = has_header
M.add_credential = add_credential
M.PLAIN = PLAIN
M.internal = {
  PLAIN = PLAIN, SHARED_OPTIONS = SHARED_OPTIONS, CLIENT_OPTIONS = CLIENT_OPTIONS,
  CLIENT_OPTION_LIST = CLIENT_OPTION_LIST, usage = usage, check_url = check_url, check_options = check_options,
  check_values = check_values, flatten_headers = flatten_headers, encode_query = encode_query,
  has_header = has_header, redact_url = redact_url,
}

return M
