-- API twin "acr": Azure Container Registry in front of the twin's real docker-registry (component
-- "registry", deletes enabled). Its own HTTPS listener serves ACR's token endpoints (an Entra token
-- for https://containerregistry.azure.net exchanged for an ACR refresh token, then access tokens per
-- scope; all RS256 JWTs of the twin's identity key), proxies the OCI /v2/ API to the registry after
-- checking the access token's scope, and answers /acr/v1/ listings from the registry's own storage
-- (repositories, manifests with their tags, tags with their digests; times: see manifest_times and
-- tag_times). A delete through /v2/ reaches the registry, so the manifest is really gone.
local fs = require("opsh.fs")
local http = require("opsh.http")
local json = require("opsh.json")
local identity = require("opsh.twin.identity")
local time = require("opsh.time")

local M = {name = "acr", listener = true}

M.AUDIENCE = "https://containerregistry.azure.net"
local TTL = 3600

local function form_decode(body)
  local out = {}
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function dec(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    k, v = dec(k), dec(v)
    if out[k] and k == "scope" then out[k] = out[k] .. " " .. v else out[k] = v end
  end
  return out
end

local function oauth_error(status, code, message)
  return {status = status, json = {errors = {{code = code, message = message}}}}
end

-- the registry component's record (the API process starts before it: looked up when first needed)
local function registry_of(tw)
  local rec = tw.store:get("components", "registry")
  if not rec or not rec.port then return nil end
  return rec
end

local function challenge(service, scope)
  return {status = 401, headers = {["WWW-Authenticate"] = string.format(
    'Bearer realm="https://%s/oauth2/token",service="%s"%s', service, service,
    scope and (',scope="' .. scope .. '"') or "")},
    json = {errors = {{code = "UNAUTHORIZED", message = "authentication required"}}}}
end

-- scope "repository:<name>:a,b" -> {type, name, actions}
local function parse_scope(s)
  local typ, rest = s:match("^(%w+):(.+)$")
  if not typ then return nil end
  local name, actions = rest:match("^(.*):([^:]*)$")
  if not name then return nil end
  local list = {}
  for a in actions:gmatch("[^,]+") do list[#list + 1] = a end
  return {type = typ, name = name, actions = list}
end

local function allowed(claims, typ, name, action)
  for _, a in ipairs(type(claims.access) == "table" and claims.access or {}) do
    if a.type == typ and (a.name == name or a.name == "*") then
      for _, act in ipairs(a.actions or {}) do
        if act == action or act == "*" then return true end
      end
    end
  end
  return false
end

local ENABLED = {deleteEnabled = true, writeEnabled = true, readEnabled = true, listEnabled = true}

--- changeable attributes: what PATCH /acr/v1/<repo>/_manifests/<digest> and /_tags/<tag> set, kept
-- in the store collection `acr` under `attrs:<repo>@<digest>` and `attrs:<repo>:<tag>`; all enabled
-- until changed. A manifest or tag is locked when deleteEnabled or writeEnabled is false.
local function attributes(tw, key)
  local out = {}
  local set = tw.store:get("acr", "attrs:" .. key) or {}
  for k, v in pairs(ENABLED) do out[k] = set[k] == nil and v or set[k] end
  return out
end

local function locked(attrs) return attrs.deleteEnabled == false or attrs.writeEnabled == false end

local DISALLOWED = {status = 405, json = {errors = {{code = "REGISTRY_DISALLOWED_OPERATION",
  message = "The operation is disallowed on this registry, repository or image."}}}}

-- the registry's storage: <data>/docker/registry/v2
local function storage(rec) return rec.dir .. "/data/docker/registry/v2" end

local function read(path)
  local ok, s = pcall(fs.read, path)
  return ok and s or nil
end

local function blob(rec, digest)
  local hex = digest:match("^sha256:(%x+)$")
  if not hex then return nil end
  return read(string.format("%s/blobs/sha256/%s/%s/data", storage(rec), hex:sub(1, 2), hex))
end

--- manifest_times: `created` is the image config's `created` (what `docker build` writes), read from
-- the registry's blob store; `updated` is when the manifest was last pushed through the twin (the
-- store's collection `acr`, key `<repo>@<digest>`), else `created`. A manifest without a config
-- time gets its revision link's modification time.
local function manifests(tw, rec, repo)
  local base = storage(rec) .. "/repositories/" .. repo .. "/_manifests"
  local by_digest, list = {}, {}
  for _, dir in ipairs(fs.glob(base .. "/revisions/sha256/*")) do
    if fs.exists(dir .. "/link") then
      local digest = "sha256:" .. fs.basename(dir)
      local raw = blob(rec, digest)
      local doc = raw and select(2, pcall(json.decode, raw))
      local created, arch, os_
      local size = raw and #raw or 0
      if type(doc) == "table" and type(doc.config) == "table" and doc.config.digest then
        local craw = blob(rec, doc.config.digest)
        local cfg = craw and select(2, pcall(json.decode, craw))
        if type(cfg) == "table" then created, arch, os_ = cfg.created, cfg.architecture, cfg.os end
        size = size + (doc.config.size or 0)
        for _, l in ipairs(doc.layers or {}) do size = size + (l.size or 0) end
      end
      if type(created) ~= "string" then
        created = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(fs.stat(dir .. "/link").mtime))
      end
      local pushed = tw.store:get("acr", repo .. "@" .. digest)
      local m = {digest = digest, imageSize = size, createdTime = created,
        lastUpdateTime = pushed and pushed.updated or created, architecture = arch, os = os_, tags = {},
        mediaType = type(doc) == "table" and doc.mediaType or nil,
        changeableAttributes = attributes(tw, repo .. "@" .. digest)}
      by_digest[digest] = m
      list[#list + 1] = m
    end
  end
  for _, dir in ipairs(fs.glob(base .. "/tags/*")) do
    local link = read(dir .. "/current/link")
    local m = link and by_digest[link:gsub("%s+$", "")]
    if m then m.tags[#m.tags + 1] = fs.basename(dir) end
  end
  for _, m in ipairs(list) do
    table.sort(m.tags)
    m.tags = json.array(m.tags)
  end
  return list
end

--- tag_times: a tag pushed through the twin has the times of its pushes (store collection `acr`, key
-- `<repo>:<tag>`: `created` the first, `updated` the last); any other (seeded) tag those of the
-- manifest it points to. A tag pointing to a manifest no longer there is not listed.
local function tags(tw, rec, repo)
  local by_digest = {}
  for _, m in ipairs(manifests(tw, rec, repo)) do by_digest[m.digest] = m end
  local base = storage(rec) .. "/repositories/" .. repo .. "/_manifests/tags"
  local list = {}
  for _, dir in ipairs(fs.glob(base .. "/*")) do
    local link = read(dir .. "/current/link")
    local m = link and by_digest[link:gsub("%s+$", "")]
    if m then
      local name = fs.basename(dir)
      local pushed = tw.store:get("acr", repo .. ":" .. name)
      list[#list + 1] = {name = name, digest = m.digest, createdTime = pushed and pushed.created or m.createdTime,
        lastUpdateTime = pushed and pushed.updated or m.lastUpdateTime, signed = false,
        changeableAttributes = attributes(tw, repo .. ":" .. name)}
    end
  end
  return list
end

-- what listings show: items with listEnabled false are left out, as ACR does
local function listed(items)
  local out = {}
  for _, it in ipairs(items) do
    if it.changeableAttributes.listEnabled ~= false then out[#out + 1] = it end
  end
  return out
end

-- RFC 3339 times of different precision compare as instants, not as strings
local function epoch(t)
  local ok, v = pcall(time.parse, t)
  return ok and v or 0
end

local function by_time(order, key)
  return function(a, b)
    local ta, tb = epoch(a.lastUpdateTime), epoch(b.lastUpdateTime)
    if ta ~= tb then
      if order == "timedesc" then return ta > tb end
      return ta < tb
    end
    return key(a) < key(b)
  end
end

local function repositories(rec)
  local root = storage(rec) .. "/repositories/"
  local out = {}
  local function walk(dir, prefix)
    for _, sub in ipairs(fs.glob(dir .. "/*")) do
      local name = prefix .. fs.basename(sub)
      if fs.exists(sub .. "/_manifests/revisions") then out[#out + 1] = name end
      if fs.basename(sub):sub(1, 1) ~= "_" then walk(sub, name .. "/") end
    end
  end
  walk(root:sub(1, -2), "")
  table.sort(out)
  return out
end

-- one page of a sorted list after `last`, n long, and the Link to the next
local function page(items, key, req, path, extra)
  local n = tonumber(req.query.n) or 100
  if n < 1 then n = 100 end
  local last = req.query.last
  local out, i = {}, 1
  if last and last ~= "" then
    while items[i] and key(items[i]) ~= last do i = i + 1 end
    i = i + 1
  end
  while items[i] and #out < n do
    out[#out + 1] = items[i]
    i = i + 1
  end
  local headers = {}
  if items[i] and #out > 0 then
    headers.Link = string.format('<%s?last=%s&n=%d%s>; rel="next"', path, key(out[#out]), n, extra or "")
  end
  return out, headers
end

function M.mount(srv, tw)
  local function service(req)
    return req.headers.host or srv.url:match("^https?://([^/]+)")
  end

  local function issue(subject, claims, aud)
    return identity.issue(tw, {audience = aud, subject = subject, ttl = TTL, claims = claims})
  end

  srv:route("POST", "/oauth2/exchange", function(req)
    local f = form_decode(req.body)
    if f.grant_type ~= "access_token" then
      return oauth_error(400, "UNSUPPORTED", "grant_type must be access_token")
    end
    local claims = identity.verify(tw, "Bearer " .. (f.access_token or ""), M.AUDIENCE)
    if not claims then
      return oauth_error(401, "UNAUTHORIZED", "the Entra access token is invalid, expired or not for "
        .. M.AUDIENCE)
    end
    local svc = f.service or service(req)
    return {refresh_token = issue(claims.oid or claims.sub, {grant_type = "refresh_token", tenant = claims.tid,
      service = svc}, svc)}
  end)

  srv:route("POST", "/oauth2/token", function(req)
    local f = form_decode(req.body)
    if f.grant_type ~= "refresh_token" then return oauth_error(400, "UNSUPPORTED", "grant_type must be refresh_token") end
    local svc = f.service or service(req)
    local claims = identity.verify(tw, "Bearer " .. (f.refresh_token or ""), svc)
    if not claims or claims.grant_type ~= "refresh_token" then
      return oauth_error(401, "UNAUTHORIZED", "the ACR refresh token is invalid or expired")
    end
    local access = {}
    for s in (f.scope or ""):gmatch("%S+") do
      local a = parse_scope(s)
      if a then access[#access + 1] = a end
    end
    return {access_token = issue(claims.sub, {access = json.array(access), grant_type = "access_token"}, svc)}
  end)

  -- the access token of a request for (type, name, action), or a challenge answer
  local function check(req, typ, name, action)
    local svc = service(req)
    local scope = typ .. ":" .. name .. ":" .. action
    local claims = identity.verify(tw, req.headers.authorization, svc)
    if not claims or claims.grant_type ~= "access_token" then return nil, challenge(svc, scope) end
    if not allowed(claims, typ, name, action) then
      return nil, {status = 403, json = {errors = {{code = "DENIED",
        message = "requested access to the resource is denied (" .. scope .. ")"}}}}
    end
    return claims
  end

  local function need_registry()
    local rec = registry_of(tw)
    if not rec then return nil, oauth_error(503, "UNAVAILABLE", "the twin's registry is not running") end
    return rec
  end

  srv:route("GET", "/acr/v1/_catalog", function(req)
    local ok, why = check(req, "registry", "catalog", "*")
    if not ok then return why end
    local rec, err = need_registry()
    if not rec then return err end
    local items, headers = page(repositories(rec), function(x) return x end, req, "/acr/v1/_catalog")
    return {status = 200, headers = headers, json = {repositories = json.array(items)}}
  end)

  local function tag_list(req, repo)
    local ok, why = check(req, "repository", repo, "metadata_read")
    if not ok then return why end
    local rec, err = need_registry()
    if not rec then return err end
    if not fs.exists(storage(rec) .. "/repositories/" .. repo .. "/_manifests") then
      return oauth_error(404, "NAME_UNKNOWN", "repository name not known to registry")
    end
    local list = listed(tags(tw, rec, repo))
    if req.query.digest and req.query.digest ~= "" then
      local only = {}
      for _, t in ipairs(list) do if t.digest == req.query.digest then only[#only + 1] = t end end
      list = only
    end
    local order = req.query.orderby or ""
    local name = function(t) return t.name end
    if order == "timedesc" or order == "timeasc" then
      table.sort(list, by_time(order, name))
    else
      table.sort(list, function(a, b) return a.name < b.name end)
    end
    local items, headers = page(list, name, req, "/acr/v1/" .. repo .. "/_tags", "&orderby=" .. order)
    return {status = 200, headers = headers, json = {registry = service(req), imageName = repo,
      tags = json.array(items)}}
  end

  -- GET or PATCH /acr/v1/<repo>/_manifests/<digest> and /acr/v1/<repo>/_tags/<tag>
  local function item_attributes(req, repo, kind, ref)
    local ok, why = check(req, "repository", repo, req.method == "PATCH" and "metadata_write" or "metadata_read")
    if not ok then return why end
    local rec, err = need_registry()
    if not rec then return err end
    local item
    for _, it in ipairs(kind == "manifest" and manifests(tw, rec, repo) or tags(tw, rec, repo)) do
      if (kind == "manifest" and it.digest or it.name) == ref then item = it end
    end
    if not item then
      return oauth_error(404, kind == "manifest" and "MANIFEST_UNKNOWN" or "TAG_UNKNOWN",
        kind .. " " .. ref .. " is not known to the registry")
    end
    if req.method == "PATCH" then
      local okj, body = pcall(json.decode, req.body or "")
      if not okj or type(body) ~= "table" then return oauth_error(400, "BAD_REQUEST", "a JSON object expected") end
      local key = "attrs:" .. repo .. (kind == "manifest" and "@" or ":") .. ref
      local set = tw.store:get("acr", key) or {}
      for k, v in pairs(body) do
        if ENABLED[k] == nil then return oauth_error(400, "BAD_REQUEST", "unknown attribute " .. tostring(k)) end
        if type(v) ~= "boolean" then return oauth_error(400, "BAD_REQUEST", k .. " must be a boolean") end
        set[k] = v
      end
      tw.store:put("acr", key, set)
      item.changeableAttributes = attributes(tw, key:sub(7))
    end
    return {status = 200, json = {registry = service(req), imageName = repo, [kind] = item}}
  end

  srv:route("*", "/acr/v1/{repo...}", function(req)
    if req.method ~= "GET" and req.method ~= "PATCH" then
      return oauth_error(405, "UNSUPPORTED", req.method .. " is not served by the twin on " .. req.path)
    end
    local arepo, kind, ref = req.params.repo:match("^(.+)/_(%l+)/([^/]+)$")
    if arepo and (kind == "manifests" or kind == "tags") then
      return item_attributes(req, arepo, kind == "manifests" and "manifest" or "tag", ref)
    end
    if req.method ~= "GET" then
      return oauth_error(405, "UNSUPPORTED", req.method .. " is not served by the twin on " .. req.path)
    end
    local trepo = req.params.repo:match("^(.+)/_tags$")
    if trepo then return tag_list(req, trepo) end
    local repo = req.params.repo:match("^(.+)/_manifests$")
    if not repo then return oauth_error(404, "NAME_UNKNOWN", "not served by the twin: " .. req.path) end
    local ok, why = check(req, "repository", repo, "metadata_read")
    if not ok then return why end
    local rec, err = need_registry()
    if not rec then return err end
    local list = listed(manifests(tw, rec, repo))
    if #list == 0 and not fs.exists(storage(rec) .. "/repositories/" .. repo) then
      return oauth_error(404, "NAME_UNKNOWN", "repository name not known to registry")
    end
    local order = req.query.orderby or "none"
    if order == "timedesc" or order == "timeasc" then
      table.sort(list, function(a, b)
        if a.lastUpdateTime ~= b.lastUpdateTime then
          if order == "timedesc" then return a.lastUpdateTime > b.lastUpdateTime end
          return a.lastUpdateTime < b.lastUpdateTime
        end
        return a.digest < b.digest
      end)
    else
      table.sort(list, function(a, b) return a.digest < b.digest end)
    end
    local items, headers = page(list, function(m) return m.digest end, req, "/acr/v1/" .. repo .. "/_manifests",
      "&orderby=" .. order)
    return {status = 200, headers = headers, json = {registry = service(req), imageName = repo,
      manifests = json.array(items)}}
  end)

  local ACTIONS = {GET = "pull", HEAD = "pull", PUT = "push", POST = "push", PATCH = "push", DELETE = "delete"}

  -- /v2/: checked against the access token, then sent to the registry as it came
  srv:route("*", "/v2/{rest...}", function(req)
    local rest = req.params.rest
    local typ, name, action = "registry", "catalog", "*"
    if rest ~= "" and rest ~= "_catalog" then
      name = rest:match("^(.-)/manifests/") or rest:match("^(.-)/blobs/") or rest:match("^(.-)/tags/list$")
      if not name then return oauth_error(404, "NAME_UNKNOWN", "unknown path " .. req.path) end
      typ, action = "repository", ACTIONS[req.method] or "pull"
    end
    if rest == "" then
      local claims = identity.verify(tw, req.headers.authorization, service(req))
      if not claims then return challenge(service(req)) end
    else
      local ok, why = check(req, typ, name, action)
      if not ok then return why end
    end
    local rec, err = need_registry()
    if not rec then return err end
    local ref = rest:match("/manifests/([^/]+)$")
    if ref and (req.method == "DELETE" or req.method == "PUT") then
      -- a locked manifest, or a locked tag on it, refuses deletes; a locked tag refuses pushes over it
      if ref:match("^sha256:") then
        if locked(attributes(tw, name .. "@" .. ref)) then return DISALLOWED end
        if req.method == "DELETE" then
          for _, t in ipairs(tags(tw, rec, name)) do
            if t.digest == ref and locked(t.changeableAttributes) then return DISALLOWED end
          end
        end
      elseif locked(attributes(tw, name .. ":" .. ref)) then
        return DISALLOWED
      end
    end
    local headers = {}
    for _, h in ipairs({"accept", "content-type", "range"}) do headers[h] = req.headers[h] end
    local res = http.request{method = req.method, url = "https://127.0.0.1:" .. rec.port .. req.target,
      ca = tw.ca.ca, headers = headers, body = req.body ~= "" and req.body or nil, raise_for_status = false,
      retries = 0, read = true, compressed = false}
    local out = {}
    for _, h in ipairs({"content-type", "docker-content-digest", "location", "link", "range",
        "docker-upload-uuid", "docker-distribution-api-version"}) do
      local v = res.headers[h]
      if v then
        -- the registry's own address in a Location stays behind the twin
        if h == "location" then v = v:gsub("^https://127%.0%.0%.1:" .. rec.port, "") end
        out[h] = v
      end
    end
    if req.method == "PUT" and res.status == 201 and rest:find("/manifests/", 1, true) then
      local digest = res.headers["docker-content-digest"]
      if digest then
        tw.store:put("acr", name .. "@" .. digest, {updated = os.date("!%Y-%m-%dT%H:%M:%SZ")})
      end
      local tag = rest:match("/manifests/([^/:@]+)$")
      if tag then
        local now = time.format(time.now(), {fraction = 7})
        local key = name .. ":" .. tag
        local old = tw.store:get("acr", key)
        tw.store:put("acr", key, {created = old and old.created or now, updated = now})
      end
    end
    return {status = res.status, headers = out, body = req.method ~= "HEAD" and res.body or nil}
  end)
end

function M.environment(_tw, env, endpoint)
  env.endpoints = env.endpoints or {}
  env.endpoints.acr = endpoint
  env.acr = env.acr or {}
  env.acr.name = env.acr.name or require("opsh.twin.platform").region("production").acr
end

function M.shell(_tw, exports, endpoint)
  exports.OPSH_ACR_ENDPOINT = endpoint
end


return M
