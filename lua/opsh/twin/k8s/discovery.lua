-- opsh.twin.k8s.discovery: /version, legacy and aggregated (apidiscovery.k8s.io/v2) discovery, and the
-- OpenAPI v3 documents `kubectl apply` needs to delegate validation to the server (a PATCH operation per
-- kind with x-kubernetes-group-version-kind and a fieldValidation query parameter).
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local kinds = require("opsh.twin.k8s.kinds")

local M = {}

local arr = json.array
local AGG_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

function M.version()
  return {major = "1", minor = "32", gitVersion = "v1.32.4", gitCommit = "59526cd4867447956156ae3a602fcbac10a2c335",
    gitTreeState = "clean", buildDate = "2025-04-22T16:02:27Z", goVersion = "go1.23.6", compiler = "gc",
    platform = "linux/amd64"}
end

local function copy(list) local t = arr(); for i, v in ipairs(list or {}) do t[i] = v end; return t end

local function resources_of(group, version)
  local out = {}
  for _, r in ipairs(kinds.list) do
    if r.group == group then
      for _, v in ipairs(r.versions) do if v == version then out[#out + 1] = r end end
    end
  end
  return out
end

-- legacy APIResourceList for one group-version
function M.resource_list(group, version)
  local rs = resources_of(group, version)
  if #rs == 0 then return nil end
  local items = arr()
  for _, r in ipairs(rs) do
    local e = {name = r.resource, singularName = r.kind:lower(), namespaced = r.namespaced, kind = r.kind,
      verbs = copy(r.verbs)}
    if r.short then e.shortNames = copy(r.short) end
    if r.categories then e.categories = copy(r.categories) end
    items[#items + 1] = e
    for _, s in ipairs(r.subresources or {}) do
      items[#items + 1] = {name = r.resource .. "/" .. s[1], singularName = "", namespaced = r.namespaced,
        kind = s[2], verbs = copy(s[3]), group = s.group, version = s.version}
    end
  end
  return {kind = "APIResourceList", apiVersion = "v1", groupVersion = kinds.api_version(rs[1], version),
    resources = items}
end

local function group_entry(g)
  local versions = arr()
  for i, v in ipairs(g.versions) do versions[i] = {groupVersion = g.name .. "/" .. v, version = v} end
  return {name = g.name, versions = versions, preferredVersion = versions[1]}
end

function M.group(name)
  for _, g in ipairs(kinds.groups) do
    if g.name == name then
      local e = group_entry(g)
      e.kind, e.apiVersion = "APIGroup", "v1"
      return e
    end
  end
end

local function aggregated(group_names)
  local items = arr()
  for _, gname in ipairs(group_names) do
    local versions = arr()
    local vs = {"v1"}
    for _, g in ipairs(kinds.groups) do if g.name == gname then vs = g.versions end end
    for _, v in ipairs(vs) do
      local res = arr()
      for _, r in ipairs(resources_of(gname, v)) do
        local e = {resource = r.resource, responseKind = {group = r.group, version = v, kind = r.kind},
          scope = r.namespaced and "Namespaced" or "Cluster", singularResource = r.kind:lower(),
          verbs = copy(r.verbs)}
        if r.short then e.shortNames = copy(r.short) end
        if r.categories then e.categories = copy(r.categories) end
        if r.subresources then
          e.subresources = arr()
          for _, s in ipairs(r.subresources) do
            e.subresources[#e.subresources + 1] = {subresource = s[1],
              responseKind = {group = s.group or r.group, version = s.version or v, kind = s[2]}, verbs = copy(s[3])}
          end
        end
        res[#res + 1] = e
      end
      versions[#versions + 1] = {version = v, resources = res, freshness = "Current"}
    end
    items[#items + 1] = {metadata = {name = gname, creationTimestamp = json.null}, versions = versions}
  end
  return {kind = "APIGroupDiscoveryList", apiVersion = "apidiscovery.k8s.io/v2", metadata = {}, items = items}
end

local function wants_aggregated(req)
  local a = req.headers.accept or ""
  return a:find("as=APIGroupDiscoveryList", 1, true) and a:find("g=apidiscovery.k8s.io;v=v2", 1, true)
end

local function agg_answer(body)
  return {status = 200, headers = {["Content-Type"] = AGG_TYPE}, body = json.encode(body)}
end

--- api(req, host) -> the /api answer
function M.api(req, host)
  if wants_aggregated(req) then return agg_answer(aggregated({""})) end
  return {kind = "APIVersions", versions = arr({"v1"}),
    serverAddressByClientCIDRs = arr({{clientCIDR = "0.0.0.0/0", serverAddress = host}})}
end

--- apis(req) -> the /apis answer
function M.apis(req)
  local names = {}
  for i, g in ipairs(kinds.groups) do names[i] = g.name end
  if wants_aggregated(req) then return agg_answer(aggregated(names)) end
  local groups = arr()
  for i, g in ipairs(kinds.groups) do groups[i] = group_entry(g) end
  return {kind = "APIGroupList", apiVersion = "v1", groups = groups}
end

-- ---- OpenAPI v3 ----

local function gv_path(group, version)
  return group == "" and ("api/" .. version) or ("apis/" .. group .. "/" .. version)
end

local docs, root
local function build()
  docs = {}
  local paths = {}
  local gvs = {{"", "v1"}}
  for _, g in ipairs(kinds.groups) do
    for _, v in ipairs(g.versions) do gvs[#gvs + 1] = {g.name, v} end
  end
  for _, gv in ipairs(gvs) do
    local group, version = gv[1], gv[2]
    local p = {}
    local schemas = {}
    for _, r in ipairs(resources_of(group, version)) do
      if not r.computed then
        local base = "/" .. gv_path(group, version) .. (r.namespaced and "/namespaces/{namespace}/" or "/")
          .. r.resource .. "/{name}"
        local gvk = {group = group, version = version, kind = r.kind}
        local params = arr({{name = "fieldValidation", ["in"] = "query", schema = {type = "string"}},
          {name = "fieldManager", ["in"] = "query", schema = {type = "string"}},
          {name = "dryRun", ["in"] = "query", schema = {type = "string"}}})
        p[base] = {
          get = {operationId = "read" .. r.kind, ["x-kubernetes-action"] = "get", ["x-kubernetes-group-version-kind"] = gvk},
          put = {operationId = "replace" .. r.kind, parameters = params, ["x-kubernetes-action"] = "put",
            ["x-kubernetes-group-version-kind"] = gvk},
          patch = {operationId = "patch" .. r.kind, parameters = params, ["x-kubernetes-action"] = "patch",
            ["x-kubernetes-group-version-kind"] = gvk},
        }
        local post = base:gsub("/{name}$", "")
        p[post] = {post = {operationId = "create" .. r.kind, parameters = params, ["x-kubernetes-action"] = "post",
          ["x-kubernetes-group-version-kind"] = gvk}}
        local id = (group == "" and "io.k8s.api.core" or ("io.k8s.api." .. group)) .. "." .. version .. "." .. r.kind
        schemas[id] = {type = "object", ["x-kubernetes-group-version-kind"] = arr({gvk}),
          properties = {apiVersion = {type = "string"}, kind = {type = "string"},
            metadata = {type = "object"}, spec = {type = "object"}, status = {type = "object"}}}
      end
    end
    local doc = json.encode({openapi = "3.0.0", info = {title = "Kubernetes", version = "v1.32.4"}, paths = p,
      components = {schemas = schemas}}, {sort_keys = true})
    local hash = crypto.sha256_hex(doc):sub(1, 32):upper()
    docs[gv_path(group, version)] = doc
    paths[gv_path(group, version)] = {serverRelativeURL = "/openapi/v3/" .. gv_path(group, version) .. "?hash=" .. hash}
  end
  root = json.encode({paths = paths})
end

--- openapi(rest) -> answer for /openapi/v3[/rest]
function M.openapi(rest)
  if not docs then build() end
  if rest == nil or rest == "" then
    return {status = 200, headers = {["Content-Type"] = "application/json"}, body = root}
  end
  local doc = docs[rest]
  if not doc then return nil end
  return {status = 200, headers = {["Content-Type"] = "application/json"}, body = doc}
end

return M
