-- opsh.twin.store: the twin's state, owned by the one `opsh twin serve` process. Keyed collections of
-- JSON values; every change is one event whose version strictly increases across the whole store
-- (etcd's revision, which the Kubernetes twin serves as resourceVersion). Persisted in DIR/store as a
-- snapshot plus an append-only log: a change is acknowledged once its log line is fsync'd (concurrent
-- changes share one fsync), and the log is folded into the snapshot every `compact_every` lines and
-- at every open. Subscribers get the events in version order, from a version still in the bounded
-- history; an older one is an error with code 410, as Kubernetes answers.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")

local M = {}

M.FORMAT = 1
M.DEFAULT_HISTORY = 1000      -- events kept for subscribers that resume
M.DEFAULT_COMPACT_EVERY = 10000   -- log lines before the log is folded into the snapshot
M.DEFAULT_MAX_QUEUE = 10000   -- events a subscriber may fall behind before it is dropped (410)

local PRIVATE_DIR, PRIVATE_FILE = tonumber("700", 8), tonumber("600", 8)

local function fail(code, reason, message, fields)
  fields = fields or {}
  fields.code, fields.reason = code, reason
  error(core.error("twin", message, fields), 0)
end
M.fail = fail

local function check_name(what, v, pattern)
  if type(v) ~= "string" or v == "" or not v:find(pattern) then
    fail(400, "BadRequest", string.format("a store %s must be a non-empty string of %s, not %s", what,
      what == "collection" and "letters, digits, '_', '.' or '-'" or "printable characters",
      type(v) == "string" and ("'" .. v .. "'") or type(v)))
  end
end

local function check_ck(c, k)
  check_name("collection", c, "^[%w_.%-]+$")
  check_name("key", k, "^[%g ]+$")
end

local function encode(v)
  if v == nil then fail(400, "BadRequest", "a store object cannot be nil (delete the key instead)") end
  return json.encode(v, {sort_keys = true})
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end


-- one event's JSON line, from the object's text (no decode/encode round trip)
local function event_line(ev)
  return string.format('{"collection":%s,"key":%s,"object":%s,"type":"%s","version":%d}\n',
    json.encode(ev.collection), json.encode(ev.key), ev.text, ev.type, ev.version)
end

local function log_line(ev)
  return string.format('{"c":%s,"cv":%d,"k":%s,"o":%s,"op":"%s","v":%d}\n', json.encode(ev.collection),
    ev.created, json.encode(ev.key), ev.text, ev.type == "DELETED" and "delete" or "put", ev.version)
end

-- ---- the files ----

--- load_files(path) -> data {collection -> {key -> {text, v, cv}}}, version. Reads the snapshot and replays
-- the log; only reads (used by `twin down` when the serving process is gone). A torn last log line (a crash
-- in the middle of a write) is ignored; damage elsewhere raises.
function M.load_files(path)
  local data, version = {}, 0
  local snap = fs.read(path .. "/snapshot.json", {missing_ok = true})
  if snap then
    local ok, s = pcall(json.decode, snap)
    if not ok or type(s) ~= "table" or s.format ~= M.FORMAT then
      fail(500, "InternalError", "the twin's store snapshot is damaged or of another format: " .. path
        .. "/snapshot.json (`opsh twin reset` starts afresh)")
    end
    version = s.version
    for c, keys in pairs(s.collections or {}) do
      local coll = {}
      data[c] = coll
      for k, e in pairs(keys) do coll[k] = {text = encode(e.o), v = e.v, cv = e.cv} end
    end
  end
  local log = fs.read(path .. "/log.jsonl", {missing_ok = true}) or ""
  local lines = {}
  for line in log:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local complete = log:sub(-1) == "\n"
  for i, line in ipairs(lines) do
    local ok, e = pcall(json.decode, line)
    if not ok or type(e) ~= "table" or type(e.v) ~= "number" then
      if i == #lines and not complete then break end
      fail(500, "InternalError", string.format("the twin's store log is damaged at line %d: %s/log.jsonl", i, path))
    end
    if e.v > version then
      if e.v ~= version + 1 then
        fail(500, "InternalError", string.format("the twin's store log skips from version %d to %d: %s/log.jsonl",
          version, e.v, path))
      end
      version = e.v
      local coll = data[e.c]
      if e.op == "delete" then
        if coll then coll[e.k] = nil; if next(coll) == nil then data[e.c] = nil end end
      else
        if not coll then coll = {}; data[e.c] = coll end
        coll[e.k] = {text = encode(e.o), v = e.v, cv = e.cv}
      end
    end
  end
  return data, version
end

local function snapshot_text(data, version)
  local parts = {string.format('{"format":%d,"version":%d,"collections":{', M.FORMAT, version)}
  for i, c in ipairs(sorted_keys(data)) do
    parts[#parts + 1] = (i > 1 and "," or "") .. json.encode(c) .. ":{"
    for j, k in ipairs(sorted_keys(data[c])) do
      local e = data[c][k]
      parts[#parts + 1] = string.format('%s%s:{"cv":%d,"o":%s,"v":%d}', j > 1 and "," or "", json.encode(k),
        e.cv, e.text, e.v)
    end
    parts[#parts + 1] = "}"
  end
  parts[#parts + 1] = "}}\n"
  return table.concat(parts)
end

-- ---- the store ----

local Store = {}
Store.__index = Store

--- open(path, {history=, compact_every=, max_queue=}) -> store. One process at a time may hold it.
function M.open(path, opts)
  opts = opts or {}
  fs.mkdir(path, {parents = true, mode = PRIVATE_DIR})
  local data, version = M.load_files(path)
  local self = setmetatable({path = path, data = data, version = version,
    history = {}, history_max = opts.history or M.DEFAULT_HISTORY,
    compact_every = opts.compact_every or M.DEFAULT_COMPACT_EVERY,
    max_queue = opts.max_queue or M.DEFAULT_MAX_QUEUE,
    compacted = version,   -- events up to this version are no longer in the history
    published = version,   -- the last version subscribers were given (durable)
    pending = {}, subs = {}, log_lines = 0}, Store)
  self:_compact()
  return self
end

-- fold everything into a new snapshot and start an empty log
function Store:_compact()
  local text = snapshot_text(self.data, self.version)
  if self.log then self.log:close(); self.log = nil end
  fs.write_atomic(self.path .. "/snapshot.json", text, {mode = PRIVATE_FILE})
  fs.write_atomic(self.path .. "/log.jsonl", "", {mode = PRIVATE_FILE})
  self.log = fs.open(self.path .. "/log.jsonl", "a", {mode = PRIVATE_FILE})
  self.log_lines = 0
end

function Store:_publish(ev)
  local h = self.history
  h[#h + 1] = ev
  if #h > self.history_max then
    local dropped = table.remove(h, 1)
    self.compacted = dropped.version
  end
  self.published = ev.version
  for sub in pairs(self.subs) do sub:_push(ev) end
end

-- the flusher: writes what is pending, one fsync for the lot, then publishes and wakes the writers
local function flush(self)
  while #self.pending > 0 do
    local batch = self.pending
    self.pending = {}
    local lines, n = {}, 0
    for _, p in ipairs(batch) do
      for _, ev in ipairs(p.events) do n = n + 1; lines[n] = log_line(ev) end
    end
    local ok, err = pcall(function()
      self.log:write(table.concat(lines))
      self.log:sync()
    end)
    if ok then
      self.log_lines = self.log_lines + n
      for _, p in ipairs(batch) do
        for _, ev in ipairs(p.events) do self:_publish(ev) end
      end
    else
      require("opsh.log").error("twin store: a change could not be made durable", {error = tostring(err)})
    end
    for _, p in ipairs(batch) do
      if p.task then core.wake(p.task, ok, err) end
    end
    if ok and self.log_lines >= self.compact_every then
      local cok, cerr = pcall(self._compact, self)
      if not cok then require("opsh.log").error("twin store: compaction failed", {error = tostring(cerr)}) end
    end
  end
  self.flusher = nil
end

-- wait until these events are durable (and published)
function Store:_commit(events)
  if self.closed then fail(503, "ServiceUnavailable", "the twin's store is closed") end
  local me = core.current()
  self.pending[#self.pending + 1] = {events = events, task = me}
  if not me then   -- outside a task (a CLI command before its task): synchronously
    if not self.flusher then self.flusher = true; flush(self) end
    return
  end
  if not self.flusher then self.flusher = core.spawn(flush, self) end
  local ok, err = core.suspend()
  if not ok then error(err, 0) end
end

local function precondition(self, c, k, want)
  if want == nil then return end
  local e = self.data[c] and self.data[c][k]
  local have = e and e.v or 0
  if have ~= want then
    fail(409, "Conflict", string.format("%s/%s was changed: it is at version %d, not %d", c, k, have, want),
      {collection = c, key = k, current = have})
  end
end

--- txn{ {op="put", collection=, key=, object=, if_version=}, {op="delete", ...}, ... } -> version | nil.
-- Every precondition is checked before anything changes; then each change is one event. if_version = 0:
-- the key must not exist. A delete of an absent key is no change. Returns the last event's version (nil if
-- nothing changed) once the changes are durable.
function Store:txn(ops)
  local prepared = {}
  for i, op in ipairs(ops) do
    if type(op) ~= "table" then fail(400, "BadRequest", "a store operation is a table {op=, collection=, key=}") end
    check_ck(op.collection, op.key)
    if op.if_version ~= nil and math.type(op.if_version) ~= "integer" then
      fail(400, "BadRequest", "if_version must be a whole number (0: the key must not exist)")
    end
    precondition(self, op.collection, op.key, op.if_version)
    if op.op == "put" then
      prepared[i] = encode(op.object)
    elseif op.op ~= "delete" then
      fail(400, "BadRequest", "a store operation is put or delete, not " .. tostring(op.op))
    end
  end
  local events = {}
  for i, op in ipairs(ops) do
    local c, k = op.collection, op.key
    local coll = self.data[c]
    local old = coll and coll[k]
    local ev
    if op.op == "put" then
      self.version = self.version + 1
      if not coll then coll = {}; self.data[c] = coll end
      local created = old and old.cv or self.version
      coll[k] = {text = prepared[i], v = self.version, cv = created}
      ev = {type = old and "MODIFIED" or "ADDED", version = self.version, collection = c, key = k,
        text = prepared[i], created = created}
    elseif old then
      self.version = self.version + 1
      coll[k] = nil
      if next(coll) == nil then self.data[c] = nil end
      ev = {type = "DELETED", version = self.version, collection = c, key = k, text = old.text, created = old.cv}
    end
    if ev then
      ev.line = event_line(ev)
      events[#events + 1] = ev
    end
  end
  if #events == 0 then return nil end
  self:_commit(events)
  return events[#events].version
end

--- put(collection, key, object, {if_version=}) -> version
function Store:put(c, k, object, opts)
  return self:txn({{op = "put", collection = c, key = k, object = object, if_version = opts and opts.if_version}})
end

--- delete(collection, key, {if_version=}) -> version, or nil when there was no such key
function Store:delete(c, k, opts)
  return self:txn({{op = "delete", collection = c, key = k, if_version = opts and opts.if_version}})
end

--- get(collection, key) -> object (a fresh copy), version | nil
function Store:get(c, k)
  check_ck(c, k)
  local e = self.data[c] and self.data[c][k]
  if not e then return nil end
  return json.decode(e.text), e.v
end

-- RFC 7386 JSON merge patch
local function merge_patch(target, patch)
  if type(patch) ~= "table" or json.is_array(patch) then return patch end
  if type(target) ~= "table" or json.is_array(target) then target = {} end
  for k, v in pairs(patch) do
    if v == json.null then target[k] = nil else target[k] = merge_patch(target[k], v) end
  end
  return target
end
M.merge_patch = merge_patch

--- patch(collection, key, merge_patch, {if_version=}) -> version, the new object. The key must exist.
function Store:patch(c, k, p, opts)
  local cur, v = self:get(c, k)
  if cur == nil then fail(404, "NotFound", string.format("%s/%s not found", c, k), {collection = c, key = k}) end
  if opts and opts.if_version and opts.if_version ~= v then precondition(self, c, k, opts.if_version) end
  local new = merge_patch(cur, p)
  return self:txn({{op = "put", collection = c, key = k, object = new, if_version = v}}), new
end

--- list(collection) -> items {{key=, version=, object=}, ...} sorted by key, and the store's version
function Store:list(c)
  check_name("collection", c, "^[%w_.%-]+$")
  local items = {}
  local coll = self.data[c] or {}
  for i, k in ipairs(sorted_keys(coll)) do
    items[i] = {key = k, version = coll[k].v, object = json.decode(coll[k].text)}
  end
  return items, self.version
end

--- collections() -> sorted names of the collections that have keys
function Store:collections()
  return sorted_keys(self.data)
end

--- raw() -> data {collection -> {key -> {text=, v=}}} (not to be changed), version: for the HTTP view
function Store:raw()
  return self.data, self.version
end

--- current() -> the store's version (the last change made)
function Store:current()
  return self.version
end

-- ---- subscriptions ----

local Sub = {}
Sub.__index = Sub
Sub.__close = function(s) s:close() end
Sub.__call = function(s) return s:next() end

function Sub:_push(ev)
  if self.done then return end
  if self.collection and ev.collection ~= self.collection then return end
  if #self.queue - self.head + 1 >= self.store.max_queue then
    self.err = core.error("twin", string.format("the subscriber fell more than %d events behind and was dropped",
      self.store.max_queue), {code = 410, reason = "Expired"})
    self:close()
    return
  end
  self.queue[#self.queue + 1] = ev
  if self.waiter then
    local w = self.waiter
    self.waiter = nil
    core.wake(w, true)
  end
end

--- sub:next_raw([timeout]) -> the store's event {type, version, collection, key, text, line} (shared: do
-- not change it), nil when closed or after timeout seconds; raises the 410 error when it fell behind.
function Sub:next_raw(timeout)
  while true do
    if self.head <= #self.queue then
      local ev = self.queue[self.head]
      self.queue[self.head] = nil
      self.head = self.head + 1
      if self.head > #self.queue then self.queue, self.head = {}, 1 end
      return ev
    end
    if self.err then error(self.err, 0) end
    if self.done or timeout == 0 then return nil end
    local me = core.current()
    if not me then fail(400, "BadRequest", "a store subscription is read inside an opsh task") end
    self.waiter = me
    local timer
    if timeout then
      timer = core.spawn(function()
        core.sleep(timeout)
        if self.waiter == me then self.waiter = nil; core.wake(me, false) end
      end)
    end
    local woke = core.suspend()
    if timer and timer:status() ~= "done" then timer:cancel() end
    if self.waiter == me then self.waiter = nil end
    if not woke and self.head > #self.queue and not self.err and not self.done then return nil end
  end
end

--- sub:next([timeout]) -> event {type = "ADDED"|"MODIFIED"|"DELETED", version, collection, key, object}
-- (object a fresh copy; for DELETED the last state), nil when closed or after timeout seconds.
function Sub:next(timeout)
  local ev = self:next_raw(timeout)
  if not ev then return nil end
  return {type = ev.type, version = ev.version, collection = ev.collection, key = ev.key,
    object = json.decode(ev.text)}
end

--- sub:close(): no more events; a task waiting in next() gets nil.
function Sub:close()
  if self.done then return end
  self.done = true
  self.store.subs[self] = nil
  if self.waiter then
    local w = self.waiter
    self.waiter = nil
    core.wake(w, true)
  end
end

--- subscribe(collection | nil, [from_version]) -> subscription: the events after from_version (nil: from
-- now on), of one collection or of all, in version order. `for ev in sub do ... end`; close it when done
-- (`local sub <close> = store:subscribe(...)`). A from_version older than the history raises code 410
-- (reason "Expired"), one beyond the store's version code 400.
function Store:subscribe(c, from)
  if c ~= nil then check_name("collection", c, "^[%w_.%-]+$") end
  if from ~= nil and math.type(from) ~= "integer" then
    fail(400, "BadRequest", "a version is a whole number, not " .. tostring(from))
  end
  from = from or self.version
  if from < self.compacted then
    fail(410, "Expired", string.format("too old resource version: %d (%d)", from, self.compacted),
      {oldest = self.compacted})
  end
  if from > self.version then
    fail(400, "BadRequest", string.format("version %d is ahead of the store (at %d)", from, self.version))
  end
  local sub = setmetatable({store = self, collection = c, queue = {}, head = 1}, Sub)
  for _, ev in ipairs(self.history) do
    if ev.version > from then sub:_push(ev) end
  end
  self.subs[sub] = true
  return sub
end

--- close(): waits for pending changes, closes the log and ends every subscription.
function Store:close()
  if self.closed then return end
  while self.flusher do core.sleep(0.001) end
  self.closed = true
  if self.log then self.log:close(); self.log = nil end
  for sub in pairs(self.subs) do sub:close() end
end

return M
