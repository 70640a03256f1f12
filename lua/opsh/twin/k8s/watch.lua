-- opsh.twin.k8s.watch: watch streams from the store's subscriptions. ADDED/MODIFIED/DELETED for the
-- objects the namespace and selectors pick (an object that stops matching is DELETED for the watcher),
-- BOOKMARK every few seconds when asked, 410 Expired for a resourceVersion older than the history, held
-- open until timeoutSeconds or the client leaves. Table watchers get each object as a one-row Table.
local core = require("opsh._core")
local knobs = require("opsh.twin.k8s.knobs")
local json = require("opsh.json")
local defaults = require("opsh.twin.k8s.defaults")
local kinds = require("opsh.twin.k8s.kinds")
local objects = require("opsh.twin.k8s.objects")
local resources = require("opsh.twin.k8s.resources")
local status = require("opsh.twin.k8s.status")
local tables = require("opsh.twin.k8s.tables")

local M = {}

M.BOOKMARK_EVERY = 5

local function event_line(typ, text)
  return '{"type":"' .. typ .. '","object":' .. text .. '}\n'
end

function M.watch(rt)
  local q = rt.req.query
  local lm, fm = resources.matchers(rt)
  local from = q.resourceVersion
  if from == nil or from == "" or from == "0" then
    from = nil
  else
    from = math.tointeger(tonumber(from))
    if not from then status.fail(400, "invalid resourceVersion: " .. tostring(q.resourceVersion)) end
  end
  local collection = kinds.collection(rt.ctx.cluster, rt.r)
  local initial
  if from == nil then
    -- no version (or 0): the current objects as ADDED, then changes
    initial = objects.entries(rt.ctx, rt.r, rt.ns)
    from = rt.ctx.store:current()
  end
  local filtered = lm ~= nil or fm ~= nil
  local ok, sub = pcall(rt.ctx.store.subscribe, rt.ctx.store, collection, from)
  if not ok then
    if type(sub) == "table" and sub.code == 410 then
      status.fail(410, sub.message, "Expired")
    end
    error(sub, 0)
  end
  local _ <close> = sub
  local as_table = tables.wants(rt.req)
  local v1 = rt.r.kind == "HorizontalPodAutoscaler" and rt.version == "v1"
  local prefix = rt.ns and rt.r.namespaced and (rt.ns .. "/") or nil
  local seen = {}
  local function matches(o)
    return (not lm or lm(o.metadata.labels)) and (not fm or fm(o))
  end
  local function render(o, text)
    if as_table then
      return json.encode(tables.table(rt.r.kind, {v1 and defaults.hpa_to_v1(o) or o}, {}, "Object"))
    end
    if v1 then return json.encode(defaults.hpa_to_v1(o)) end
    return text
  end
  local res = rt.req:stream(200, {["Content-Type"] = "application/json"})
  local function send(s)
    local wok, werr = pcall(res.write, res, s)
    if not wok and not core.is_error(werr, "closed") then error(werr, 0) end
    return wok
  end
  if filtered and not initial then
    for _, e in ipairs((objects.entries(rt.ctx, rt.r, rt.ns))) do
      if matches(objects.decode(e)) then seen[e.key] = true end
    end
  end
  for _, e in ipairs(initial or {}) do
    local o = objects.decode(e)
    if matches(o) then
      seen[e.key] = true
      if not send(event_line("ADDED", render(o, objects.inject(e.text, e.v)))) then return end
    end
  end
  local timeout = tonumber(q.timeoutSeconds or "") or 1800
  local deadline = core.hrtime() + timeout
  local bookmarks = q.allowWatchBookmarks == "true"
  local last_bookmark = core.hrtime()
  local last_version = from
  while not res:closed() do
    local now = core.hrtime()
    if now >= deadline then break end
    local wait = math.min(tonumber(knobs.get(rt.ctx).bookmark_seconds) or 1, 1, deadline - now)
    local eok, ev = pcall(sub.next_raw, sub, wait)
    if not eok then
      local msg = type(ev) == "table" and ev.message or tostring(ev)
      send(event_line("ERROR", json.encode(status.body(410, msg, "Expired"))))
      break
    end
    if ev then
      last_version = ev.version
      if not prefix or ev.key:sub(1, #prefix) == prefix then
        local text = objects.inject(ev.text, ev.version)
        local o = (filtered or as_table or v1) and json.decode(text) or nil
        local typ = ev.type
        local m = not filtered or matches(o)
        if filtered and typ == "DELETED" then
          if seen[ev.key] or m then seen[ev.key] = nil else typ = nil end
        elseif not filtered then
          typ = ev.type
        elseif m then
          if not seen[ev.key] then typ = "ADDED" end
          seen[ev.key] = true
        elseif seen[ev.key] then
          seen[ev.key] = nil
          typ = "DELETED"
        else
          typ = nil
        end
        if typ and not send(event_line(typ, render(o, text))) then break end
      end
    elseif bookmarks and core.hrtime() - last_bookmark >= (tonumber(knobs.get(rt.ctx).bookmark_seconds) or M.BOOKMARK_EVERY) then
      last_bookmark = core.hrtime()
      local bm = json.encode({kind = rt.r.kind, apiVersion = kinds.api_version(rt.r, rt.version),
        metadata = {resourceVersion = tostring(last_version)}})
      if not send(event_line("BOOKMARK", bm)) then break end
    end
  end
  res:close()
end

return M
