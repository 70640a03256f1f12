-- opsh.http.client: http.client{...}, one object for everything the calls to one service share —
-- base URL, default headers and query, TLS material, retry and timeout policy, an auth provider,
-- throttles. A client is immutable; client:with{...} makes another from it. Its calls go through
-- opsh.http's request engine, so dry-run, secret scrubbing, retries and errors are those of
-- plain calls.
local core = require("opsh._core")
local http = require("opsh.http")

local M = {}

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

local function usage(where, msg)
  error(core.error("usage", string.format("bad argument #%d to '%s' (%s)", where.arg, where.name, msg)), 0)
end

local NEW_ARG = {name = "client", arg = 1}
local WITH_ARG = {name = "with", arg = 1}

local function make(opts, where, parent)
  if type(opts) ~= "table" then usage(where, "table expected, got " .. type(opts)) end
  local c = setmetatable({}, meta)
  CONFIG[c] = http._config(opts, where, parent)
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
    if cfg.origin and path:find("^[hH][tT][tT][pP][sS]?://") and http._origin(path) ~= cfg.origin then
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
  return join(CONFIG[self], path or "", {name = "url", arg = 1})
end

local REQUEST_ARG = {name = "request", arg = 1}
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
  local url_arg, opts_arg = {name = fname, arg = 1}, {name = fname, arg = 2}
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
