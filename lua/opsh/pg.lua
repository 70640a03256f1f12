-- opsh.pg: PostgreSQL through libpq, non-blocking on the opsh loop. Connections, $n-parameter
-- queries with typed results, transactions, LISTEN/NOTIFY, COPY streaming and a pool.
-- The transport is the C module opsh._pg; see docs/pg.md.
local C = require("opsh._pg")
local core = require("opsh._core")
local json = require("opsh.json")

local M = {}

M.null = json.null
M.libpq_version = C.libpq_version
C.configure(json.decode, json.encode, json.null)

local methods = C.conn_methods

-- libpq keywords accepted in a connection table (docs: "Parameter Key Words")
local KEYWORDS = {}
for k in ([[host hostaddr port dbname user password passfile channel_binding options
  application_name fallback_application_name keepalives keepalives_idle keepalives_interval
  keepalives_count tcp_user_timeout sslmode sslcompression sslcert sslkey sslpassword sslrootcert
  sslcrl sslcrldir sslsni requirepeer ssl_min_protocol_version ssl_max_protocol_version gssencmode
  krbsrvname gsslib service target_session_attrs client_encoding]]):gmatch("%S+") do
  KEYWORDS[k] = true
end
-- opsh's own options in a connection table; POOL_KEYS belong to pg.pool
local OWN = {uri = true, conninfo = true, connect_timeout = true, statement_timeout = true, timezone = true}
local POOL_KEYS = {size = true, acquire_timeout = true}

local DEFAULT_CONNECT_TIMEOUT = 10

local function raise(kind, message, fields)
  error(core.error(kind, message, fields), 3)
end

-- A server setting for the options keyword: "-c name=value", spaces escaped as libpq wants.
local function setting(name, value)
  return "-c " .. name .. "=" .. tostring(value):gsub("([\\ ])", "\\%1")
end

-- target (uri | conninfo | table), overrides (table) -> conninfo|nil, {keyword = string|secret}, timeout
local function connect_params(target, overrides, fname, pool)
  local conninfo, opts
  if type(target) == "string" then
    conninfo, opts = target, overrides or {}
  elseif type(target) == "table" then
    opts = target
    conninfo = target.uri or target.conninfo
  elseif target == nil then
    opts = overrides or {}
  else
    error(string.format("bad argument #1 to '%s' (string or table expected, got %s)", fname, type(target)), 3)
  end
  if type(opts) ~= "table" then
    error(string.format("bad argument #2 to '%s' (table expected, got %s)", fname, type(opts)), 3)
  end
  local params, server_options = {}, nil
  if conninfo then
    local parsed, err = C.parse_conninfo(conninfo)
    if not parsed then raise("pg_connect", err) end
    server_options = parsed.options
  end
  for k, v in pairs(opts) do
    if KEYWORDS[k] then
      if k == "password" then
        if type(v) ~= "string" and not core.is_secret(v) then
          error(string.format("bad argument #1 to '%s' (password must be a string or an opsh.secret)", fname), 3)
        end
        params.password = v
      elseif k == "options" then
        server_options = (server_options and server_options .. " " or "") .. tostring(v)
      else
        params[k] = tostring(v)
      end
    elseif not OWN[k] and not (pool and POOL_KEYS[k]) then
      error(string.format("bad argument #1 to '%s' (unknown connection option '%s')", fname, tostring(k)), 3)
    end
  end
  -- Results need ISO dates to give RFC 3339 timestamps; sessions default to UTC so that a
  -- script means the same everywhere (timezone = "..." picks another).
  local settings = {setting("DateStyle", "ISO, YMD"), setting("TimeZone", opts.timezone or "UTC")}
  if opts.statement_timeout then
    local s = tonumber(opts.statement_timeout)
    if not s or s < 0 then error(string.format("bad argument #1 to '%s' (statement_timeout must be seconds)", fname), 3) end
    settings[#settings + 1] = setting("statement_timeout", math.floor(s * 1000 + 0.5))
  end
  if server_options then settings[#settings + 1] = server_options end
  params.options = table.concat(settings, " ")
  if not params.client_encoding then params.client_encoding = "UTF8" end
  local timeout = tonumber(opts.connect_timeout) or DEFAULT_CONNECT_TIMEOUT
  return conninfo, params, timeout
end

--- connect(uri | conninfo | {host=, port=, dbname=, user=, password=, sslmode=, ...} [, overrides]) -> conn
function M.connect(target, overrides)
  local conninfo, params, timeout = connect_params(target, overrides, "connect")
  return C.connect(conninfo, params, timeout)
end

-- ---- connection methods written in Lua ----

local depth = setmetatable({}, {__mode = "k"})   -- conn -> open transaction(fn) levels

local function closer(fn)
  return setmetatable({}, {__close = fn})
end

--- conn:transaction(fn) -> fn's results; COMMIT, or ROLLBACK and re-raise. Nested calls use savepoints.
function methods:transaction(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  local level = depth[self] or 0
  local savepoint = level > 0 and ("opsh_savepoint_" .. level) or nil
  self:exec(savepoint and ("SAVEPOINT " .. savepoint) or "BEGIN")
  depth[self] = level + 1
  local finished = false
  local _ <close> = closer(function()
    depth[self] = level > 0 and level or nil
    -- a cancelled task or an error in COMMIT/ROLLBACK: end it without waiting
    if not finished then self:_abort(true) end
  end)
  local res = table.pack(pcall(fn, self))
  if res[1] then
    local ok, r = pcall(self.exec, self, savepoint and ("RELEASE SAVEPOINT " .. savepoint) or "COMMIT")
    finished = true
    if not ok then error(r, 0) end
    if not savepoint and r.command == "ROLLBACK" then
      raise("pg", "the transaction was rolled back: an error inside it was caught and the transaction was "
        .. "aborted", {sqlstate = "25P02", code = "25P02"})
    end
    return table.unpack(res, 2, res.n)
  end
  if savepoint then
    self:exec("ROLLBACK TO SAVEPOINT " .. savepoint .. "; RELEASE SAVEPOINT " .. savepoint)
  else
    self:exec("ROLLBACK")
  end
  finished = true
  error(res[2], 0)
end

--- conn:listen(channel): LISTEN (the channel is quoted as an identifier)
function methods:listen(channel)
  self:exec("LISTEN " .. self:escape_identifier(channel))
end

function methods:unlisten(channel)
  self:exec("UNLISTEN " .. (channel and self:escape_identifier(channel) or "*"))
end

--- conn:notify(channel, payload)
function methods:notify(channel, payload)
  self:query("SELECT pg_notify($1, $2)", channel, payload)
end

--- conn:notifications({timeout = seconds}) -> iterator of {channel=, payload=, pid=}; without a
-- timeout it waits until the task is cancelled, with one it ends when the time is up.
function methods:notifications(opts)
  local timeout = opts and opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #1 to 'notifications' (timeout must be a non-negative number)", 2)
  end
  local deadline = timeout and core.hrtime() + timeout
  return function()
    if deadline then return self:_wait_notification(math.max(0, deadline - core.hrtime())) end
    return self:_wait_notification()
  end
end

--- conn:set_statement_timeout(seconds): for this session (0 = none)
function methods:set_statement_timeout(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("bad argument #1 to 'set_statement_timeout' (non-negative number expected)", 2)
  end
  self:query("SELECT set_config('statement_timeout', $1, false)", tostring(math.floor(seconds * 1000 + 0.5)))
end

local function io_error(op, path, err)
  raise("io", string.format("%s %s: %s", op, path, err), {path = path})
end

-- Runs fn(file) inside a COPY of direction `want` ("out" | "in"), with `path` (if any) opened with
-- `how`. A COPY left unfinished (an error, a cancelled task) is cancelled on the server.
local function with_copy(self, sql, want, path, how, fn)
  local f
  if path then
    local err
    f, err = io.open(path, how)
    if not f then io_error("cannot open", path, err) end
  end
  local done = false
  local _ <close> = closer(function()
    if f then f:close() end
    if not done then self:_abort(false) end
  end)
  if self:_copy(sql) ~= want then
    raise("usage", want == "out" and "copy_out expects COPY ... TO STDOUT" or "copy_in expects COPY ... FROM STDIN")
  end
  local res = fn(f)
  done = true
  if f then
    local ok, err = f:close()
    f = nil
    if not ok then io_error("cannot write", path, err) end
  end
  return res
end

--- conn:copy_out(sql, {file = path} | {on_data = fn}) -> result (command, affected, bytes)
function methods:copy_out(sql, opts)
  if type(sql) ~= "string" then error("bad argument #1 to 'copy_out' (string expected)", 2) end
  if type(opts) ~= "table" or (opts.file == nil) == (opts.on_data == nil) then
    error("bad argument #2 to 'copy_out' (table with file or on_data expected)", 2)
  end
  return with_copy(self, sql, "out", opts.file, "wb", function(f)
    local bytes = 0
    while true do
      local data, res = self:_copy_read()
      if data then
        bytes = bytes + #data
        if f then
          local ok, err = f:write(data)
          if not ok then io_error("cannot write", opts.file, err) end
        else
          opts.on_data(data)
        end
      end
      if res then
        res.bytes = bytes
        return res
      end
    end
  end)
end

local CHUNK = 64 * 1024

--- conn:copy_in(sql, {file = path} | {source = fn -> chunk|nil}) -> result (command, affected)
function methods:copy_in(sql, opts)
  if type(sql) ~= "string" then error("bad argument #1 to 'copy_in' (string expected)", 2) end
  if type(opts) ~= "table" or (opts.file == nil) == (opts.source == nil) then
    error("bad argument #2 to 'copy_in' (table with file or source expected)", 2)
  end
  return with_copy(self, sql, "in", opts.file, "rb", function(f)
    local read = f and function() return f:read(CHUNK) end or opts.source
    local ok, err = pcall(function()
      while true do
        local chunk = read()
        if chunk == nil then break end
        if type(chunk) ~= "string" then raise("usage", "copy_in source must return strings or nil") end
        if #chunk > 0 then self:_copy_write(chunk) end
      end
    end)
    if not ok then
      -- the server must see the COPY fail: a half-written table is never committed
      pcall(self._copy_end, self, "aborted by the client")
      error(err, 0)
    end
    return self:_copy_end()
  end)
end

-- ---- pool ----

local Pool = {}
Pool.__index = Pool

--- pool{uri=|conninfo=|host=..., size = N, acquire_timeout = seconds} -> pool
function M.pool(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'pool' (table expected)", 2) end
  local size = opts.size or 10
  if math.type(size) ~= "integer" or size < 1 then
    error("bad argument #1 to 'pool' (size must be a positive integer)", 2)
  end
  local timeout = opts.acquire_timeout or 30
  if type(timeout) ~= "number" or timeout < 0 then
    error("bad argument #1 to 'pool' (acquire_timeout must be a non-negative number)", 2)
  end
  local conninfo, params, ctimeout = connect_params(opts, nil, "pool", true)
  return setmetatable({
    conninfo = conninfo, params = params, connect_timeout = ctimeout,
    size = size, acquire_timeout = timeout,
    idle = {}, open = 0, busy = 0, waiters = {}, handed = {}, closed = false,
  }, Pool)
end

-- hand a free slot (conn or nil = "connect one yourself") to the first waiter still waiting
local function hand_over(pool, conn)
  while #pool.waiters > 0 do
    local w = table.remove(pool.waiters, 1)
    if core.wake(w, conn or false) then
      -- until w runs, the connection is only in its wake-up values: if w is cancelled
      -- before that, its acquire() gives the connection back from there
      if conn then pool.handed[w] = conn end
      return true
    end
  end
  return false
end

local function open_conn(pool)
  pool.open = pool.open + 1
  -- connect in a task of its own: the connection must not be closed with the task that
  -- happened to ask for it, since it belongs to the pool
  local t = core.spawn(C.connect, pool.conninfo, pool.params, pool.connect_timeout)
  local got = false
  local _ <close> = closer(function()
    if got then return end
    local s = t:status()
    if s == "ready" or s == "suspended" then t:cancel() end
    pool.open = pool.open - 1
    hand_over(pool, nil)
  end)
  local conn = t:wait()
  got = true
  return conn
end

--- pool:acquire() -> conn; waits while all `size` connections are in use, raises
-- {kind="pg_pool"} after acquire_timeout.
function Pool:acquire()
  local deadline = core.hrtime() + self.acquire_timeout
  while true do
    if self.closed then raise("pg_pool", "the pool is closed") end
    while #self.idle > 0 do
      local conn = table.remove(self.idle)
      if conn:_ready() then
        self.busy = self.busy + 1
        return conn
      end
      conn:close()
      self.open = self.open - 1
    end
    if self.open < self.size then
      local conn = open_conn(self)
      self.busy = self.busy + 1
      return conn
    end
    local remaining = deadline - core.hrtime()
    if remaining <= 0 then
      raise("pg_pool", string.format("no connection free in the pool after %g s (size %d, all in use)",
        self.acquire_timeout, self.size), {size = self.size, timeout = self.acquire_timeout})
    end
    local me = core.current()
    if not me then raise("usage", "pool:acquire must run inside an opsh task") end
    self.waiters[#self.waiters + 1] = me
    local timer = core.spawn(function()
      core.sleep(remaining)
      core.wake(me, "timeout")
    end)
    local _ <close> = closer(function()
      if timer:status() == "suspended" or timer:status() == "ready" then timer:cancel() end
      for i, w in ipairs(self.waiters) do
        if w == me then table.remove(self.waiters, i) break end
      end
      local lost = self.handed[me]
      if lost then
        self.handed[me] = nil
        self.busy = self.busy + 1
        self:release(lost)
      end
    end)
    local got = core.suspend()
    self.handed[me] = nil
    if got and got ~= "timeout" then
      if got:_ready() then
        self.busy = self.busy + 1
        return got
      end
      got:close()
      self.open = self.open - 1
    end
    -- "timeout" or false (a slot was freed): go round; the deadline decides
  end
end

--- pool:release(conn): back to the pool; a connection that is broken, busy or inside a
-- transaction is closed instead.
function Pool:release(conn)
  self.busy = self.busy - 1
  if self.closed or not conn:_ready() then
    conn:close()
    self.open = self.open - 1
    hand_over(self, nil)
    return
  end
  if not hand_over(self, conn) then self.idle[#self.idle + 1] = conn end
end

--- pool:with(fn) -> fn(conn)'s results; the connection goes back to the pool in every case
function Pool:with(fn)
  local conn = self:acquire()
  local _ <close> = closer(function() self:release(conn) end)
  return fn(conn)
end

--- pool:stats() -> {size, open, idle, busy, waiting}
function Pool:stats()
  return {size = self.size, open = self.open, idle = #self.idle, busy = self.busy, waiting = #self.waiters}
end

--- pool:close(): closes the idle connections now, the others when they are released
function Pool:close()
  self.closed = true
  for _, conn in ipairs(self.idle) do
    conn:close()
    self.open = self.open - 1
  end
  self.idle = {}
  while hand_over(self, nil) do end
end
Pool.__close = Pool.close

return M
