-- opsh.k8s.client (internal): the client object — one cluster, context and default namespace over
-- an opsh.http client — with discovery, name mapping and the generic verbs (get, list, iter,
-- create, replace, patch, delete, delete_collection, subresources). Streams (watch, log) are in
-- opsh.k8s.stream, the runbook helpers in opsh.k8s.helpers, top and apply in their own files.
local core = require("opsh._core")
local http = require("opsh.http")
local json = require("opsh.json")
local dryrun = require("opsh.dryrun")
local discovery = require("opsh.k8s.discovery")
local errors = require("opsh.k8s.errors")

local M = {}

local Client = {}
M.Client = Client
local meta = {__index = Client, __name = "opsh.k8s.client"}
meta.__tostring = function(c)
  return string.format("opsh.k8s.client (%s, context %s, namespace %s)", http.redact(c.server), c.context, c.namespace)
end

local function usage(message) error(core.error("usage", message), 0) end
M.usage = usage

--- new{server=, context=, namespace=, tls={ca, cert, key, insecure, proxy, auth, headers}, cache_dir=,
-- discovery_ttl=, field_manager=, request_timeout=} -> client
function M.new(s)
  local t = s.tls or {}
  local headers = {["User-Agent"] = "opsh/" .. tostring(require("opsh.runtime").version) .. " (k8s)",
    Accept = "application/json"}
  for k, v in pairs(t.headers or {}) do headers[k] = v end
  local h = http.client{base_url = s.server, ca = t.ca, cert = t.cert, key = t.key, insecure = t.insecure,
    proxy = t.proxy, auth = t.auth, headers = headers, timeout = s.request_timeout or 60, max_retry_after = 32,
    retries = 5}
  local c = setmetatable({
    server = s.server, context = s.context or "", namespace = s.namespace or "default", http = h,
    cache_dir = s.cache_dir == nil and discovery.default_cache_dir() or s.cache_dir,
    discovery_ttl = s.discovery_ttl or discovery.TTL, field_manager = s.field_manager or "opsh",
    exec = t.exec,
  }, meta)
  return c
end

-- ---- requests ----

local MUTATIONS = {POST = true, PUT = true, PATCH = true, DELETE = true}
-- what a mutation the server could not dry-run returns: no body
local NO_BODY = {__index = {json = function() return nil end}}

local function shallow(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

-- "/apis/apps/v1/namespaces/prod/deployments/web/scale" -> "deployments/web/scale -n prod", "web"
local function describe_target(path)
  local rest = path:gsub("^/api/[^/]+/", ""):gsub("^/apis/[^/]+/[^/]+/", "")
  local ns, tail = rest:match("^namespaces/([^/]+)/(.+)$")
  if ns then rest = tail end
  return rest .. (ns and (" -n " .. ns) or ""), rest:match("^[^/]+/([^/]+)") or rest
end

-- what a dry-run record shows of a body: a Secret's values never (they are only base64)
local function shown_body(path, body)
  if not path:find("/secrets", 1, true) and not (type(body) == "table" and body.kind == "Secret") then return body end
  if type(body) ~= "table" then return "<redacted: a Secret's body>" end
  local copy = shallow(body)
  for _, field in ipairs({"data", "stringData"}) do
    if type(body[field]) == "table" then
      copy[field] = {}
      for k in pairs(body[field]) do copy[field][k] = "<redacted>" end
    end
  end
  return copy
end

--- c:request(method, path, {query=, json=, body=, content_type=, headers=, missing_ok=, on_line=,
-- idle_timeout=, timeout=}) -> response | nil (404 with missing_ok). Error statuses raise kind "k8s";
-- a POST or PATCH answered 429/503 with Retry-After is sent again (the server did not act on it).
-- In a dry-run a mutation is sent with dryRun=All and recorded (kind "k8s").
function Client:request(method, path, o)
  o = o or {}
  local q = o.query
  local dry = MUTATIONS[method] and dryrun.active()
  if dry then
    q = shallow(q)
    q.dryRun = "All"
  end
  local headers = o.headers
  if o.content_type then
    headers = shallow(headers)
    headers["Content-Type"] = o.content_type
  end
  local req = {method = method, url = path, query = q, headers = headers, body = o.body, missing_ok = o.missing_ok,
    on_line = o.on_line, on_data = o.on_data, idle_timeout = o.idle_timeout, timeout = o.timeout,
    dry_run = dry and "server" or nil}
  if o.json ~= nil then
    req.body = json.encode(o.json)
    if not (headers and headers["Content-Type"]) then
      headers = shallow(headers)
      headers["Content-Type"] = "application/json"
      req.headers = headers
    end
  end
  local attempt = 0
  while true do
    attempt = attempt + 1
    local ok, res = pcall(self.http.request, self.http, req)
    if ok then
      if dry then
        local action, target = describe_target(path)
        dryrun.record{kind = "k8s", action = method .. " " .. action .. " (dryRun=All)", target = target,
          request = {method = method, path = path, query = q, content_type = headers and headers["Content-Type"],
            body = shown_body(path, o.json or o.body), server_status = res and res.status}}
      end
      return res
    end
    if not (core.is_error(res) and res.kind == "http" and res.status) then error(res, 0) end
    local err = errors.from_response({status = res.status, body = res.body, headers = res.headers or {}}, method, path)
    if dry and res.status == 400 and tostring(err.server_message):lower():find("dry%-?%s?run") then
      -- a server without server-side dry-run: the request is recorded, not sent
      local action, target = describe_target(path)
      local rec = dryrun.record{kind = "k8s", action = method .. " " .. action .. " (not sent: the server has no dryRun)",
        target = target, request = {method = method, path = path, query = o.query,
          content_type = headers and headers["Content-Type"], body = shown_body(path, o.json or o.body)}}
      return setmetatable({dry_run = true, record = rec, method = method, headers = {}}, NO_BODY)
    end
    local wait = (res.status == 429 or res.status == 503) and (method == "POST" or method == "PATCH")
      and err.retry_after and http.retry_after(err.retry_after)
    if not wait or attempt > 5 or wait > 32 then error(err, 0) end
    core.sleep(wait)
  end
end

-- ---- discovery ----

--- c:discover([force]) -> the resource index (memory, then the disk cache, then the server)
function Client:discover(force)
  if self._index and not force then return self._index end
  local path = self.cache_dir and discovery.cache_path(self.cache_dir, self.server)
  local list
  if path and not force then
    list = discovery.read_cache(path, self.discovery_ttl)
    self._from_cache = list ~= nil
  end
  if not list then
    list, self.discovery_mode = discovery.fetch(self.http)
    self._from_cache = false
    if path then discovery.write_cache(path, list) end
  end
  self._index = discovery.index(list)
  return self._index
end

--- c:resource(name [, api_version]) -> the discovery record; an unknown name refreshes a cached
-- discovery once (a CRD installed since), then raises kind "k8s" reason "NotFound"
function Client:resource(name, api_version)
  if type(name) == "table" then return name end
  if type(name) ~= "string" or name == "" then usage("a resource name is required (pods, deploy, hpa, ...)") end
  local rec = discovery.lookup(self:discover(), name, api_version)
  if not rec and self._from_cache ~= false then
    rec = discovery.lookup(self:discover(true), name, api_version)
  end
  if not rec then
    error(core.error("k8s", string.format("the server doesn't have a resource type \"%s\"%s", name,
      api_version and (" in " .. api_version) or ""), {code = 404, reason = "NotFound", resource = name}), 0)
  end
  return rec
end

--- c:resources() -> the list of resource records (group, version, resource, kind, namespaced, ...)
function Client:resources()
  return self:discover().list
end

-- ---- arguments ----

local function selector(v, what)
  if v == nil or type(v) == "string" then return v end
  if type(v) ~= "table" then usage(what .. " must be a string or a table") end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = k .. "=" .. tostring(x) end
  table.sort(parts)
  return table.concat(parts, ",")
end
M.selector = selector

-- an API object (not a discovery record): has apiVersion or metadata
local function is_object(v)
  return type(v) == "table" and v.resource == nil and (v.apiVersion ~= nil or v.metadata ~= nil) and v.kind ~= nil
end
M.is_object = is_object

-- (resource, name, opts) with "kind/name" and objects accepted -> rec, name, opts, namespace
function Client:_target(resource, name, opts)
  if type(name) == "table" and opts == nil then name, opts = nil, name end
  opts = opts or {}
  local rec
  if is_object(resource) then
    local md = resource.metadata or {}
    rec = self:resource(resource.kind, resource.apiVersion)
    name = name or md.name
    opts = shallow(opts)
    opts.namespace = opts.namespace or md.namespace
  else
    if type(resource) == "string" and not name then
      local r, n = resource:match("^([^/]+)/([^/]+)$")
      if r then resource, name = r, n end
    end
    rec = self:resource(resource)
  end
  local ns
  if rec.namespaced and not opts.all_namespaces then ns = opts.namespace or self.namespace end
  return rec, name, opts, ns
end

local function list_query(opts)
  local q = {labelSelector = selector(opts.label_selector, "label_selector"),
    fieldSelector = selector(opts.field_selector, "field_selector"), resourceVersion = opts.resource_version}
  return q
end

local list_meta = {}
M.list_meta = list_meta
-- list -> {resource, all_namespaces}: what printing it needs, kept out of its JSON
M.list_info = setmetatable({}, {__mode = "k"})

-- ---- reads ----

--- c:get(resource [, name] [, opts]) -> the object (nil with missing_ok when absent); without a name,
-- the list (c:list)
function Client:get(resource, name, opts)
  local rec, n, o, ns = self:_target(resource, name, opts)
  if not n then return self:list(rec, o) end
  local res = self:request("GET", discovery.path(rec, ns, n, o.subresource), {missing_ok = o.missing_ok})
  return res and res:json()
end

--- c:iter(resource [, opts]) -> iterator over the items, a page (opts.limit, default 500) at a time;
-- memory stays that of one page however long the list. A continue token that expired (410) fails.
function Client:iter(resource, opts)
  local rec, _, o, ns = self:_target(resource, nil, opts)
  local path = discovery.path(rec, ns)
  local q = list_query(o)
  q.limit = o.limit or 500
  local page, i, cont, done = nil, 0, nil, false
  local state = {kind = nil, metadata = nil}
  local function next_page()
    q.continue = cont
    local doc = self:request("GET", path, {query = q}):json()
    state.kind, state.metadata, state.apiVersion = doc.kind, doc.metadata, doc.apiVersion
    page, i = doc.items or {}, 0
    cont = doc.metadata and doc.metadata.continue
    if cont == json.null or cont == "" then cont = nil end
    done = cont == nil
  end
  return function()
    while true do
      if page then
        i = i + 1
        local item = page[i]
        if item ~= nil then
          page[i] = nil
          if item.kind == nil and state.kind then
            item.kind = state.kind:gsub("List$", "")
            item.apiVersion = state.apiVersion
          end
          return item
        end
        if done then return nil end
      end
      next_page()
    end
  end, state
end

--- c:list(resource [, opts]) -> {apiVersion, kind, metadata, items}: every page fetched (limit 500
-- by default, opts.limit to change), prints as a kubectl table in the REPL
function Client:list(resource, opts)
  local rec, _, o, ns = self:_target(resource, nil, opts)
  local path = discovery.path(rec, ns)
  local q = list_query(o)
  q.limit = o.limit or 500
  local items, first = json.array(), nil
  repeat
    local doc = self:request("GET", path, {query = q}):json()
    first = first or doc
    for _, it in ipairs(doc.items or {}) do items[#items + 1] = it end
    local cont = doc.metadata and doc.metadata.continue
    if cont == json.null or cont == "" then cont = nil end
    q.continue = cont
  until not cont
  local md = first.metadata or {}
  md.continue = nil
  local list = setmetatable({apiVersion = first.apiVersion, kind = first.kind, metadata = md, items = items}, list_meta)
  M.list_info[list] = {resource = rec, all_namespaces = ns == nil and rec.namespaced}
  return list
end

-- ---- writes ----

local function body_of(obj)
  if type(obj) ~= "table" then usage("an object (table) is required") end
  return obj
end

--- c:create([resource,] obj [, opts]) -> the created object
function Client:create(resource, obj, opts)
  if is_object(resource) then resource, obj, opts = resource, resource, obj end
  body_of(obj)
  local rec, _, o, ns = self:_target(resource, nil, opts)
  if is_object(resource) then ns = rec.namespaced and ((obj.metadata or {}).namespace or (opts or {}).namespace
    or self.namespace) or nil end
  local q = {fieldManager = o.field_manager or self.field_manager}
  return self:request("POST", discovery.path(rec, ns, nil, o.subresource), {query = q, json = obj}):json()
end

--- c:replace(obj [, opts]) -> the object after a PUT (409 if obj's resourceVersion is stale)
function Client:replace(resource, obj, opts)
  if is_object(resource) then resource, obj, opts = resource, resource, obj end
  body_of(obj)
  local rec, n, o, ns = self:_target(resource, (obj.metadata or {}).name, opts)
  if not is_object(resource) and rec.namespaced then ns = (obj.metadata or {}).namespace or ns end
  local q = {fieldManager = o.field_manager or self.field_manager}
  return self:request("PUT", discovery.path(rec, ns, n, o.subresource), {query = q, json = obj}):json()
end

local PATCH_TYPES = {
  merge = "application/merge-patch+json", strategic = "application/strategic-merge-patch+json",
  json = "application/json-patch+json", apply = "application/apply-patch+yaml",
}

--- c:patch(resource, name, patch [, {type = "merge"|"strategic"|"json"|"apply", field_manager=, force=,
-- subresource=, namespace=}]) -> the patched object
function Client:patch(resource, name, patch, opts)
  local rec, n, o, ns = self:_target(resource, name, opts)
  if not n then usage("patch needs the object's name") end
  local ptype = o.type or "merge"
  local ct = PATCH_TYPES[ptype]
  if not ct then usage("patch type must be merge, strategic, json or apply, not " .. tostring(ptype)) end
  local q = {fieldManager = o.field_manager or (ptype == "apply" and self.field_manager or nil)}
  if ptype == "apply" then q.force = o.force == nil and "true" or tostring(o.force) end
  local req = {query = q, content_type = ct}
  if type(patch) == "string" then req.body = patch else req.json = patch end
  return self:request("PATCH", discovery.path(rec, ns, n, o.subresource), req):json()
end

--- c:delete(resource [, name] [, {propagation=, grace_period=, missing_ok=, namespace=}]) -> the
-- server's answer (the object still terminating, or a Status); nil when absent with missing_ok
function Client:delete(resource, name, opts)
  local rec, n, o, ns = self:_target(resource, name, opts)
  if not n then usage("delete needs a name: use delete_collection for many") end
  local body = {kind = "DeleteOptions", apiVersion = "v1", propagationPolicy = o.propagation or "Background",
    gracePeriodSeconds = o.grace_period}
  local res = self:request("DELETE", discovery.path(rec, ns, n), {json = body, missing_ok = o.missing_ok})
  return res and res:json()
end

--- c:delete_collection(resource, {label_selector=, field_selector=, propagation=, grace_period=}) ->
-- the server's answer (the list of deleted objects, or a Status)
function Client:delete_collection(resource, opts)
  local rec, _, o, ns = self:_target(resource, nil, opts)
  local body = {kind = "DeleteOptions", apiVersion = "v1", propagationPolicy = o.propagation or "Background",
    gracePeriodSeconds = o.grace_period}
  return self:request("DELETE", discovery.path(rec, ns), {query = list_query(o), json = body}):json()
end

-- ---- subresources ----

--- c:status(resource, name [, opts]) -> the object read through its status subresource
function Client:status(resource, name, opts)
  opts = shallow(opts)
  opts.subresource = "status"
  return self:get(resource, name, opts)
end

--- c:evict(pod [, {namespace=, grace_period=}]) -> the server's answer (429 while a disruption
-- budget forbids it, raised as kind "k8s")
function Client:evict(name, opts)
  local rec, n, o, ns = self:_target("pods", name, opts)
  local body = {apiVersion = "policy/v1", kind = "Eviction", metadata = {name = n, namespace = ns},
    deleteOptions = o.grace_period and {gracePeriodSeconds = o.grace_period} or nil}
  return self:request("POST", discovery.path(rec, ns, n, "eviction"), {json = body}):json()
end

--- c:with{namespace=} -> the same client with another default namespace
function Client:with(opts)
  local c = shallow(self)
  for k, v in pairs(opts or {}) do
    if k ~= "namespace" then usage("with: only namespace can change (make another client for another context)") end
    c[k] = v
  end
  return setmetatable(c, meta)
end

--- retry_conflict(fn, [attempts = 5]) -> fn's results, run again after a 409 Conflict
function M.retry_conflict(fn, attempts)
  attempts = attempts or 5
  for i = 1, attempts do
    local res = table.pack(pcall(fn, i))
    if res[1] then return table.unpack(res, 2, res.n) end
    if not (errors.is(res[2], 409) and res[2].reason == "Conflict") or i == attempts then error(res[2], 0) end
    core.sleep(0.05 * i)
  end
end

return M
