-- opsh.http.auth (internal): a client's auth provider, called per request for the value of its
-- auth header, and called again with ctx.refresh after a 401 — once however many requests met
-- the 401 together: the first starts the refresh, the others wait for it and use its value.
-- Also bearer(fetch): a provider that caches a token until it expires.
local core = require("opsh._core")

local M = {}

--- state(provider) -> the refresh state the clients made from one client share
function M.state(provider)
  return {provider = provider, gen = 0, flight = nil, value = nil}
end

-- wait until the flight f has ended (it wakes its waiters)
local function join(f)
  f.waiters[#f.waiters + 1] = core.current()
  repeat core.suspend() until f.done
end

local function land(st, f, ok, value, err)
  if f.done then return end
  f.done, f.ok, f.value, f.err = true, ok, value, err
  if st.flight == f then st.flight = nil end
  if ok then
    st.gen = st.gen + 1
    st.value = value
  end
  for _, w in ipairs(f.waiters) do core.wake(w) end
end

--- get(st, ctx) -> the header value for a request, the refresh generation it belongs to. While a
-- refresh is in flight the request waits for it and takes its value.
function M.get(st, ctx)
  while st.flight do
    local f = st.flight
    join(f)
    if f.ok then return f.value, st.gen end
    if f.err ~= nil then error(f.err, 0) end
    -- the task refreshing was cancelled: the provider is asked afresh
  end
  local gen = st.gen
  return st.provider(ctx), gen
end

--- refresh(st, gen, ctx) -> a new value after a 401 met by a request whose value was of
-- generation gen: the provider is called with ctx.refresh unless a refresh since gen (or one in
-- flight) already gave one. An error of the provider is raised in every request waiting for it.
function M.refresh(st, gen, ctx)
  while true do
    local f = st.flight
    if f then
      join(f)
      if f.ok then return f.value end
      if f.err ~= nil then error(f.err, 0) end
    elseif st.gen ~= gen then
      return st.value
    else
      f = {waiters = {}}
      st.flight = f
      -- should this task be cancelled inside the provider, its waiters go on without it
      local _ <close> = setmetatable({}, {__close = function() land(st, f, false) end})
      local ok, v = pcall(st.provider, ctx)
      if not ok then
        land(st, f, false, nil, v)
        error(v, 0)
      end
      land(st, f, true, v)
      return v
    end
  end
end

local BEARER_OPTIONS = {margin = {"number", min = 0}}

--- bearer(fetch [, {margin = 300}]) -> an auth provider: "Bearer <token>" (an opsh.secret) from
-- fetch(ctx) -> token (string or opsh.secret), expires_at (epoch seconds, optional). The token is
-- kept until margin seconds before expires_at (without one: until a 401); concurrent requests
-- share one fetch; a refresh after a 401 fetches again.
function M.bearer(fetch, opts)
  local check = require("opsh.check")
  if type(fetch) ~= "function" then
    check.fail("http.bearer", 1, "function(ctx) -> token, expires_at expected, got " .. check.typename(fetch))
  end
  local margin = check.options("http.bearer", 2, opts, BEARER_OPTIONS).margin or 300
  local C = require("opsh._http")
  local cached, expires, flight
  local function fetch_once(ctx)
    if flight then
      local f = flight
      join(f)
      if f.err ~= nil then error(f.err, 0) end
      if cached then return cached end
    end
    local f = {waiters = {}}
    flight = f
    local function finish(err)
      f.done, f.err = true, err
      if flight == f then flight = nil end
      for _, w in ipairs(f.waiters) do core.wake(w) end
    end
    local _ <close> = setmetatable({}, {__close = function() if not f.done then finish() end end})
    local ok, token, expires_at = pcall(fetch, ctx)
    if ok and type(token) ~= "string" and not core.is_secret(token) then
      ok, token = false, core.error("usage", "bearer: fetch must return a token (string or opsh.secret), got "
        .. type(token))
    end
    if ok and expires_at ~= nil and type(expires_at) ~= "number" then
      ok, token = false, core.error("usage", "bearer: expires_at must be a number (epoch seconds)")
    end
    if not ok then
      finish(token)
      error(token, 0)
    end
    cached, expires = C.concat_secret("Bearer ", token), expires_at
    finish()
    return cached
  end
  return function(ctx)
    if ctx.refresh then
      cached = nil
      return fetch_once(ctx)
    end
    if cached and (not expires or os.time() < expires - margin) then return cached end
    return fetch_once(ctx)
  end
end

return M
