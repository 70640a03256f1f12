-- opsh.k8s.stream (internal): the streaming verbs — watch (resumes from the last resourceVersion
-- after a dropped connection, relists on 410 Gone and tells the caller) and log (tail, since,
-- timestamps, previous, all containers, follow).
local core = require("opsh._core")
local json = require("opsh.json")
local log = require("opsh.log")
local client = require("opsh.k8s.client")
local discovery = require("opsh.k8s.discovery")
local errors = require("opsh.k8s.errors")

local Client = client.Client
local usage = client.usage

local TRANSIENT = {connect = true, timeout = true, protocol = true, tls = false}

--- c:watch(resource, [opts,] fn) -> what fn returned to stop it. fn(event) gets {type = "ADDED" |
-- "MODIFIED" | "DELETED" | "BOOKMARK", object} and, after a 410 relist, {type = "RELIST", items,
-- resource_version}; returning false (or any value other than nil/true) ends the watch.
-- opts: namespace, all_namespaces, label_selector, field_selector, resource_version (default: now;
-- "list": the current objects first, as ADDED), timeout (seconds for the whole watch), name (one object)
function Client:watch(resource, opts, fn)
  if type(opts) == "function" then opts, fn = nil, opts end
  if type(fn) ~= "function" then usage("watch needs a function(event)") end
  local rec, _, o, ns = self:_target(resource, nil, opts)
  local path = discovery.path(rec, ns)
  local fsel = client.selector(o.field_selector, "field_selector")
  if o.name then fsel = "metadata.name=" .. o.name .. (fsel and ("," .. fsel) or "") end
  local lsel = client.selector(o.label_selector, "label_selector")
  local now = require("opsh.time").monotonic
  local deadline = o.timeout and now() + o.timeout
  local function relist()
    local l = self:list(rec, {namespace = ns, all_namespaces = ns == nil, label_selector = lsel, field_selector = fsel})
    return l
  end
  local rv = o.resource_version
  if rv == nil or rv == "list" then
    local l = relist()
    local initial = rv == "list"
    rv = l.metadata.resourceVersion
    if initial then
      for _, it in ipairs(l.items) do
        local r = fn({type = "ADDED", object = it})
        if r ~= nil and r ~= true then return r end
      end
    end
  end
  local backoff = 0.2
  while true do
    local remaining = deadline and deadline - now()
    if remaining and remaining <= 0 then return nil end
    local stop, result, gone, events, started = false, nil, false, 0, now()
    local q = {watch = "true", allowWatchBookmarks = "true", resourceVersion = rv, labelSelector = lsel,
      fieldSelector = fsel, timeoutSeconds = math.max(1, math.floor(math.min(remaining or 300, 300)))}
    local ok, err = pcall(self.request, self, "GET", path, {query = q, idle_timeout = q.timeoutSeconds + 30,
      on_line = function(line)
        if line == "" then return end
        local ev = json.decode(line)
        local obj = ev.object
        if ev.type == "ERROR" then
          if type(obj) == "table" and tonumber(obj.code) == 410 then gone = true; return false end
          error(errors.from_response({status = tonumber(obj and obj.code) or 500, body = json.encode(obj), headers = {}},
            "WATCH", path), 0)
        end
        if type(obj) == "table" and obj.metadata and obj.metadata.resourceVersion then
          rv = obj.metadata.resourceVersion
        end
        backoff, events = 0.2, events + 1
        local r = fn(ev)
        if r ~= nil and r ~= true then stop, result = true, r; return false end
      end})
    if stop then return result end
    if ok and events == 0 and now() - started < 1 then
      -- a server that ends watches at once must not be asked again in a tight loop
      core.sleep(backoff)
      backoff = math.min(backoff * 2, 5)
    end
    if not ok then
      if errors.is(err, 410) then
        gone = true
      elseif not (core.is_error(err) and TRANSIENT[err.kind]) then
        error(err, 0)
      else
        log.debug("opsh.k8s: watch of " .. path .. " dropped (" .. tostring(err.message) .. "); resuming from "
          .. tostring(rv))
        core.sleep(backoff)
        backoff = math.min(backoff * 2, 5)
      end
    end
    if gone then
      local l = relist()
      rv = l.metadata.resourceVersion
      local r = fn({type = "RELIST", items = l.items, resource_version = rv})
      if r ~= nil and r ~= true then return r end
    end
  end
end

local function seconds(v)
  if v == nil or type(v) == "number" then return v end
  return require("opsh.time").parse_duration(v)
end

--- c:log(pod [, opts]) -> the log text; with on_line = fn(line, container) the lines are delivered as
-- they come (follow = true keeps the stream open) and nothing is returned.
-- opts: namespace, container, all_containers, tail, since ("10m" or seconds), since_time, timestamps,
-- previous, follow, limit_bytes, on_line
function Client:log(pod, opts)
  opts = opts or {}
  local rec, name, o, ns = self:_target("pods", pod, opts)
  if not name then usage("log needs a pod name") end
  if o.follow and not o.on_line then usage("log with follow needs on_line = function(line, container)") end
  local containers
  if o.all_containers then
    local p = self:get(rec, name, {namespace = ns})
    containers = {}
    for _, section in ipairs({"initContainers", "containers"}) do
      for _, ct in ipairs(p.spec and p.spec[section] or {}) do containers[#containers + 1] = ct.name end
    end
  else
    containers = {o.container or false}
  end
  local function q(ct)
    return {container = ct or nil, tailLines = o.tail, sinceSeconds = seconds(o.since), sinceTime = o.since_time,
      timestamps = o.timestamps and "true" or nil, previous = o.previous and "true" or nil,
      follow = o.follow and "true" or nil, limitBytes = o.limit_bytes}
  end
  local path = discovery.path(rec, ns, name, "log")
  if o.on_line then
    local function one(ct)
      self:request("GET", path, {query = q(ct), headers = {Accept = "*/*"}, idle_timeout = not o.follow and 60 or nil,
        on_line = function(line)
          local r = o.on_line(line, ct or nil)
          if r == false then return false end
        end})
    end
    if #containers == 1 then one(containers[1]) else require("opsh").parallel(containers, one) end
    return nil
  end
  local parts = {}
  for _, ct in ipairs(containers) do
    parts[#parts + 1] = self:request("GET", path, {query = q(ct), headers = {Accept = "*/*"}}).body
  end
  return table.concat(parts)
end

return {}
