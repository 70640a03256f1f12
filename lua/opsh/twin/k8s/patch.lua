-- opsh.twin.k8s.patch: the four PATCH content types. Merge patch (RFC 7386), strategic merge patch
-- (lists with a merge key merged element by element, `$patch`/`$setElementOrder`/`$retainKeys`
-- directives), JSON patch (RFC 6902) and server-side apply (field ownership per Apply manager, lists
-- merged like strategic merge; conflicts with another Apply manager are 409 unless force).
local json = require("opsh.json")

local M = {}

local null = json.null

local function deepcopy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deepcopy(x) end
  return setmetatable(t, getmetatable(v))
end
M.deepcopy = deepcopy

local function is_obj(v) return type(v) == "table" and not json.is_array(v) and v ~= null end
local function is_arr(v) return type(v) == "table" and json.is_array(v) end

--- merge(target, patch) -> RFC 7386 result (target is modified)
local function merge(target, patch)
  if not is_obj(patch) then return deepcopy(patch) end
  if not is_obj(target) then target = {} end
  for k, v in pairs(patch) do
    if v == null then target[k] = nil else target[k] = merge(target[k], v) end
  end
  return target
end
M.merge = merge

-- the merge key of a list field (built-in types); nil: the list is replaced whole
local MERGE_KEYS = {containers = "name", initContainers = "name", ephemeralContainers = "name",
  volumes = "name", env = "name", volumeMounts = "mountPath", imagePullSecrets = "name",
  conditions = "type", hostAliases = "ip", topologySpreadConstraints = "topologyKey"}

local function merge_key(field, list)
  if field == "ports" then
    local first = list and list[1]
    if is_obj(first) and first.containerPort ~= nil then return "containerPort" end
    return "port"
  end
  return MERGE_KEYS[field]
end

local smp

local function smp_list(field, target, patch)
  local key = merge_key(field, patch)
  if not key or not is_arr(target) then
    local out = json.array()
    for _, v in ipairs(patch) do
      if not (is_obj(v) and v["$patch"]) then out[#out + 1] = deepcopy(v) end
    end
    return out
  end
  local out = json.array()
  local index = {}
  for _, v in ipairs(target) do
    out[#out + 1] = v
    if is_obj(v) and v[key] ~= nil then index[tostring(v[key])] = #out end
  end
  for _, v in ipairs(patch) do
    if is_obj(v) and v[key] ~= nil then
      local i = index[tostring(v[key])]
      if v["$patch"] == "delete" then
        if i then out[i] = false end
      elseif v["$patch"] == "replace" then
        local nv = deepcopy(v); nv["$patch"] = nil
        if i then out[i] = nv else out[#out + 1] = nv end
      elseif i then
        out[i] = smp(out[i], v)
      else
        out[#out + 1] = smp({}, v)
        index[tostring(v[key])] = #out
      end
    elseif is_obj(v) and v["$patch"] == "replace" then
      return json.array()
    end
  end
  local clean = json.array()
  for _, v in ipairs(out) do if v ~= false then clean[#clean + 1] = v end end
  return clean
end

--- smp(target, patch) -> strategic merge result
smp = function(target, patch)
  if not is_obj(patch) then return deepcopy(patch) end
  if not is_obj(target) then target = {} end
  if patch["$patch"] == "replace" then
    local nv = deepcopy(patch); nv["$patch"] = nil
    return nv
  end
  if patch["$patch"] == "delete" then return null end
  for k, v in pairs(patch) do
    -- directives ($setElementOrder/, $retainKeys, $deleteFromPrimitiveList/) only order or prune
    -- lists: the merged result is the same without them
    local directive = type(k) == "string" and k:sub(1, 1) == "$"
    if directive then
      target[k] = nil
    elseif v == null then
      target[k] = nil
    elseif is_arr(v) then
      target[k] = smp_list(k, target[k], v)
    else
      local r = smp(target[k], v)
      if r == null then target[k] = nil else target[k] = r end
    end
  end
  return target
end
M.strategic = smp

-- ---- JSON patch ----

local function unescape(t) return (t:gsub("~1", "/"):gsub("~0", "~")) end

local function parse_pointer(p)
  if type(p) ~= "string" or (p ~= "" and p:sub(1, 1) ~= "/") then return nil end
  local parts = {}
  for seg in (p:sub(2) .. "/"):gmatch("([^/]*)/") do parts[#parts + 1] = unescape(seg) end
  if p == "" then parts = {} end
  return parts
end

local function index_of(container, seg, adding)
  if is_arr(container) then
    if seg == "-" and adding then return #container + 1 end
    local n = tonumber(seg)
    if not n or math.tointeger(n) == nil or tostring(math.tointeger(n)) ~= seg then return nil end
    n = math.tointeger(n) + 1
    if n < 1 or n > #container + (adding and 1 or 0) then return nil end
    return n
  end
  if type(container) == "table" then return seg end
  return nil
end

local function resolve(doc, parts, upto)
  local cur = doc
  for i = 1, upto do
    if type(cur) ~= "table" then return nil end
    local k = index_of(cur, parts[i], false)
    if k == nil then return nil end
    cur = cur[k]
  end
  return cur
end

local function jp_fail(msg) error({jsonpatch = msg}, 0) end

local function jp_get(doc, path)
  local parts = parse_pointer(path) or jp_fail("invalid path " .. tostring(path))
  local v = resolve(doc, parts, #parts)
  if v == nil then jp_fail("the path " .. path .. " does not exist") end
  return v
end

local function jp_remove(doc, path)
  local parts = parse_pointer(path) or jp_fail("invalid path " .. tostring(path))
  if #parts == 0 then jp_fail("cannot remove the document") end
  local parent = resolve(doc, parts, #parts - 1)
  local k = parent and index_of(parent, parts[#parts], false)
  if k == nil or parent[k] == nil then jp_fail("unable to remove nonexistent key: " .. parts[#parts]) end
  local v = parent[k]
  if is_arr(parent) then table.remove(parent, k) else parent[k] = nil end
  return v
end

local function jp_add(doc, path, value, replace)
  local parts = parse_pointer(path) or jp_fail("invalid path " .. tostring(path))
  if #parts == 0 then return value end
  local parent = resolve(doc, parts, #parts - 1)
  if type(parent) ~= "table" then jp_fail("doc is missing path: " .. path) end
  local k = index_of(parent, parts[#parts], not replace)
  if k == nil then jp_fail("unable to find index for " .. path) end
  if replace then
    if parent[k] == nil then jp_fail("replace operation does not apply: doc is missing key: " .. path) end
    parent[k] = value
  elseif is_arr(parent) then
    table.insert(parent, k, value)
  else
    parent[k] = value
  end
  return doc
end

local function equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.equal = equal

--- json_patch(doc, ops) -> new doc, or nil + message
function M.json_patch(doc, ops)
  if not is_arr(ops) then return nil, "a JSON patch is a list of operations" end
  local ok, res = pcall(function()
    for _, op in ipairs(ops) do
      if not is_obj(op) then jp_fail("an operation is an object") end
      local o = op.op
      if o == "add" then doc = jp_add(doc, op.path, deepcopy(op.value), false)
      elseif o == "replace" then doc = jp_add(doc, op.path, deepcopy(op.value), true)
      elseif o == "remove" then jp_remove(doc, op.path)
      elseif o == "move" then local v = jp_remove(doc, op.from); doc = jp_add(doc, op.path, v, false)
      elseif o == "copy" then doc = jp_add(doc, op.path, deepcopy(jp_get(doc, op.from)), false)
      elseif o == "test" then
        if not equal(jp_get(doc, op.path), op.value) then jp_fail("testing value " .. op.path .. " failed") end
      else jp_fail("unexpected kind of operation: " .. tostring(o)) end
    end
    return doc
  end)
  if ok then return res end
  if type(res) == "table" and res.jsonpatch then return nil, res.jsonpatch end
  error(res, 0)
end

-- ---- server-side apply ----

-- leaf paths of an applied configuration ("spec.replicas", "spec.template.spec.containers[name=web].image")
local function leaves(v, prefix, out, field)
  if is_obj(v) then
    local any = false
    for k, x in pairs(v) do
      any = true
      leaves(x, prefix == "" and k or (prefix .. "." .. k), out, k)
    end
    if not any and prefix ~= "" then out[prefix] = v end
  elseif is_arr(v) then
    local key = merge_key(field, v)
    if key and #v > 0 then
      for _, e in ipairs(v) do
        if is_obj(e) and e[key] ~= nil then
          leaves(e, prefix .. "[" .. key .. "=" .. tostring(e[key]) .. "]", out, nil)
        end
      end
    else
      out[prefix] = v
    end
  else
    out[prefix] = v
  end
  return out
end
M.leaves = leaves

local SKIP = {["apiVersion"] = true, ["kind"] = true, ["metadata.name"] = true, ["metadata.namespace"] = true}

local function fields_v1(paths)
  local root = {}
  for p in pairs(paths) do
    local node = root
    for seg in p:gmatch("[^.%[]+%]?") do
      local name = seg:match("^(.-)%]$")
      local k
      if name then
        local mk, mv = name:match("^(.-)=(.*)$")
        local n = tonumber(mv)
        k = "k:" .. json.encode({[mk] = n and math.tointeger(n) or mv})
      else
        k = "f:" .. seg
      end
      node[k] = node[k] or {}
      node = node[k]
    end
  end
  return root
end

local function path_set(entry)
  local set = {}
  if type(entry) == "table" and type(entry["opsh.io/paths"]) == "table" then
    for _, p in ipairs(entry["opsh.io/paths"]) do set[p] = true end
  end
  return set
end

-- the apiserver's client-side to server-side apply upgrade: fields kubectl's client-side apply set (the
-- object carries its last-applied annotation) pass to the applier without a conflict
local function upgrading(live, conflicts)
  local ann = live.metadata and live.metadata.annotations
  if not (ann and ann["kubectl.kubernetes.io/last-applied-configuration"]) then return false end
  for _, c in ipairs(conflicts) do
    if c.manager ~= "kubectl-client-side-apply" then return false end
  end
  return true
end

--- apply(live, applied, manager, force, now) -> merged object, or nil + conflicts list (each "path"
-- owned by "manager"). live nil: a create. Fields this manager applied before and no longer applies are
-- removed (when no other manager applied them).
function M.apply(live, applied, manager, force, now, api_version)
  local mine = leaves(applied, "", {})
  for p in pairs(SKIP) do mine[p] = nil end
  local managed = json.array()
  local previous = {}
  local conflicts = {}
  local current_leaves = live and leaves(live, "", {}) or {}
  for _, e in ipairs(live and live.metadata and live.metadata.managedFields or {}) do
    if e.manager == manager and e.operation == "Apply" then
      previous = path_set(e)
    else
      local theirs = path_set(e)
      local keep = json.array()
      for p in pairs(theirs) do
        if mine[p] ~= nil and current_leaves[p] ~= nil and not equal(current_leaves[p], mine[p]) then
          if force then theirs[p] = nil else conflicts[#conflicts + 1] = {path = p, manager = e.manager} end
        end
      end
      for p in pairs(theirs) do keep[#keep + 1] = p end
      table.sort(keep)
      if #keep > 0 then
        e["opsh.io/paths"] = keep
        e.fieldsV1 = fields_v1(theirs)
        managed[#managed + 1] = e
      end
    end
  end
  if #conflicts > 0 and not force and upgrading(live, conflicts) then
    return M.apply(live, applied, manager, true, now, api_version)
  end
  if #conflicts > 0 then
    table.sort(conflicts, function(a, b) return a.path < b.path end)
    return nil, conflicts
  end
  local result = live and deepcopy(live) or {}
  if live then
    -- fields this manager owned before and no longer applies go away
    local others = {}
    for _, e in ipairs(managed) do for p in pairs(path_set(e)) do others[p] = true end end
    for p in pairs(previous) do
      if mine[p] == nil and not others[p] and not p:find("%[") then
        local parent = result
        local segs = {}
        for seg in p:gmatch("[^.]+") do segs[#segs + 1] = seg end
        for i = 1, #segs - 1 do parent = type(parent) == "table" and parent[segs[i]] or nil end
        if type(parent) == "table" then parent[segs[#segs]] = nil end
      end
    end
  end
  local a = deepcopy(applied)
  a.metadata = a.metadata or {}
  a.metadata.managedFields = nil
  result = smp(result, a)
  local keep = json.array()
  for p in pairs(mine) do keep[#keep + 1] = p end
  table.sort(keep)
  managed[#managed + 1] = {manager = manager, operation = "Apply", apiVersion = api_version, time = now,
    fieldsType = "FieldsV1", fieldsV1 = fields_v1(mine), ["opsh.io/paths"] = keep}
  result.metadata = result.metadata or {}
  result.metadata.managedFields = managed
  return result
end

--- record_update(obj, manager, changed_paths, now, api_version): an Update manager's entry
function M.record_update(obj, manager, patch_body, now, api_version)
  if not manager or manager == "" then return end
  obj.metadata = obj.metadata or {}
  local mf = obj.metadata.managedFields
  if not is_arr(mf) then mf = json.array() end
  local paths = leaves(patch_body or {}, "", {})
  for p in pairs(SKIP) do paths[p] = nil end
  for p in pairs(paths) do if p:find("^metadata%.managedFields") or p:find("^metadata%.resourceVersion") then paths[p] = nil end end
  local entry
  for _, e in ipairs(mf) do if e.manager == manager and e.operation == "Update" then entry = e end end
  if not entry then
    entry = {manager = manager, operation = "Update", apiVersion = api_version, fieldsType = "FieldsV1"}
    mf[#mf + 1] = entry
  end
  local set = path_set(entry)
  for p in pairs(paths) do set[p] = true end
  -- fields taken by this update are no longer owned by Apply managers
  for _, e in ipairs(mf) do
    if e ~= entry and type(e["opsh.io/paths"]) == "table" then
      local kept = json.array()
      for _, p in ipairs(e["opsh.io/paths"]) do if not paths[p] then kept[#kept + 1] = p end end
      e["opsh.io/paths"] = kept
      local s = {}; for _, p in ipairs(kept) do s[p] = true end
      e.fieldsV1 = fields_v1(s)
    end
  end
  local list = json.array()
  for p in pairs(set) do list[#list + 1] = p end
  table.sort(list)
  entry["opsh.io/paths"] = list
  entry.fieldsV1 = fields_v1(set)
  entry.time = now
  obj.metadata.managedFields = mf
end

return M
