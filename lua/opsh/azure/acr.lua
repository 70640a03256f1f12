-- opsh.azure.acr: Azure Container Registry data plane over an opsh.http client. Entra token ->
-- ACR refresh token (POST /oauth2/exchange) -> access tokens per scope (POST /oauth2/token), cached
-- per scope and fetched again on a 401; repositories and manifests with their times (/acr/v1/,
-- paged by Link headers); the OCI /v2/ API where ACR and plain registries agree; deletes by digest
-- through opsh.dryrun. See docs/acr.md.
--   local reg = require("opsh.azure").acr()
--   for _, m in ipairs(reg:manifests("legal-api")) do print(m.digest, m.created, table.concat(m.tags, ",")) end
local core = require("opsh._core")
local http = require("opsh.http")
local dryrun = require("opsh.dryrun")
local concat = require("opsh._http").concat_secret

local M = {}

M.PAGE = 100

local Registry = {}
Registry.__index = Registry

local with_attributes

local function usage(fn, msg)
  error(core.error("usage", "bad argument to 'acr." .. fn .. "' (" .. msg .. ")"), 3)
end

local function one_line(s, max)
  s = tostring(s or ""):gsub("%s+", " ")
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

-- an ACR / OCI error body {"errors":[{code, message}]} or a token endpoint's {error, error_description}
local function error_of(res)
  local ok, doc = pcall(require("opsh.json").decode, res.body or "")
  if ok and type(doc) == "table" then
    local e = type(doc.errors) == "table" and doc.errors[1]
    if type(e) == "table" then return tostring(e.code or ""), one_line(e.message, 300) end
    if doc.error then return tostring(doc.error), one_line(doc.error_description or doc.message, 300) end
  end
  return nil, one_line(res.body, 200)
end

local function azure_error(method, url, res, hint)
  local code, message = error_of(res)
  code = code or ("HTTP" .. tostring(res.status))
  return core.error("azure", string.format("%s %s: HTTP %d: %s%s%s", method, http.redact(url), res.status, code,
    message ~= "" and (": " .. message) or "", hint or ""), {status = res.status, code = code, method = method,
    url = http.redact(url)})
end

--- new{login_server =, endpoint =, ca =, credential =} -> a registry. endpoint: the registry's URL
-- (default https://<login_server>); credential: an opsh.azure credential chain (token("acr")), or
-- false for a registry without auth (a plain OCI registry: /v2/ only).
function M.new(opts)
  if type(opts) ~= "table" then usage("new", "table expected") end
  local endpoint = opts.endpoint or (opts.login_server and ("https://" .. opts.login_server))
  if type(endpoint) ~= "string" or not endpoint:match("^https?://[^/]+") then
    usage("new", "endpoint (https://<name>.azurecr.io) or login_server is required")
  end
  endpoint = endpoint:gsub("/+$", "")
  local service = opts.service or endpoint:match("^https?://([^/]+)")
  local self = setmetatable({endpoint = endpoint, service = service, ca = opts.ca, credential = opts.credential,
    page = opts.page or M.PAGE, tokens = {}, flights = {}}, Registry)
  self.plain = http.client{base_url = endpoint, ca = opts.ca, retries = opts.retries, timeout = opts.timeout or 60,
    raise_for_status = false}
  return self
end

-- POST a token form; the answer's token member comes back as a secret
function Registry:form(path, text, secret, member)
  local body = secret and concat(text, secret) or text
  local res = self.plain:post(path, {body = body, read = true, secret_fields = {member},
    headers = {["Content-Type"] = "application/x-www-form-urlencoded"}})
  if res.status ~= 200 then
    local hint = res.status == 401 and " (the registry refused the token: wrong tenant or audience, or no role on it?)"
      or nil
    error(azure_error("POST", self.endpoint .. path, res, hint), 0)
  end
  local tok = (res:json() or {})[member]
  if not core.is_secret(tok) then
    error(core.error("azure", "POST " .. self.endpoint .. path .. ": the answer has no " .. member,
      {status = res.status}), 0)
  end
  return tok
end

local function esc(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- the ACR refresh token for this registry (the Entra token exchanged once; again when stale)
function Registry:refresh_token(stale)
  if self.refresh and self.refresh ~= stale then return self.refresh end
  local aad = self.credential:token("acr", stale and {refresh = true} or nil)
  self.refresh = self:form("/oauth2/exchange", "grant_type=access_token&service=" .. esc(self.service)
    .. "&access_token=", aad, "refresh_token")
  return self.refresh
end

--- registry:token(scope [, stale]) -> an ACR access token (secret) for the scope, cached per scope;
-- concurrent callers share one fetch
function Registry:token(scope, stale)
  local cached = self.tokens[scope]
  if cached and cached ~= stale then return cached end
  local f = self.flights[scope]
  if f then
    f.waiters[#f.waiters + 1] = core.current()
    repeat core.suspend() until f.done
    if f.err ~= nil then error(f.err, 0) end
    return self.tokens[scope]
  end
  f = {waiters = {}}
  self.flights[scope] = f
  local ok, err = pcall(function()
    local rt = self:refresh_token(stale and self.refresh or nil)
    local function access(refresh)
      return self:form("/oauth2/token", "grant_type=refresh_token&service=" .. esc(self.service) .. "&scope="
        .. esc(scope) .. "&refresh_token=", refresh, "access_token")
    end
    local tok_ok, tok = pcall(access, rt)
    if not tok_ok then
      -- the refresh token may have expired: one new exchange
      if type(tok) == "table" and tok.status == 401 then tok = access(self:refresh_token(rt)) else error(tok, 0) end
    end
    self.tokens[scope] = tok
  end)
  f.done, f.err = true, (not ok) and err or nil
  self.flights[scope] = nil
  for _, w in ipairs(f.waiters) do core.wake(w) end
  if not ok then error(err, 0) end
  return self.tokens[scope]
end

-- the client for one scope: bearer ACR access tokens, a new one after a 401
function Registry:client(scope)
  self.clients = self.clients or {}
  local c = self.clients[scope]
  if c then return c end
  local auth
  if self.credential then
    local last
    auth = function(ctx)
      last = self:token(scope, ctx.refresh and last or nil)
      return concat("Bearer ", last)
    end
  end
  c = self.plain:with{auth = auth, raise_for_status = false}
  self.clients[scope] = c
  return c
end

local function repo_scope(repo, actions) return "repository:" .. repo .. ":" .. actions end

local function check_repo(fn, repo)
  if type(repo) ~= "string" or not repo:match("^[a-z0-9]+[a-z0-9._/-]*$") then
    usage(fn, "repository name expected (lower-case: legal-api, team/app)")
  end
end

local function is_digest(ref) return type(ref) == "string" and ref:match("^[%w+._-]+:%x+$") ~= nil end

-- GET a path, raising a structured error unless 2xx (nil for a 404 with opts.missing)
function Registry:get(scope, path, opts)
  local missing = opts and opts.missing
  if missing then
    opts = {query = opts.query, headers = opts.headers}
  end
  local res = self:client(scope):get(path, opts)
  if res.status == 404 and missing then return nil end
  if res.status >= 300 then
    local hint = res.status == 401 and " (token refused)" or res.status == 403 and " (no permission for " .. scope
      .. ")" or nil
    error(azure_error("GET", self.endpoint .. path, res, hint), 0)
  end
  return res
end

-- the next page's path from a Link header (`</acr/v1/_catalog?last=x&n=2>; rel="next"`)
local function next_link(res)
  local link = res.headers["link"]
  return link and link:match('<([^>]+)>%s*;%s*rel="?next"?')
end
M.next_link = next_link

-- every page of a listing: each page's decoded JSON to `each`
function Registry:pages(scope, path, query, each)
  local res = self:get(scope, path, {query = query})
  while true do
    each(res:json() or {})
    local nxt = next_link(res)
    if not nxt then return end
    res = self:get(scope, nxt)
  end
end

--- registry:repositories([{page =}]) -> names (sorted as the registry gives them)
function Registry:repositories(opts)
  local out = {}
  self:pages("registry:catalog:*", "/acr/v1/_catalog", {n = (opts and opts.page) or self.page}, function(doc)
    for _, r in ipairs(doc.repositories or {}) do out[#out + 1] = r end
  end)
  return out
end

-- ACR's changeableAttributes, as Lua names: what an item may have done to it (a locked image has
-- delete_enabled or write_enabled false)
local ATTRIBUTES = {delete_enabled = "deleteEnabled", write_enabled = "writeEnabled", read_enabled = "readEnabled",
  list_enabled = "listEnabled"}

-- the item's changeableAttributes copied into the record (absent ones read as enabled, ACR's default)
with_attributes = function(rec, item)
  local ca = type(item.changeableAttributes) == "table" and item.changeableAttributes or {}
  for lua_name, wire in pairs(ATTRIBUTES) do rec[lua_name] = ca[wire] ~= false end
  rec.locked = not (rec.delete_enabled and rec.write_enabled)
  return rec
end

--- registry:manifests(repo [, {order = "desc"|"asc", page =}]) -> list of {digest, tags, created,
-- updated, size, architecture, os, delete_enabled, write_enabled, read_enabled, list_enabled, locked},
-- newest first (orderby=timedesc)
function Registry:manifests(repo, opts)
  check_repo("manifests", repo)
  opts = opts or {}
  local order = opts.order or "desc"
  if order ~= "desc" and order ~= "asc" then usage("manifests", "order must be desc or asc") end
  local out = {}
  self:pages(repo_scope(repo, "metadata_read"), "/acr/v1/" .. repo .. "/_manifests",
    {n = opts.page or self.page, orderby = "time" .. order}, function(doc)
      for _, m in ipairs(doc.manifests or {}) do
        out[#out + 1] = with_attributes({digest = m.digest, tags = m.tags or {}, created = m.createdTime,
          updated = m.lastUpdateTime, size = m.imageSize, architecture = m.architecture, os = m.os}, m)
      end
    end)
  return out
end

--- registry:tags(repo [, {order = "desc"|"asc", digest =, page =}]) -> list of {name, digest, created,
-- updated, signed, delete_enabled, write_enabled, read_enabled, list_enabled, locked} (/acr/v1/<repo>/_tags,
-- every page): by name, or by last update with `order`
function Registry:tags(repo, opts)
  check_repo("tags", repo)
  opts = opts or {}
  local order = opts.order
  if order ~= nil and order ~= "desc" and order ~= "asc" then usage("tags", "order must be desc or asc") end
  if opts.digest ~= nil and not is_digest(opts.digest) then
    usage("tags", "digest must be a digest (sha256:<hex>)")
  end
  local out = {}
  self:pages(repo_scope(repo, "metadata_read"), "/acr/v1/" .. repo .. "/_tags",
    {n = opts.page or self.page, orderby = order and ("time" .. order) or nil, digest = opts.digest}, function(doc)
      for _, t in ipairs(doc.tags or {}) do
        out[#out + 1] = with_attributes({name = t.name, digest = t.digest, created = t.createdTime,
          updated = t.lastUpdateTime, signed = t.signed}, t)
      end
    end)
  return out
end

--- registry:tag_names(repo) -> tag names (the OCI /v2/<repo>/tags/list, every page; any registry)
function Registry:tag_names(repo, opts)
  check_repo("tag_names", repo)
  local out = {}
  self:pages(repo_scope(repo, "pull"), "/v2/" .. repo .. "/tags/list", {n = (opts and opts.page) or self.page},
    function(doc) for _, t in ipairs(doc.tags or {}) do out[#out + 1] = t end end)
  return out
end

local ACCEPT = table.concat({"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"},
  ", ")

--- registry:manifest(repo, reference) -> the manifest (decoded), its digest, media type; nil when missing
function Registry:manifest(repo, reference)
  check_repo("manifest", repo)
  local res = self:get(repo_scope(repo, "pull"), "/v2/" .. repo .. "/manifests/" .. reference,
    {headers = {Accept = ACCEPT}, missing = true})
  if not res then return nil end
  return res:json(), res.headers["docker-content-digest"], res.headers["content-type"]
end

--- registry:delete_manifest(repo, digest) -> true (deleted), false (already gone); in a dry run the
-- delete is recorded and not sent: {dry_run = true, record = ...}
function Registry:delete_manifest(repo, digest)
  check_repo("delete_manifest", repo)
  if not is_digest(digest) then
    usage("delete_manifest", "a digest (sha256:<hex>) is required: a registry deletes manifests by digest, not tag")
  end
  local path = "/v2/" .. repo .. "/manifests/" .. digest
  if dryrun.active() then
    local rec = dryrun.record{kind = "acr", action = "DELETE " .. self.endpoint .. path,
      target = self.service .. "/" .. repo .. "@" .. digest, request = {method = "DELETE", url = self.endpoint .. path}}
    return {dry_run = true, record = rec}
  end
  local res = self:client(repo_scope(repo, "delete")):delete(path)
  if res.status == 404 then return false end
  if res.status >= 300 then
    local code = error_of(res)
    local hint = code == "REGISTRY_DISALLOWED_OPERATION" and " (the image or one of its tags is locked: see"
      .. " registry:attributes and set_attributes)" or res.status == 405 and " (the registry does not allow deletes)"
      or nil
    error(azure_error("DELETE", self.endpoint .. path, res, hint), 0)
  end
  return true
end

-- /acr/v1/<repo>/_manifests/<digest> or /acr/v1/<repo>/_tags/<tag>, and the answer's member
local function attributes_path(fn, repo, reference)
  check_repo(fn, repo)
  if is_digest(reference) then return "/acr/v1/" .. repo .. "/_manifests/" .. reference, "manifest" end
  if type(reference) ~= "string" or not reference:match("^[%w_][%w_.-]*$") or #reference > 128 then
    usage(fn, "a digest (sha256:<hex>) or a tag expected")
  end
  return "/acr/v1/" .. repo .. "/_tags/" .. reference, "tag"
end

-- a manifest's or a tag's record from the attribute endpoints' answer
local function attributes_record(doc, member)
  local item = type(doc) == "table" and doc[member] or {}
  local rec = {digest = item.digest, created = item.createdTime, updated = item.lastUpdateTime}
  if member == "manifest" then
    rec.tags, rec.size, rec.architecture, rec.os = item.tags or {}, item.imageSize, item.architecture, item.os
  else
    rec.name, rec.signed = item.name, item.signed
  end
  return with_attributes(rec, item)
end

--- registry:attributes(repo, reference) -> the record of a manifest (reference a digest) or a tag, with
-- its attributes (delete_enabled, write_enabled, read_enabled, list_enabled, locked); nil when missing
function Registry:attributes(repo, reference)
  local path, member = attributes_path("attributes", repo, reference)
  local res = self:get(repo_scope(repo, "metadata_read"), path, {missing = true})
  if not res then return nil end
  return attributes_record(res:json(), member)
end

--- registry:set_attributes(repo, reference, {delete_enabled =, write_enabled =, read_enabled =,
-- list_enabled =}) -> the updated record. A digest changes the manifest, a tag the tag (ACR keeps them
-- apart: a locked tag does not lock its manifest). Only the given attributes are sent. In a dry run:
-- recorded (kind `acr`), not sent, returns {dry_run = true, record =}.
function Registry:set_attributes(repo, reference, attrs)
  local path, member = attributes_path("set_attributes", repo, reference)
  if type(attrs) ~= "table" then usage("set_attributes", "a table of attributes expected") end
  local body = {}
  for k, v in pairs(attrs) do
    local wire = ATTRIBUTES[k]
    if not wire then
      usage("set_attributes", "unknown attribute '" .. tostring(k) .. "' (delete_enabled, write_enabled, "
        .. "read_enabled, list_enabled)")
    end
    if type(v) ~= "boolean" then usage("set_attributes", k .. " must be a boolean") end
    body[wire] = v
  end
  if next(body) == nil then usage("set_attributes", "no attribute given") end
  if dryrun.active() then
    local rec = dryrun.record{kind = "acr", action = "PATCH " .. self.endpoint .. path,
      target = self.service .. "/" .. repo .. (member == "manifest" and "@" or ":") .. reference,
      request = {method = "PATCH", url = self.endpoint .. path, body = body}}
    return {dry_run = true, record = rec}
  end
  local res = self:client(repo_scope(repo, "metadata_write")):patch(path, {json = body})
  if res.status >= 300 then
    error(azure_error("PATCH", self.endpoint .. path, res, res.status == 403
      and " (no permission for " .. repo_scope(repo, "metadata_write") .. ")" or nil), 0)
  end
  return attributes_record(res:json(), member)
end

--- of(env) -> the environment's registry (endpoints.acr, or acr.login_server / acr.name)
function M.of(envt)
  local acr = envt.acr or {}
  local e = envt.endpoints or {}
  local endpoint = e.acr or (acr.login_server and "https://" .. acr.login_server)
    or (acr.name and "https://" .. acr.name .. ".azurecr.io")
  if not endpoint then
    error(core.error("config", string.format("environment '%s': no acr.name, acr.login_server or endpoints.acr",
      tostring(envt.name))), 0)
  end
  return M.new{endpoint = endpoint, ca = e.ca,
    credential = require("opsh.azure").credential(envt)}
end

return M
