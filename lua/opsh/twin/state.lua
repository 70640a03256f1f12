-- opsh.twin.state: reaching the twin's state from any process. The state is the store (opsh.twin.store)
-- the one `opsh twin serve` process owns; other processes (the CLI, tests, procedures) read and change
-- it through that process's HTTPS API with the owner's token (DIR/api/token, mode 0600). Also here:
-- where the twin lives (dir) and the lock that lets one lifecycle command (up, down, reset) run at a
-- time per directory.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")

local M = {}

local function fail(message, fields) error(core.error("twin", message, fields), 0) end

--- The state directory: opts.dir, $OPSH_TWIN_DIR, or $XDG_STATE_HOME/opsh/twin (~/.local/state/opsh/twin).
function M.dir(dir)
  dir = dir or os.getenv("OPSH_TWIN_DIR")
  if not dir or dir == "" then
    local base = os.getenv("XDG_STATE_HOME")
    if not base or base == "" then
      local home = os.getenv("HOME")
      if not home or home == "" then fail("cannot place the twin: HOME is not set (pass --dir)") end
      base = home .. "/.local/state"
    end
    dir = base .. "/opsh/twin"
  end
  dir = fs.absolute(dir)
  return (dir:gsub("/+$", ""))
end

M.STORE = "store"   -- DIR/store: the store's snapshot and log
function M.store_path(dir) return dir .. "/" .. M.STORE end
function M.token_path(dir) return dir .. "/api/token" end
function M.endpoint_path(dir) return dir .. "/api/endpoint.json" end

--- lock(dir) -> a guard to close (`local _ <close> = state.lock(dir)`): one lifecycle command at a time
-- per dir. The lock is a flock(2) held by a `flock` child whose stdin is our pipe: the kernel releases it
-- when that child ends, which it does when we close the pipe or die, so no lock outlives its holder and
-- no two waiters can both take over a stale one.
function M.lock(dir, timeout)
  -- 0711: the postgres system user (when root runs the twin) must reach its own directory inside
  fs.mkdir(dir, {parents = true, mode = tonumber("711", 8)})
  timeout = timeout or 120
  -- the twin's own lock, not a change of anything: no audit line
  local p = require("opsh.audit").quietly(proc.spawn, {argv = {"flock", "--exclusive", "--wait", tostring(timeout), dir .. "/.lock",
      "sh", "-c", "echo locked && exec cat"},
    env = require("opsh.twin.childenv").clean(), stdin_pipe = true, stdout = "pipe", stderr = "null"})
  local line = p:lines()()
  if line ~= "locked" then
    p:close()
    fail(string.format("another opsh twin command is running in %s (waited %d s)", dir, timeout))
  end
  return setmetatable({}, {__close = function()
    pcall(p.close_stdin, p)
    pcall(p.wait, p)
    p:close()
  end})
end

-- ---- the update algorithm, shared by the serving process and the HTTP client ----

-- every collection exists (as an empty table) as soon as it is looked at
local state_meta = {__index = function(t, c)
  if type(c) ~= "string" then return nil end
  local v = {}
  rawset(t, c, v)
  return v
end}

--- view(data) -> state {collection -> {key -> object}} from {collection -> {key -> {o=, v=}}}
function M.view(collections)
  local st = setmetatable({}, state_meta)
  for c, keys in pairs(collections or {}) do
    local coll = {}
    for k, e in pairs(keys) do coll[k] = e.o end
    rawset(st, c, coll)
  end
  return st
end

-- the store operations that turn `before` into `after`, each conditional on the version read
local function diff(before_texts, versions, after)
  local ops = {}
  local after_texts = {}
  for c, keys in pairs(after) do
    if type(c) ~= "string" or type(keys) ~= "table" then
      fail("the twin's state holds collections (tables of key = object), not " .. tostring(c) .. " = " .. type(keys))
    end
    after_texts[c] = {}
    for k, v in pairs(keys) do
      if type(k) ~= "string" then fail(string.format("state.%s: keys are strings, not %s", c, tostring(k))) end
      after_texts[c][k] = json.encode(v, {sort_keys = true})
    end
  end
  for c, keys in pairs(after_texts) do
    local old = before_texts[c] or {}
    for k, text in pairs(keys) do
      if old[k] ~= text then
        ops[#ops + 1] = {op = "put", collection = c, key = k, object = after[c][k],
          if_version = versions[c] and versions[c][k] or 0}
      end
    end
  end
  for c, keys in pairs(before_texts) do
    for k in pairs(keys) do
      if not (after_texts[c] and after_texts[c][k]) then
        ops[#ops + 1] = {op = "delete", collection = c, key = k, if_version = versions[c][k]}
      end
    end
  end
  table.sort(ops, function(a, b)
    if a.collection ~= b.collection then return a.collection < b.collection end
    return a.key < b.key
  end)
  return ops
end

--- update(backend, fn) -> fn's results. backend.collection(name) -> {key -> {o=, v=}}; backend.txn(ops)
-- raising code 409 on a conflict. fn(state) changes the state in place; a collection is read when fn first
-- looks it up (so an update costs what it touches, not the whole store). Every key fn changed is written
-- only if nobody changed that key since it was read, otherwise fn runs again on the new state
-- (optimistic concurrency per key, as Kubernetes does per object). Assigning a whole collection replaces it.
function M.update(backend, fn)
  for attempt = 1, 100 do
    local versions, before = {}, {}
    local function load(c)
      local coll, vs, tx = {}, {}, {}
      for k, e in pairs(backend.collection(c)) do
        coll[k], vs[k], tx[k] = e.o, e.v, json.encode(e.o, {sort_keys = true})
      end
      versions[c], before[c] = vs, tx
      return coll
    end
    local st = setmetatable({}, {__index = function(t, c)
      if type(c) ~= "string" then return nil end
      local coll = load(c)
      rawset(t, c, coll)
      return coll
    end})
    local res = table.pack(fn(st))
    for c in pairs(st) do
      if type(c) == "string" and not before[c] then load(c) end   -- assigned without being read
    end
    local ops = diff(before, versions, st)
    if #ops == 0 then return table.unpack(res, 1, res.n) end
    local ok, err = pcall(backend.txn, ops)
    if ok then return table.unpack(res, 1, res.n) end
    if not (core.is_error(err) and err.code == 409) then error(err, 0) end
    core.sleep(math.random() * 0.002 * math.min(attempt, 20))
  end
  fail("the twin's state kept changing under update_state (100 attempts)")
end

-- ---- the HTTP client (other processes) ----

local Client = {}
Client.__index = Client

--- endpoint(dir) -> {url=, pid=, listeners=} written by the serving process, or nil
function M.endpoint(dir)
  local text = fs.read(M.endpoint_path(dir), {missing_ok = true})
  if not text then return nil end
  local ok, e = pcall(json.decode, text)
  if ok and type(e) == "table" and e.url then return e end
end

--- client(dir) -> a client of the serving process, or nil, why when it is not running
function M.client(dir)
  local e = M.endpoint(dir)
  if not (e and require("opsh.twin.proctab").running(e.pid)) then
    return nil, "the twin's API is not running in " .. dir
  end
  local token = fs.read(M.token_path(dir), {missing_ok = true})
  if not token then return nil, "the twin's API token is missing in " .. dir end
  local c = {dir = dir, url = e.url, pid = e.pid, listeners = e.listeners or {},
    ca = dir .. "/ca/ca.pem", auth = core.secret("Bearer " .. token:gsub("%s+$", ""))}
  -- statuses are the store's answers (raised below as kind "twin"); a change is never sent twice
  c.http = require("opsh.http").client{base_url = c.url, ca = c.ca, headers = {Authorization = c.auth},
    raise_for_status = false}
  c.changes = c.http:with{retries = 0}
  return setmetatable(c, Client)
end

--- connect(dir) -> client, raising when the twin is not running
function M.connect(dir)
  local c, why = M.client(dir)
  if not c then fail(why .. ": start it with `opsh twin up`") end
  return c
end

local function path_escape(s)
  return (s:gsub("[^%w%-._~]", function(ch) return string.format("%%%02X", ch:byte()) end))
end

local function item_path(c, k)
  return "/_twin/state/" .. path_escape(c) .. (k and ("/" .. path_escape(k)) or "")
end

-- one request; a status >= 400 raises {kind="twin", code=status, reason=}
function Client:request(method, path, opts)
  opts = opts or {}
  local client = method == "GET" and self.http or self.changes
  local ok, res = pcall(client.request, client, {method = method, url = path,
    headers = opts.body and {["Content-Type"] = "application/json"} or nil,
    query = opts.query, json = opts.json, body = opts.body,
    timeout = opts.timeout, on_line = opts.on_line, retries = opts.retries})
  if not ok then
    if core.is_error(res, "connect") then
      fail("the twin's API does not answer at " .. self.url .. " (is the twin running? `opsh twin status`)",
        {code = 503, reason = "ServiceUnavailable"})
    end
    error(res, 0)
  end
  if res.status >= 400 then
    local okj, fields = pcall(json.decode, res.body)
    if not okj or type(fields) ~= "table" then fields = {} end
    local message = type(fields.error) == "string" and fields.error or ("HTTP " .. res.status)
    fields.error, fields.code, fields.reason = nil, res.status, fields.reason or res.reason
    error(core.error("twin", message, fields), 0)
  end
  return res
end

--- get(collection, key) -> object, version | nil
function Client:get(c, k)
  local ok, res = pcall(self.request, self, "GET", item_path(c, k))
  if not ok then
    if core.is_error(res) and res.code == 404 then return nil end
    error(res, 0)
  end
  local e = res:json()
  return e.object, e.version
end

local function version_query(opts)
  return opts and opts.if_version and {if_version = opts.if_version} or nil
end

--- put(collection, key, object, {if_version=}) -> version
function Client:put(c, k, object, opts)
  return self:request("PUT", item_path(c, k), {body = json.encode(object), query = version_query(opts)}):json().version
end

--- patch(collection, key, merge_patch, {if_version=}) -> version, object
function Client:patch(c, k, p, opts)
  local e = self:request("PATCH", item_path(c, k), {body = json.encode(p), query = version_query(opts)}):json()
  return e.version, e.object
end

--- delete(collection, key, {if_version=}) -> version | nil
function Client:delete(c, k, opts)
  local e = self:request("DELETE", item_path(c, k), {query = version_query(opts)}):json()
  return e.version ~= json.null and e.version or nil
end

--- list(collection) -> items {{key, version, object}}, store version
function Client:list(c)
  local e = self:request("GET", item_path(c)):json()
  return e.items, e.version
end

--- txn(ops) -> version | nil
function Client:txn(ops)
  local e = self:request("POST", "/_twin/txn", {json = {ops = ops}}):json()
  return e.version ~= json.null and e.version or nil
end

--- snapshot() -> {collection -> {key -> {o=, v=}}}, version
function Client:snapshot()
  local e = self:request("GET", "/_twin/state"):json()
  return e.collections, e.version
end

--- read() -> state {collection -> {key -> object}}, version
function Client:read()
  local snap, version = self:snapshot()
  return M.view(snap), version
end

--- update(fn) -> fn's results (see state.update)
function Client:update(fn)
  return M.update({
    collection = function(c)
      local keys = {}
      for _, item in ipairs((self:list(c))) do keys[item.key] = {o = item.object, v = item.version} end
      return keys
    end,
    txn = function(ops) return self:txn(ops) end,
  }, fn)
end

--- watch{collection=, from=, timeout=}, fn: calls fn(event) for each event (fn returns false to stop).
-- A from version older than the history raises code 410.
function Client:watch(opts, fn)
  local path = opts.collection and item_path(opts.collection) or "/_twin/state"
  local stop, failure, refusal = false, nil, nil
  local ok, err = pcall(self.request, self, "GET", path, {query = {watch = "1", from = opts.from,
    timeout = opts.timeout}, retries = 0,
    on_line = function(line)
      if stop then return false end
      local ev = json.decode(line)
      if ev.type == nil then refusal = ev; return end   -- an error answer's body, not an event
      if ev.type == "ERROR" then
        failure = core.error("twin", ev.error, {code = ev.code, reason = ev.reason})
        return false
      end
      if fn(ev) == false then stop = true; return false end
    end})
  if not ok then
    if refusal and core.is_error(err) and err.code then
      error(core.error("twin", refusal.error or err.message, {code = err.code, reason = refusal.reason,
        oldest = refusal.oldest}), 0)
    end
    error(err, 0)
  end
  if failure then error(failure, 0) end
end

-- ---- reading the files when the serving process is gone ----

--- offline(dir) -> state read from the store's files (nil when there is none). Only for `down`/`up`
-- cleaning after a serving process that died; never written from here while one runs.
function M.offline(dir)
  local path = M.store_path(dir)
  local legacy = fs.read(dir .. "/state.json", {missing_ok = true})   -- a twin of an older opsh
  if not fs.exists(path) then
    if not legacy then return nil end
    local ok, st = pcall(json.decode, legacy)
    if not ok or type(st) ~= "table" then return nil end
    return setmetatable({components = st.components or {}, platform = st.platform or {}}, state_meta)
  end
  local data = require("opsh.twin.store").load_files(path)
  local snap = {}
  for c, keys in pairs(data) do
    snap[c] = {}
    for k, e in pairs(keys) do snap[c][k] = {o = json.decode(e.text), v = e.v} end
  end
  return M.view(snap)
end

return M
