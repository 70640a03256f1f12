-- opsh: the public Lua API. Tasks, synchronisation, errors and secrets come from the engine
-- (opsh._core); the other modules (opsh.out, opsh.log, opsh.http, ...) load on first use.
local core = require("opsh._core")
local runtime = require("opsh.runtime")

local M = {}

M.version = runtime.version
M.spawn = core.spawn
M.sleep = core.sleep
M.yield = core.yield
M.current = core.current
M.tasks = core.tasks
M.secret = core.secret
M.is_secret = core.is_secret
M.is_error = core.is_error

--- A structured error object (not raised): {kind=, message=, ...fields}.
function M.error(kind, message, fields)
  return core.error(kind, message, fields)
end

--- Raise a structured error.
function M.raise(kind, message, fields)
  error(core.error(kind, message, fields), 0)
end

--- shield(fn [, {timeout = s}]) -> fn's results. While fn runs, a cancellation of the task
-- waits; it is raised when fn ends. fn's waits run under their own deadline (default:
-- cleanup_timeout(); math.huge: none), past which they raise {kind="timeout"}.
function M.shield(fn, opts)
  if type(fn) ~= "function" then error("bad argument #1 to 'shield' (function expected)", 2) end
  return core.shield(fn, opts and opts.timeout)
end

--- cleanup_timeout([seconds]) -> the deadline of a cancelled task's cleanups (default 5 s,
-- $OPSH_CLEANUP_TIMEOUT), set first when given.
M.cleanup_timeout = core.cleanup_timeout

-- The running task's own cancellation passes through try() and parallel() (and pcall).
local function unstoppable(err)
  return core.cancelled(err)
end

local function as_error(err)
  if core.is_error(err) then return err end
  if type(err) == "table" and getmetatable(err) == nil and type(err.kind) == "string"
      and type(err.message) == "string" then
    return setmetatable(err, core.error_meta)   -- the structured shape, raised as a plain table
  end
  return core.error("lua", tostring(err))
end

--- try(fn, ...) -> true, results... | false, err (err is always a structured error).
function M.try(fn, ...)
  local res = table.pack(pcall(fn, ...))
  if res[1] then return table.unpack(res, 1, res.n) end
  if unstoppable(res[2]) then error(res[2], 0) end
  return false, as_error(res[2])
end

--- Cancels the tasks that have not finished and waits until their cleanups have (when the
-- caller can wait: not in a cleanup cut off by its deadline).
local function settle(tasks)
  for _, t in ipairs(tasks) do t:cancel() end
  if not coroutine.isyieldable() then return end
  for _, t in ipairs(tasks) do pcall(t.wait, t) end
end

--- Settles the tasks when the variable holding the guard goes out of scope.
local function cancel_guard(tasks)
  return setmetatable({}, {__close = function() settle(tasks) end})
end

--- timeout(seconds, fn, ...) -> fn's results, or raises {kind="timeout"} once fn, cancelled,
-- has run its cleanups. math.huge: no time limit.
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" then
    error("bad argument #1 to 'timeout' (number expected, got " .. type(seconds) .. ")", 2)
  end
  core.duration(seconds, "opsh.timeout")
  local child = core.spawn(fn, ...)
  local _ <close> = cancel_guard({child})
  local res = table.pack(pcall(child.wait, child, seconds))
  if res[1] then return table.unpack(res, 2, res.n) end
  if child:cancel() then
    pcall(child.wait, child)
    M.raise("timeout", string.format("timed out after %g s", seconds), {seconds = seconds})
  end
  error(res[2], 0)
end

local function item_label(item, i)
  local t = type(item)
  if t == "string" or t == "number" then return string.format("item %d (%s)", i, item) end
  if t == "table" and type(item.name) == "string" then return string.format("item %d (%s)", i, item.name) end
  return string.format("item %d", i)
end

--- parallel(items, fn, {limit=N}) -> {fn(items[1], 1), ...} in input order.
-- The first error cancels the rest and is raised again, naming the item that failed, with the
-- failing call's frames in its `traceback` field (the CLI prints them).
function M.parallel(items, fn, opts)
  local n = #items
  local limit = opts and opts.limit or n
  if type(limit) ~= "number" or limit < 1 then
    error("bad argument #3 to 'parallel' (limit must be a positive number)", 2)
  end
  local results, next_index, running, failure = {}, 0, 0, nil
  local parent = core.current()
  if not parent then M.raise("usage", "opsh.parallel must run inside an opsh task") end
  local traceback
  -- the failing worker's own frames, up to (not including) the worker loop
  local function keep_frames(err)
    if not failure and not unstoppable(err) then
      traceback = debug.traceback(nil, 2):gsub("\n[^\n]*%[C%]: in function 'xpcall'.*$", "")
    end
    return err
  end
  local function worker()
    while not failure do
      next_index = next_index + 1
      local i = next_index
      if i > n then break end
      local ok, res = xpcall(fn, keep_frames, items[i], i)
      if ok then
        results[i] = res
      elseif not failure then
        failure = {index = i, err = res, traceback = traceback}
      end
    end
    running = running - 1
    core.wake(parent)
  end
  local workers = {}
  local _ <close> = cancel_guard(workers)
  for w = 1, math.min(limit, n) do
    running = running + 1
    workers[w] = core.spawn(worker)
  end
  while running > 0 and not failure do core.suspend() end
  if failure then
    settle(workers)   -- the others are cancelled and their cleanups finish before the error goes on
    local err = failure.err
    if unstoppable(err) then error(err, 0) end
    err = as_error(err)
    local fields = {item = failure.index, cause = err}
    for k, v in pairs(err) do if fields[k] == nil and k ~= "message" then fields[k] = v end end
    fields.traceback = fields.traceback or failure.traceback
    error(core.error(err.kind, item_label(items[failure.index], failure.index) .. ": " .. err.message,
      fields), 0)
  end
  return results
end

--- mutex() -> m with m:lock(), m:unlock(), m:with(fn, ...)
function M.mutex()
  local m = {owner = nil, waiters = {}}
  function m:lock()
    local me = core.current()
    if self.owner == nil then self.owner = me or true; return end
    if self.owner == me then M.raise("usage", "mutex is already held by this task") end
    self.waiters[#self.waiters + 1] = me
    -- cancelled while waiting: leave the queue, or pass on a lock handed over meanwhile
    local _ <close> = setmetatable({}, {__close = function(_, err)
      if err == nil then return end
      if self.owner == me then self:unlock(); return end
      for i, w in ipairs(self.waiters) do
        if w == me then table.remove(self.waiters, i); break end
      end
    end})
    core.suspend()   -- unlock() hands ownership over before waking us
  end
  function m:unlock()
    if self.owner == nil then M.raise("usage", "unlock of a mutex that is not locked") end
    while #self.waiters > 0 do
      local w = table.remove(self.waiters, 1)
      if core.wake(w) then self.owner = w; return end
    end
    self.owner = nil
  end
  function m:with(fn, ...)
    self:lock()
    local _ <close> = setmetatable({}, {__close = function() self:unlock() end})
    return fn(...)
  end
  return m
end

--- The active environment (see opsh.env).
function M.env()
  return require("opsh.env").current()
end

local lazy = {out = true, log = true, json = true, yaml = true, http = true, server = true,
  crypto = true, proc = true, time = true, fs = true, pg = true, redis = true, twin = true,
  progress = true, net = true}

return setmetatable(M, {__fields = lazy, __index = function(t, k)
  if lazy[k] then
    local mod = require("opsh." .. k)
    rawset(t, k, mod)
    return mod
  end
end})
