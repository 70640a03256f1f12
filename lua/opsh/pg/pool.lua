-- opsh.pg.pool: a pool of opsh.pg connections (pg.pool, docs/pg.md): at most `size` open, waiters
-- served in order, a deadline per acquire, connections handed back in every case. opsh.pg binds it
-- to its own connect path (TLS policy, host resolution, dry-run sessions).
local core = require("opsh._core")
local check = require("opsh.check")

local M = {}

local open, connect_params, closer, raise

local Pool = {}
Pool.__index = Pool


--- pool{uri=|conninfo=|host=..., size = N, acquire_timeout = seconds} -> pool
local function new(opts)
  check.table("pg.pool", 1, opts)
  local size = opts.size or 10
  if math.type(size) ~= "integer" or size < 1 then
    check.fail("pg.pool", 1, "must be a positive integer, got " .. tostring(size), "size")
  end
  local timeout = opts.acquire_timeout or 30
  if type(timeout) ~= "number" or timeout < 0 then
    check.fail("pg.pool", 1, "must be a non-negative number, got " .. tostring(timeout), "acquire_timeout")
  end
  return setmetatable({
    spec = connect_params(opts, nil, "pool", true),
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
  local t = core.spawn(open, pool.spec)
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
    if self.closed then
      raise("pg_pool", "the pool is closed", {size = self.size, timeout = self.acquire_timeout})
    end
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

--- pool:query(sql, ...) / pool:exec(sql) -> the result, on a connection borrowed for that one statement
function Pool:query(sql, ...)
  local conn = self:acquire()
  local _ <close> = closer(function() self:release(conn) end)
  return conn:query(sql, ...)
end

function Pool:exec(sql)
  local conn = self:acquire()
  local _ <close> = closer(function() self:release(conn) end)
  return conn:exec(sql)
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

--- bind{open =, connect_params =, closer =, raise =} -> pg.pool: the constructor over opsh.pg's internals
function M.bind(internals)
  open, connect_params = internals.open, internals.connect_params
  closer, raise = internals.closer, internals.raise
  return new
end

return M
