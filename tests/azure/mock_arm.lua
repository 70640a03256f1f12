-- A small stand-in for Entra ID and ARM on opsh.server (plain HTTP on 127.0.0.1), for the client
-- specs that need exact control of each answer (LRO sequences, errors, budgets). The ARM twin
-- (lua/opsh/twin/arm) is what the end-to-end specs use. Loaded with dofile by the specs:
--   local mock = dofile(here .. "/mock_arm.lua").start()
--   mock.route("GET", "/subscriptions/{s}/x", function(req) ... end)   mock.count("token")
local server = require("opsh.server")
local json = require("opsh.json")

local M = {}

local function form_decode(body)
  local out = {}
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function dec(s) return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    out[dec(k)] = dec(v)
  end
  return out
end
M.form_decode = form_decode

function M.start(opts)
  opts = opts or {}
  local m = {counts = {}, tokens = {}, forms = {}, ttl = opts.ttl or 3600, token_delay = 0}
  local srv = server.listen{host = "127.0.0.1", port = 0}
  m.server, m.url = srv, srv.url
  m.tenant = "tenant-1"
  function m.count(name) return m.counts[name] or 0 end
  function m.bump(name) m.counts[name] = (m.counts[name] or 0) + 1 end
  -- token endpoint: client secret "s3cret+/=&x" or any client assertion the spec accepts
  m.accept = opts.accept or function(f) return f.client_secret == "s3cret+/=&x" end
  srv:route("POST", "/{tenant}/oauth2/v2.0/token", function(req)
    m.bump("token")
    local f = form_decode(req.body)
    m.forms[#m.forms + 1] = f
    if m.token_delay > 0 then require("opsh").sleep(m.token_delay) end
    if f.grant_type ~= "client_credentials" or not m.accept(f, req) then
      return {status = 401, json = {error = "invalid_client",
        error_description = "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}}
    end
    local n = m.count("token")
    local tok = "tok-" .. n .. "-" .. (f.scope or "")
    m.tokens[tok] = true
    m.last_token = tok
    return {access_token = tok, token_type = "Bearer", expires_in = m.ttl}
  end)
  srv:route("GET", "/metadata/identity/oauth2/token", function(req)
    m.bump("imds")
    if req.headers.metadata ~= "true" then return {status = 400, json = {error = "bad_request"}} end
    local tok = "imds-" .. m.count("imds")
    m.tokens[tok] = true
    return {access_token = tok, expires_on = tostring(os.time() + m.ttl), resource = req.query.resource,
      token_type = "Bearer"}
  end)
  m.routes = {}
  function m.route(method, pattern, fn)
    srv:route(method, pattern, function(req)
      m.bump(method .. " " .. pattern)
      local tok = (req.headers.authorization or ""):match("^Bearer (.+)$")
      if not tok or not m.tokens[tok] then
        return {status = 401, headers = {["WWW-Authenticate"] = 'Bearer authorization_uri="x"'},
          json = {error = {code = "InvalidAuthenticationToken", message = "The access token is invalid."}}}
      end
      m.seen_correlation = req.headers["x-ms-correlation-request-id"]
      return fn(req)
    end)
  end
  function m.env(extra)
    local e = {name = "mock", subscription = "sub-1", tenant = m.tenant, resource_group = "rg",
      azure = {client_id = "client-1", credentials = {"client_secret"}},
      endpoints = {arm = m.url, login = m.url, imds = m.url},
      secrets = {provider = "twin"}, twin = {secrets = {["azure-client-secret"] = "s3cret+/=&x"}}}
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end
  function m.close() srv:close() end
  m.json = json
  return m
end

return M
