-- opsh.twin.k8s.objects: Kubernetes objects in the twin store. Each resource of a cluster is one
-- collection (`k8s.<cluster>.<plural>`, key `<namespace>/<name>` or `<name>`); the stored text has no
-- resourceVersion: it is the key's store version, spliced into the text when served, so a list of
-- 10,000 pods is built from the stored texts without decoding them.
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local kinds = require("opsh.twin.k8s.kinds")
local status = require("opsh.twin.k8s.status")
local time = require("opsh.time")

local M = {}

function M.now() return time.format(time.now(), {utc = true}) end

function M.uid()
  local h = crypto.hex_encode(crypto.random_bytes(16))
  return string.format("%s-%s-4%s-a%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(14, 16), h:sub(18, 20), h:sub(21, 32))
end

--- inject(text, version) -> the object text with metadata.resourceVersion
function M.inject(text, version)
  local p = text:find('"metadata":{', 1, true)
  if not p then return text end
  local sep = text:sub(p + 12, p + 12) == "}" and "" or ","
  return text:sub(1, p + 11) .. '"resourceVersion":"' .. version .. '"' .. sep .. text:sub(p + 12)
end

local function encode(obj)
  local md = obj.metadata
  local rv = md and md.resourceVersion
  if md then md.resourceVersion = nil end
  local text = json.encode(obj, {sort_keys = true})
  if md then md.resourceVersion = rv end
  return text
end
M.encode = encode

--- stripped(obj) -> obj without metadata.resourceVersion (the store's version stands for it)
function M.stripped(obj)
  if obj.metadata then obj.metadata.resourceVersion = nil end
  return obj
end

--- get(ctx, r, ns, name) -> object (resourceVersion set), version | nil
function M.get(ctx, r, ns, name)
  local coll = ctx.store:raw()[kinds.collection(ctx.cluster, r)]
  local e = coll and coll[kinds.key(r, ns, name)]
  if not e then return nil end
  local obj = json.decode(e.text)
  obj.metadata.resourceVersion = tostring(e.v)
  return obj, e.v
end

--- must_get(ctx, r, ns, name) -> object, version (404 Status otherwise)
function M.must_get(ctx, r, ns, name)
  local obj, v = M.get(ctx, r, ns, name)
  if not obj then status.not_found(r, name) end
  return obj, v
end

-- sorted keys per (collection, namespace), kept while the store does not change: a repeated list of
-- 10,000 pods sorts nothing
local key_cache = {}

local function sorted_keys(ctx, coll_name, coll, prefix)
  local version = ctx.store:current()
  local id = coll_name .. "|" .. (prefix or "")
  local hit = key_cache[id]
  if hit and hit.version == version then return hit.keys end
  local keys, n, plen = {}, 0, prefix and #prefix or 0
  for k in pairs(coll) do
    if not prefix or k:sub(1, plen) == prefix then n = n + 1; keys[n] = k end
  end
  table.sort(keys)
  key_cache[id] = {version = version, keys = keys}
  return keys
end

-- served texts (resourceVersion spliced in), per store entry (a change makes a new entry)
local text_cache = setmetatable({}, {__mode = "k"})

--- served(e) -> the text of the store's entry e {text, v} as served
function M.served(e)
  local c = text_cache[e]
  if c then return c end
  c = M.inject(e.text, e.v)
  text_cache[e] = c
  return c
end

--- entries(ctx, r, ns[, after]) -> sorted list of {key, text, v, e} of r in namespace ns (nil: all), version
function M.entries(ctx, r, ns, after)
  local data, version = ctx.store:raw()
  local name = kinds.collection(ctx.cluster, r)
  local coll = data[name]
  local out = {}
  if not coll then return out, version end
  local prefix = (ns and r.namespaced) and (ns .. "/") or nil
  local keys = sorted_keys(ctx, name, coll, prefix)
  local n = 0
  for _, k in ipairs(keys) do
    if not after or k > after then
      local e = coll[k]
      if e then n = n + 1; out[n] = {key = k, text = e.text, v = e.v, e = e} end
    end
  end
  return out, version
end

--- decode(entry) -> the entry's object with resourceVersion set (cached on the entry)
function M.decode(entry)
  if not entry.obj then
    entry.obj = json.decode(entry.text)
    entry.obj.metadata.resourceVersion = tostring(entry.v)
  end
  return entry.obj
end

--- each(ctx, r, ns) -> list of objects (decoded)
function M.all(ctx, r, ns)
  local out = {}
  for i, e in ipairs((M.entries(ctx, r, ns))) do out[i] = M.decode(e) end
  return out
end

--- put(ctx, r, obj, if_version) -> version. if_version 0: must not exist.
function M.put(ctx, r, obj, if_version)
  local md = obj.metadata
  local ok, v = pcall(ctx.store.txn, ctx.store, {{op = "put", collection = kinds.collection(ctx.cluster, r),
    key = kinds.key(r, md.namespace, md.name), object = M.stripped(obj), if_version = if_version}})
  if not ok then
    if type(v) == "table" and v.code == 409 then
      if if_version == 0 then status.already_exists(r, md.name) end
      status.conflict(r, md.name)
    end
    error(v, 0)
  end
  md.resourceVersion = tostring(v)
  return v
end

--- txn(ctx, changes) -> version: changes {{r=, obj=} | {r=, delete = {ns, name}}}
function M.txn(ctx, changes)
  local ops = {}
  for i, c in ipairs(changes) do
    if c.delete then
      ops[i] = {op = "delete", collection = kinds.collection(ctx.cluster, c.r), key = kinds.key(c.r, c.delete[1], c.delete[2])}
    else
      ops[i] = {op = "put", collection = kinds.collection(ctx.cluster, c.r),
        key = kinds.key(c.r, c.obj.metadata.namespace, c.obj.metadata.name), object = M.stripped(c.obj),
        if_version = c.if_version}
    end
  end
  if #ops == 0 then return nil end
  return ctx.store:txn(ops)
end

--- delete(ctx, r, ns, name) -> version | nil
function M.delete(ctx, r, ns, name)
  return ctx.store:delete(kinds.collection(ctx.cluster, r), kinds.key(r, ns, name))
end

--- fresh(r, obj, ns): fill what the apiserver sets on create
function M.fresh(r, obj, ns, version)
  obj.apiVersion = kinds.api_version(r, version)
  obj.kind = r.kind
  local md = obj.metadata
  md.namespace = r.namespaced and (md.namespace or ns) or nil
  md.uid = M.uid()
  md.creationTimestamp = md.creationTimestamp or M.now()
  md.generation = 1
  md.resourceVersion = nil
  md.deletionTimestamp = nil
  return obj
end

return M
