-- opsh.http.client: http.client{...}, one object for everything the calls to one service share —
-- base URL, default headers and query, TLS material, retry and timeout policy, an auth provider,
-- throttles. A client is immutable; client:with{...} makes another from it. Its calls go through
-- opsh.http's request engine, so dry-run, secret scrubbing, retries and errors are those of
-- plain calls.
local core = require("opsh._core")
local http = require("opsh.http")

local I = http._internal
local usage, check_url, check_values = I.usage, I.check_url, I.check_values
local flatten_headers, encode_query, has_header = I.flatten_headers, I.encode_query, I.has_header
local SHARED_OPTIONS, CLIENT_OPTIONS, CLIENT_OPTION_LIST = I.SHARED_OPTIONS, I.CLIENT_OPTIONS, I.CLIENT_OPTION_LIST
local PLAIN = I.PLAIN

local M = {}

local function check_options(opts, where)
  I.check_options(opts, where, CLIENT_OPTIONS, CLIENT_OPTION_LIST)
end

local function append(list, more)
  for i = 1, #more do list[#list + 1] = more[i] end
end

-- ---- settings ----

-- scheme://host:port in lower case, with the scheme's default port
local function origin(url)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  scheme = scheme:lower()
  authority = authority:gsub("^.*@", ""):lower()
  if not authority:find(":%d+$") then authority = authority .. (scheme == "https" and ":443" or ":80") end
  return scheme .. "://" .. authority
end

-- a throttle option -> the list of {obj, before, after} to call around each attempt
local function throttles(t, where)
  if type(t) == "function" then return {{obj = t, after = function(fn, headers, info) return fn(headers, info) end}} end
  if type(t) ~= "table" then usage(where, "throttle must be a function, an object with before/after, or a list of them") end
  if t.before ~= nil or t.after ~= nil then
    if (t.before ~= nil and type(t.before) ~= "function") or (t.after ~= nil and type(t.after) ~= "function") then
      usage(where, "throttle's before and after must be functions")
    end
    return {{obj = t, before = t.before, after = t.after}}
  end
  local list = {}
  for i = 1, #t do append(list, throttles(t[i], where)) end
  if #list == 0 then usage(where, "throttle must be a function, an object with before/after, or a list of them") end
  return list
end

-- the settings (opsh.http's) of a client made of parent's (a client's settings, or nil) and opts
local function config(opts, where, parent)
  parent = parent or PLAIN
  check_options(opts, where)
  check_values(opts, where)
  local cfg = {d = {}}
  for k, v in pairs(parent.d) do cfg.d[k] = v end
  for _, name in ipairs(SHARED_OPTIONS) do
    if name ~= "headers" and name ~= "query" and opts[name] ~= nil then cfg.d[name] = opts[name] end
  end
  -- base URL: no query, fragment or credentials (those belong in query, headers or auth)
  local base = opts.base_url
  if base ~= nil then
    check_url(base, where, "base_url")
    if base:find("[?#]") then usage(where, "base_url cannot have a query or fragment: give query = {...}") end
    if base:match("^%a[%w+.-]*://[^/]*@") then
      usage(where, "base_url cannot carry credentials: give headers or auth")
    end
    cfg.base = base:gsub("/+$", "")
    cfg.origin = origin(base)
  else
    cfg.base, cfg.origin = parent.base, parent.origin
  end
  -- headers: the parent's, then these (a name given again replaces the parent's value)
  local htable = {}
  if parent.header_table then for k, v in pairs(parent.header_table) do htable[k] = v end end
  if opts.headers then
    for k, v in pairs(opts.headers) do
      if type(k) ~= "string" then usage(where, "header names must be strings") end
      for old in pairs(htable) do
        if old:lower() == k:lower() then htable[old] = nil end
      end
      htable[k] = v
    end
  end
  if next(htable) then
    cfg.header_table = htable
    cfg.header_secrets = {}
    cfg.headers = flatten_headers(htable, where, cfg.header_secrets)
  end
  local qtable = {}
  if parent.query then for k, v in pairs(parent.query) do qtable[k] = v end end
  if opts.query then for k, v in pairs(opts.query) do qtable[k] = v end end
  if next(qtable) then
    cfg.query = qtable
    cfg.query_secrets = {}
    cfg.query_flat, cfg.query_shown = encode_query(qtable, where, cfg.query_secrets)
  end
  -- auth: a provider of the header value, its refresh shared by the clients made from this one
  local auth = opts.auth
  if auth == nil then
    cfg.auth, cfg.auth_state = parent.auth, parent.auth_state
  elseif auth ~= false then
    if type(auth) ~= "function" then usage(where, "auth must be a function(ctx) -> header value") end
    cfg.auth, cfg.auth_state = auth, require("opsh.http.auth").state(auth)
  end
  local auth_header = opts.auth_header or parent.auth_header or "Authorization"
  if type(auth_header) ~= "string" or not auth_header:find("^[%w!#$%%&'*+.^_`|~-]+$") then
    usage(where, "auth_header must be a header name")
  end
  cfg.auth_header, cfg.auth_lower = auth_header, auth_header:lower()
  if cfg.auth and cfg.headers and has_header(cfg.headers, cfg.auth_lower) then
    usage(where, string.format("give the %s header or auth, not both", auth_header))
  end
  if opts.throttle == nil then
    cfg.throttle = parent.throttle
  elseif opts.throttle ~= false then
    cfg.throttle = throttles(opts.throttle, where)
  end
  return cfg
end

-- ---- the object ----

local Client = {}
local meta = {
  __index = Client,
  __newindex = function()
    error(core.error("usage", "an http client cannot be changed: make another with client:with{...}"), 2)
  end,
  __name = "opsh.http.client",
}

-- client -> its settings (opsh.http's config), out of the caller's reach
local CONFIG = setmetatable({}, {__mode = "k"})

meta.__tostring = function(c)
  local cfg = CONFIG[c]
  return "opsh.http.client (" .. (cfg and cfg.base and http.redact(cfg.base) or "no base_url") .. ")"
end

local NEW_ARG = {name = "http.client", arg = 1}
local WITH_ARG = {name = "client:with", arg = 1}

local function make(opts, where, parent)
  if type(opts) ~= "table" then usage(where, "table expected, got " .. type(opts)) end
  local c = setmetatable({}, meta)
  CONFIG[c] = config(opts, where, parent)
  return c
end

--- new(opts) -> a client (http.client{...})
function M.new(opts)
  return make(opts, NEW_ARG, nil)
end

--- client:with{...} -> a new client: this one's settings with these on top (auth = false or
-- throttle = false drop them). A client made this way shares its parent's auth refresh.
function Client:with(opts)
  local cfg = CONFIG[self]
  if not cfg then error(core.error("usage", "with: call it as client:with{...}"), 2) end
  return make(opts, WITH_ARG, cfg)
end

-- path -> the URL the call goes to: a path is appended to the base URL (one "/" between them,
-- as client-go joins a request path to a server URL with a path); an absolute URL must be on the
-- client's origin, since the client's credentials go with it
local function join(cfg, path, where)
  if type(path) ~= "string" then usage(where, "url expected, got " .. type(path)) end
  if path:find("^%a[%w+.-]*://") then
    if cfg.origin and path:find("^[hH][tT][tT][pP][sS]?://") and origin(path) ~= cfg.origin then
      usage(where, string.format("url '%s' is not on this client's origin %s (its credentials go there only)",
        http.redact(path), cfg.origin))
    end
    return path
  end
  local base = cfg.base
  if not base then usage(where, string.format("url '%s' is not absolute and the client has no base_url", path)) end
  if path == "" then return base end
  local first = path:sub(1, 1)
  if first == "/" or first == "?" then return base .. path end
  return base .. "/" .. path
end

--- client:url(path) -> the URL a call with that path goes to
function Client:url(path)
  return join(CONFIG[self], path or "", {name = "client:url", arg = 1})
end

local REQUEST_ARG = {name = "client:request", arg = 1}
local NO_OPTIONS = http._no_options

--- client:request{method, url, ...} -> response; url is a path under base_url or an absolute URL
-- on its origin; the options are http.request's, a call's own winning over the client's
function Client:request(opts)
  local cfg = CONFIG[self]
  if not cfg then error(core.error("usage", "request: call it as client:request{...}"), 2) end
  if type(opts) ~= "table" then usage(REQUEST_ARG, "table expected, got " .. type(opts)) end
  if opts.url == nil then usage(REQUEST_ARG, "url is required") end
  return http._request(opts, REQUEST_ARG, REQUEST_ARG, join(cfg, opts.url, REQUEST_ARG), opts.method, cfg)
end

local function with_method(method, fname)
  local url_arg, opts_arg = {name = "client:" .. fname, arg = 1}, {name = "client:" .. fname, arg = 2}
  return function(self, path, opts)
    local cfg = CONFIG[self]
    if not cfg then error(core.error("usage", fname .. ": call it as client:" .. fname .. "(path [, opts])"), 2) end
    if opts == nil then
      opts = NO_OPTIONS
    elseif type(opts) ~= "table" then
      usage(opts_arg, "table expected, got " .. type(opts))
    end
    return http._request(opts, opts_arg, url_arg, join(cfg, path, url_arg), method, cfg)
  end
end

--- client:get/head/delete/post/put/patch(path [, opts]) -> client:request{method=, url=path, ...}
Client.get = with_method("GET", "get")
Client.head = with_method("HEAD", "head")
Client.delete = with_method("DELETE", "delete")
Client.post = with_method("POST", "post")
Client.put = with_method("PUT", "put")
Client.patch = with_method("PATCH", "patch")

--- is_client(v) -> is v an http client?
function M.is_client(v)
  return CONFIG[v] ~= nil
end

return M
