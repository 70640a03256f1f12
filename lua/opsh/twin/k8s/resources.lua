-- opsh.twin.k8s.resources: the verbs on stored resources — get, list (selectors, limit/continue,
-- Table), create, replace, the four patch types, delete, deletecollection, the scale and status
-- subresources and pod eviction — with dryRun=All and Status errors as kube-apiserver gives them.
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local yaml = require("opsh.yaml")
local defaults = require("opsh.twin.k8s.defaults")
local kinds = require("opsh.twin.k8s.kinds")
local objects = require("opsh.twin.k8s.objects")
local patch = require("opsh.twin.k8s.patch")
local selectors = require("opsh.twin.k8s.selectors")
local status = require("opsh.twin.k8s.status")
local tables = require("opsh.twin.k8s.tables")

local M = {}

local arr = json.array

local function json_answer(code, text)
  return {status = code, headers = {["Content-Type"] = "application/json"}, body = text}
end

local function is_hpa_v1(rt) return rt.r.kind == "HorizontalPodAutoscaler" and rt.version == "v1" end

-- an object as the requested version shows it
local function out(rt, o)
  if is_hpa_v1(rt) then return defaults.hpa_to_v1(o) end
  return o
end

local function dry(rt)
  local d = rt.req.query.dryRun
  if d == nil then return false end
  if d ~= "All" then status.fail(400, 'invalid dry run option: "' .. d .. '"; the only accepted value is "All"') end
  return true
end

local function body_of(rt)
  local b = rt.req.body or ""
  if (rt.req.headers["content-type"] or ""):find("protobuf", 1, true) then
    -- client-go's typed clients (kubectl create namespace|configmap|secret ...) send protobuf: not spoken here
    status.fail(415, "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml")
  end
  local ok, v = pcall(json.decode, b)
  if not ok then ok, v = pcall(yaml.decode, b) end
  if not ok or type(v) ~= "table" then
    status.fail(400, "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml")
  end
  return v
end

-- ---- selectors and list ----

function M.matchers(rt)
  local q = rt.req.query
  local lm, lerr = selectors.labels(q.labelSelector)
  if lerr then status.fail(400, lerr) end
  local fm, ferr = selectors.fields(q.fieldSelector, rt.r.fields)
  if ferr then status.fail(400, ferr) end
  return lm, fm
end

local function encode_token(rv, key)
  return crypto.base64url_encode(json.encode({rv = rv, start = key}))
end

local function decode_token(tok)
  local ok, t = pcall(function() return json.decode(crypto.base64url_decode(tok)) end)
  if not ok or type(t) ~= "table" or math.type(t.rv) ~= "integer" or type(t.start) ~= "string" then
    status.fail(400, "continue key is not valid: illegal base64 data")
  end
  return t
end

--- select(rt, ns) -> matching entries (decoded when a selector needed it), list version, continue token,
-- remaining count. Honours limit and continue.
function M.select(rt, ns, opts)
  local q = rt.req.query
  local lm, fm = M.matchers(rt)
  local after, list_rv
  if q.continue and q.continue ~= "" then
    local t = decode_token(q.continue)
    after, list_rv = t.start, t.rv
  end
  local entries, version = objects.entries(rt.ctx, rt.r, ns, after)
  list_rv = list_rv or version
  local limit = not (opts and opts.all) and math.tointeger(tonumber(q.limit or "")) or nil
  if limit and limit <= 0 then limit = nil end
  local chosen, n = {}, 0
  local token, remaining
  for i, e in ipairs(entries) do
    local keep = true
    if lm or fm then
      local o = objects.decode(e)
      keep = (not lm or lm(o.metadata.labels)) and (not fm or fm(o))
    end
    if keep then
      if limit and n == limit then
        token = encode_token(list_rv, entries[i - 1].key)
        if not (lm or fm) then remaining = #entries - i + 1 end
        break
      end
      n = n + 1
      chosen[n] = e
    end
  end
  return chosen, list_rv, token, remaining
end

local function list_meta(rv, token, remaining)
  return {resourceVersion = tostring(rv), continue = token, remainingItemCount = remaining}
end

function M.list(rt)
  local ns = rt.ns
  local chosen, rv, token, remaining = M.select(rt, ns)
  local r = rt.r
  if tables.wants(rt.req) then
    local objs = {}
    for i, e in ipairs(chosen) do objs[i] = out(rt, objects.decode(e)) end
    return tables.table(r.kind, objs, list_meta(rv, token, remaining), rt.req.query.includeObject)
  end
  local api_version = kinds.api_version(r, rt.version)
  local head = string.format('{"apiVersion":%s,"items":[', json.encode(api_version))
  local tail = string.format('],"kind":"%sList","metadata":%s}', r.kind, json.encode(list_meta(rv, token, remaining)))
  local v1 = is_hpa_v1(rt)
  local function text(e) return v1 and json.encode(out(rt, objects.decode(e))) or objects.served(e.e) end
  if #chosen <= M.STREAM_OVER then
    local parts = {}
    for i, e in ipairs(chosen) do parts[i] = text(e) end
    return json_answer(200, head .. table.concat(parts, ",") .. tail)
  end
  -- a big list goes out in chunks: no 16 MB string is ever built
  local res = rt.req:stream(200, {["Content-Type"] = "application/json"})
  local ok = pcall(res.write, res, head)
  local i, n = 1, #chosen
  while ok and i <= n do
    local parts, last = {}, math.min(n, i + M.CHUNK - 1)
    for j = i, last do parts[#parts + 1] = text(chosen[j]) end
    ok = pcall(res.write, res, (i > 1 and "," or "") .. table.concat(parts, ","))
    i = last + 1
  end
  if ok then pcall(res.write, res, tail) end
  pcall(res.close, res)
end

M.STREAM_OVER = 1000  -- items: lists longer than this are streamed
M.CHUNK = 500         -- items per chunk

-- ---- single objects ----

function M.get(rt)
  local o = objects.must_get(rt.ctx, rt.r, rt.ns, rt.name)
  if tables.wants(rt.req) then
    return tables.table(rt.r.kind, {out(rt, o)}, {resourceVersion = o.metadata.resourceVersion}, rt.req.query.includeObject)
  end
  return out(rt, o)
end

local function check_target(rt, o)
  if type(o) ~= "table" then status.fail(400, "the body must be an object") end
  o.metadata = o.metadata or {}
  if rt.r.namespaced and o.metadata.namespace and rt.ns and o.metadata.namespace ~= rt.ns then
    status.fail(400, "the namespace of the provided object does not match the namespace sent on the request")
  end
  if o.kind and o.kind ~= rt.r.kind then
    status.fail(400, string.format("the API version in the data (%s) does not match the expected API version (%s)",
      tostring(o.apiVersion), kinds.api_version(rt.r, rt.version)))
  end
end

local function to_internal(rt, o, current)
  if is_hpa_v1(rt) then return defaults.hpa_from_v1(o, current) end
  return o
end

--- create(rt, [obj]) -> 201 with the object (or the would-be object on dryRun)
function M.create(rt, given)
  local o = given or body_of(rt)
  check_target(rt, o)
  o = to_internal(rt, o)
  if rt.r.namespaced and rt.ns and rt.r.kind ~= "Namespace" then
    if not objects.get(rt.ctx, kinds.of_kind("Namespace"), nil, rt.ns) then
      status.fail(404, string.format('namespaces "%s" not found', rt.ns), "NotFound", {name = rt.ns, kind = "namespaces"})
    end
  end
  if not o.metadata.name and o.metadata.generateName then
    o.metadata.name = o.metadata.generateName .. crypto.hex_encode(crypto.random_bytes(3)):sub(1, 5)
  end
  objects.fresh(rt.r, o, rt.ns)
  defaults.validate(rt.r, o)
  defaults.on_create(rt.r, o)
  local manager = rt.req.query.fieldManager
  if manager and manager ~= "" and not given then patch.record_update(o, manager, o, objects.now(), o.apiVersion) end
  if objects.get(rt.ctx, rt.r, o.metadata.namespace, o.metadata.name) then status.already_exists(rt.r, o.metadata.name) end
  if not dry(rt) then objects.put(rt.ctx, rt.r, o, 0) end
  if rt.ctx.on_change then rt.ctx.on_change(rt.r, o) end
  return {status = 201, json = out(rt, o)}
end

-- write `new` over `old` (version v) unless dry-run; 409 when someone wrote in between
local function commit(rt, old, new, v, sub)
  defaults.on_update(rt.r, old, new, sub)
  defaults.validate(rt.r, new)
  if rt.r.kind == "HorizontalPodAutoscaler" then new.apiVersion = "autoscaling/v2" else new.apiVersion = old.apiVersion end
  new.kind = old.kind
  if not dry(rt) then
    objects.put(rt.ctx, rt.r, new, v)
    if rt.ctx.on_change then rt.ctx.on_change(rt.r, new) end
  else
    new.metadata.resourceVersion = tostring(v)
  end
  return new
end

function M.replace(rt)
  local o = body_of(rt)
  check_target(rt, o)
  local cur, v = objects.must_get(rt.ctx, rt.r, rt.ns, rt.name)
  if o.metadata.name and o.metadata.name ~= rt.name then
    status.fail(400, "the name of the object (" .. tostring(o.metadata.name) .. ") does not match the name on the URL (" .. rt.name .. ")")
  end
  local want = o.metadata.resourceVersion
  if want and want ~= "" and want ~= tostring(v) then status.conflict(rt.r, rt.name) end
  o = to_internal(rt, o, cur)
  if rt.sub == "status" then o.spec = cur.spec end
  return out(rt, commit(rt, cur, o, v, rt.sub))
end

local function patch_type(rt)
  local ct = (rt.req.headers["content-type"] or ""):lower():gsub(";.*$", ""):gsub("%s", "")
  if ct == "application/merge-patch+json" then return "merge"
  elseif ct == "application/strategic-merge-patch+json" then
    if rt.r.crd then
      status.fail(415, "the body of the request was in an unknown format - accepted media types include: "
        .. "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/apply-patch+cbor")
    end
    return "strategic"
  elseif ct == "application/json-patch+json" then return "json"
  elseif ct == "application/apply-patch+yaml" then return "apply" end
  status.fail(415, "the body of the request was in an unknown format - accepted media types include: "
    .. "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json")
end

-- SMP drops fields the kind does not have (a warning, like the real server's fieldValidation=Warn)
local function unknown_fields(rt, p)
  local warnings = {}
  if is_hpa_v1(rt) or rt.r.kind ~= "HorizontalPodAutoscaler" then return warnings end
  if type(p) == "table" and type(p.spec) == "table" and p.spec.targetCPUUtilizationPercentage ~= nil then
    p.spec.targetCPUUtilizationPercentage = nil
    warnings[#warnings + 1] = 'unknown field "spec.targetCPUUtilizationPercentage"'
  end
  return warnings
end

function M.patch(rt)
  local kind = patch_type(rt)
  local q = rt.req.query
  local body = rt.req.body or ""
  local p
  if kind == "apply" then
    local ok, v = pcall(yaml.decode, body)
    if not ok or type(v) ~= "table" then status.fail(400, "error decoding YAML: " .. tostring(v)) end
    p = v
    if not q.fieldManager or q.fieldManager == "" then
      status.fail(400, "PATCH /apply requires fieldManager to be set", "BadRequest")
    end
  else
    local ok, v = pcall(json.decode, body)
    if not ok then status.fail(400, "error decoding patch: " .. tostring(v)) end
    p = v
  end
  local warnings = kind ~= "json" and kind ~= "apply" and unknown_fields(rt, p) or {}
  for _ = 1, 5 do
    local cur, v = objects.get(rt.ctx, rt.r, rt.ns, rt.name)
    local new
    if not cur then
      if kind ~= "apply" or rt.sub then status.not_found(rt.r, rt.name) end
      check_target(rt, p)
      p.metadata.name = p.metadata.name or rt.name
      local created = patch.apply(nil, p, q.fieldManager, true, objects.now(), kinds.api_version(rt.r, rt.version))
      return M.create(rt, to_internal(rt, created))
    end
    local view = out(rt, patch.deepcopy(cur))
    if rt.sub == "scale" then view = defaults.scale_of(cur) end
    if kind == "merge" then new = patch.merge(view, p)
    elseif kind == "strategic" then new = patch.strategic(view, p)
    elseif kind == "json" then
      local res, err = patch.json_patch(view, p)
      if not res then status.fail(422, err, "Invalid") end
      new = res
    else
      check_target(rt, p)
      local conflicts
      new, conflicts = patch.apply(view, p, q.fieldManager, q.force == "true", objects.now(), kinds.api_version(rt.r, rt.version))
      if not new then
        local causes, msgs = arr(), {}
        for i, c in ipairs(conflicts) do
          causes[i] = {type = "FieldManagerConflict", message = string.format('conflict with "%s": .%s', c.manager, c.path), field = "." .. c.path}
          msgs[i] = string.format('conflict with "%s": .%s', c.manager, c.path)
        end
        status.fail(409, string.format("Apply failed with %d conflict%s: %s", #causes, #causes > 1 and "s" or "",
          table.concat(msgs, "\n")), "Conflict", {causes = causes})
      end
    end
    if type(new) ~= "table" then status.fail(422, "the patch did not produce an object", "Invalid") end
    if rt.sub == "scale" then
      local replicas = new.spec and new.spec.replicas
      if math.type(replicas) ~= "integer" or replicas < 0 then
        status.invalid({kind = "Scale", group = "autoscaling"}, rt.name, {{field = "spec.replicas",
          message = string.format("Invalid value: %s: must be greater than or equal to 0", tostring(replicas))}})
      end
      local full = patch.deepcopy(cur)
      full.spec.replicas = replicas
      new = full
    else
      new = to_internal(rt, new, cur)
    end
    if kind ~= "apply" then patch.record_update(new, q.fieldManager, p, objects.now(), new.apiVersion) end
    new.metadata = new.metadata or {}
    if rt.sub ~= "scale" and new.metadata.resourceVersion and new.metadata.resourceVersion ~= tostring(v) then
      status.conflict(rt.r, rt.name)
    end
    local ok, res = pcall(commit, rt, cur, new, v, rt.sub == "status" and "status" or nil)
    if ok then
      local result = rt.sub == "scale" and defaults.scale_of(res) or out(rt, res)
      if #warnings > 0 then
        local h = {["Content-Type"] = "application/json"}
        local ws = {}
        for i, w in ipairs(warnings) do ws[i] = '299 - "' .. w:gsub('"', '\\"') .. '"' end
        h.Warning = ws
        return {status = 200, headers = h, body = json.encode(result)}
      end
      return result
    end
    local conflict = type(res) == "table" and res.k8s_status and res.k8s_status.status == 409
    if not conflict or kind == "apply" and false then error(res, 0) end
  end
  status.conflict(rt.r, rt.name)
end

-- ---- delete ----

local function delete_status(rt, o)
  return {kind = "Status", apiVersion = "v1", metadata = {}, status = "Success",
    details = {name = o.metadata.name, group = rt.r.group ~= "" and rt.r.group or nil, kind = rt.r.resource, uid = o.metadata.uid}}
end

function M.delete(rt)
  local o = objects.must_get(rt.ctx, rt.r, rt.ns, rt.name)
  if dry(rt) then return delete_status(rt, o) end
  local body = rt.req.body and rt.req.body ~= "" and select(2, pcall(json.decode, rt.req.body)) or nil
  local pre = type(body) == "table" and body.preconditions
  if type(pre) == "table" and pre.resourceVersion and pre.resourceVersion ~= o.metadata.resourceVersion then
    status.conflict(rt.r, rt.name, "the ResourceVersion in the precondition (" .. pre.resourceVersion
      .. ") does not match the ResourceVersion in record (" .. o.metadata.resourceVersion .. "). The object might have been modified")
  end
  if rt.r.kind == "Namespace" then
    local changes = {}
    for _, r in ipairs(kinds.list) do
      if r.namespaced and not r.computed then
        for _, e in ipairs((objects.entries(rt.ctx, r, rt.name))) do
          changes[#changes + 1] = {r = r, delete = {rt.name, e.key:match("^[^/]+/(.*)$")}}
        end
      end
    end
    changes[#changes + 1] = {r = rt.r, delete = {nil, rt.name}}
    objects.txn(rt.ctx, changes)
  else
    objects.delete(rt.ctx, rt.r, rt.ns, rt.name)
  end
  if rt.ctx.on_change then rt.ctx.on_change(rt.r, o, true) end
  if rt.r.kind == "Pod" or rt.r.kind == "Deployment" then return delete_status(rt, o) end
  return delete_status(rt, o)
end

function M.deletecollection(rt)
  local chosen = M.select(rt, rt.ns, {all = true})
  local items = arr()
  local changes = {}
  for i, e in ipairs(chosen) do
    local o = objects.decode(e)
    items[i] = out(rt, o)
    changes[i] = {r = rt.r, delete = {o.metadata.namespace, o.metadata.name}}
  end
  local v
  if not dry(rt) then
    v = objects.txn(rt.ctx, changes)
    if rt.ctx.on_change then for _, o in ipairs(items) do rt.ctx.on_change(rt.r, o, true) end end
  end
  return {kind = rt.r.kind .. "List", apiVersion = kinds.api_version(rt.r, rt.version),
    metadata = {resourceVersion = tostring(v or rt.ctx.store:current())}, items = items}
end

-- ---- subresources ----

function M.get_scale(rt)
  return defaults.scale_of((objects.must_get(rt.ctx, rt.r, rt.ns, rt.name)))
end

function M.put_scale(rt)
  local s = body_of(rt)
  local cur, v = objects.must_get(rt.ctx, rt.r, rt.ns, rt.name)
  local want = s.metadata and s.metadata.resourceVersion
  if want and want ~= "" and want ~= tostring(v) then status.conflict(rt.r, rt.name) end
  local replicas = s.spec and s.spec.replicas
  if math.type(replicas) ~= "integer" or replicas < 0 then
    status.invalid({kind = "Scale", group = "autoscaling"}, rt.name, {{field = "spec.replicas",
      message = string.format("Invalid value: %s: must be greater than or equal to 0", tostring(replicas))}})
  end
  local new = patch.deepcopy(cur)
  new.spec.replicas = replicas
  return defaults.scale_of(commit(rt, cur, new, v))
end

function M.evict(rt)
  local o = objects.must_get(rt.ctx, rt.r, rt.ns, rt.name)
  if not dry(rt) then
    objects.delete(rt.ctx, rt.r, rt.ns, rt.name)
    if rt.ctx.on_change then rt.ctx.on_change(rt.r, o, true) end
  end
  return {status = 201, json = {kind = "Status", apiVersion = "v1", metadata = {}, status = "Success", code = 201}}
end

return M
