-- opsh.k8s.discovery (internal): what the server serves — aggregated discovery
-- (apidiscovery.k8s.io/v2) when offered, the legacy documents otherwise — cached on disk with a
-- TTL like kubectl's, and the names a user types (pods, po, deploy, Deployment,
-- deployments.apps, hpa.v1.autoscaling, certificates.cert-manager.io) mapped to resources.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")

local M = {}

M.ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
  .. "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
M.TTL = 6 * 3600

local function is_aggregated(res)
  local ct = (res.headers["content-type"] or ""):gsub("%s", "")
  return ct:find("g=apidiscovery.k8s.io", 1, true) and ct:find("as=APIGroupDiscoveryList", 1, true) ~= nil
end

-- one aggregated APIGroupDiscovery -> resource records appended to out
local function from_aggregated_group(item, out)
  local group = item.metadata and item.metadata.name or ""
  if group == json.null then group = "" end
  for vi, v in ipairs(item.versions or {}) do
    if v.freshness ~= "Stale" then
      for _, r in ipairs(v.resources or {}) do
        local rk = r.responseKind or {}
        local rec = {group = group, version = v.version, resource = r.resource, kind = rk.kind,
          namespaced = r.scope == "Namespaced", singular = r.singularResource, verbs = r.verbs or {},
          short_names = r.shortNames or {}, categories = r.categories or {}, preferred = vi == 1,
          subresources = {}}
        for _, s in ipairs(r.subresources or {}) do
          if s.responseKind then
            rec.subresources[s.subresource] = {group = s.responseKind.group or "", version = s.responseKind.version,
              kind = s.responseKind.kind, verbs = s.verbs or {}}
          end
        end
        out[#out + 1] = rec
      end
    end
  end
end

-- an APIResourceList of group/version -> records
local function from_legacy_list(doc, group, version, preferred, out)
  local byname = {}
  for _, r in ipairs(doc.resources or {}) do
    local base = r.name:match("^([^/]+)/(.+)$")
    if not base then
      local rec = {group = group, version = version, resource = r.name, kind = r.kind, namespaced = r.namespaced == true,
        singular = r.singularName ~= "" and r.singularName or nil, verbs = r.verbs or {},
        short_names = r.shortNames or {}, categories = r.categories or {}, preferred = preferred, subresources = {}}
      byname[r.name] = rec
      out[#out + 1] = rec
    end
  end
  for _, r in ipairs(doc.resources or {}) do
    local base, sub = r.name:match("^([^/]+)/(.+)$")
    if base and byname[base] then
      byname[base].subresources[sub] = {group = r.group or group, version = r.version or version, kind = r.kind,
        verbs = r.verbs or {}}
    end
  end
end

--- fetch(http_client) -> list of resource records, "aggregated" | "legacy"
function M.fetch(c)
  local out = {}
  local q = {timeout = "32s"}
  local api = c:get("/api", {headers = {Accept = M.ACCEPT}, query = q, raise_for_status = false})
  local apis = c:get("/apis", {headers = {Accept = M.ACCEPT}, query = q, raise_for_status = false})
  if apis.status >= 400 then
    error(core.error("k8s", string.format("discovery: GET /apis answered %d", apis.status),
      {code = apis.status, reason = "NotFound"}), 0)
  end
  if is_aggregated(apis) and (api.status >= 400 or is_aggregated(api)) then
    if api.status < 400 then
      for _, item in ipairs(api:json().items or {}) do from_aggregated_group(item, out) end
    end
    for _, item in ipairs(apis:json().items or {}) do from_aggregated_group(item, out) end
    return out, "aggregated"
  end
  -- legacy: /api/v1 and every /apis/{group}/{version}, fetched together
  local jobs = {}
  if api.status < 400 then
    for i, v in ipairs(api:json().versions or {}) do
      jobs[#jobs + 1] = {path = "/api/" .. v, group = "", version = v, preferred = i == 1}
    end
  end
  for _, g in ipairs(apis:json().groups or {}) do
    local pref = g.preferredVersion and g.preferredVersion.version
    for _, v in ipairs(g.versions or {}) do
      jobs[#jobs + 1] = {path = "/apis/" .. v.groupVersion, group = g.name, version = v.version,
        preferred = v.version == pref}
    end
  end
  local docs = require("opsh").parallel(jobs, function(j)
    local r = c:get(j.path, {query = q, raise_for_status = false})
    if r.status >= 400 then return false end
    return r:json()
  end, {limit = 16})
  -- preferred versions first, so that a name maps to the preferred version of its group
  for pass = 1, 2 do
    for i, j in ipairs(jobs) do
      if docs[i] and (pass == 1) == j.preferred then from_legacy_list(docs[i], j.group, j.version, j.preferred, out) end
    end
  end
  return out, "legacy"
end

-- ---- the disk cache ----

function M.cache_path(dir, server)
  local hostport = server:gsub("^%a+://", ""):gsub("[^%w.-]", "_")
  return dir .. "/" .. hostport .. ".json"
end

function M.default_cache_dir()
  local base = os.getenv("XDG_CACHE_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or "/tmp") .. "/.cache" end
  return base .. "/opsh/k8s/discovery"
end

function M.read_cache(path, ttl)
  local st = fs.stat(path)
  if not st or os.time() - st.mtime > ttl then return nil end
  local ok, doc = pcall(json.decode, fs.read(path, {missing_ok = true}) or "")
  if not ok or type(doc) ~= "table" or type(doc.resources) ~= "table" then return nil end
  return doc.resources
end

function M.write_cache(path, resources)
  pcall(function()
    fs.mkdir(fs.dirname(path), {parents = true, mode = tonumber("700", 8)})
    fs.write(path, json.encode({resources = resources}), {atomic = true})
  end)
end

-- ---- mapping names ----

--- index(resources) -> {by = {name -> record}} over plural, singular, kind, short names, and
-- resource.group, resource.version.group, kind.group forms; the first record (core group, preferred
-- versions first) wins a name
function M.index(resources)
  local by = {}
  local function add(name, rec)
    if name and name ~= "" then
      name = name:lower()
      if by[name] == nil then by[name] = rec end
    end
  end
  -- preferred versions before the others, keeping the server's order otherwise
  local ordered = {}
  for _, r in ipairs(resources) do if r.preferred then ordered[#ordered + 1] = r end end
  for _, r in ipairs(resources) do if not r.preferred then ordered[#ordered + 1] = r end end
  for _, r in ipairs(ordered) do
    local names = {r.resource, r.singular, r.kind}
    for _, s in ipairs(r.short_names or {}) do names[#names + 1] = s end
    for _, n in ipairs(names) do
      if r.preferred then add(n, r) end
      if r.group ~= "" then
        if r.preferred then add(n .. "." .. r.group, r) end
        add(n .. "." .. r.version .. "." .. r.group, r)
      else
        add(n .. "." .. r.version, r)
      end
    end
    if r.preferred then
      add(r.group == "" and r.version .. "/" .. r.kind or r.group .. "/" .. r.version .. "/" .. r.kind, r)
    end
  end
  return {by = by, list = ordered}
end

--- lookup(index, name [, api_version]) -> record | nil; with api_version ("apps/v1") the record of
-- that group and version (for manifests: apiVersion + kind)
function M.lookup(idx, name, api_version)
  if api_version then
    local group, version = api_version:match("^([^/]+)/([^/]+)$")
    if not group then group, version = "", api_version end
    for _, r in ipairs(idx.list) do
      if r.group == group and r.version == version and (r.kind == name or r.resource == name:lower()) then return r end
    end
    return nil
  end
  return idx.by[name:lower()]
end

--- path(rec, namespace, name, subresource) -> the URL path
function M.path(rec, namespace, name, sub)
  local p = rec.group == "" and ("/api/" .. rec.version) or ("/apis/" .. rec.group .. "/" .. rec.version)
  if rec.namespaced and namespace then p = p .. "/namespaces/" .. namespace end
  p = p .. "/" .. rec.resource
  if name then p = p .. "/" .. name end
  if sub then p = p .. "/" .. sub end
  return p
end

return M
