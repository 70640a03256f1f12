-- opsh.http.budget: http.budget{rate, burst}, a token bucket that paces requests, shared by as
-- many clients as share the server's limit (ARM's per-subscription buckets). As a client's throttle
-- it takes a token before each attempt (waiting, in turn, when there is none) and, given
-- `header`, sets its level from the remaining count the server reports after each response
-- (x-ms-ratelimit-remaining-subscription-reads). Waiting is opsh.sleep-like: only the task waits.
local core = require("opsh._core")

local M = {}

local Budget = {}
Budget.__index = Budget

local function usage(fname, arg, msg)
  require("opsh.check").fail(fname, arg, msg)
end

--- new{rate = tokens per second, burst = most tokens held, level = burst, header = nil} -> budget
function M.new(opts)
  if type(opts) ~= "table" then usage("http.budget", 1, "options table expected, got " .. require("opsh.check").typename(opts)) end
  for k in pairs(opts) do
    if k ~= "rate" and k ~= "burst" and k ~= "level" and k ~= "header" then
      require("opsh.check").unknown("http.budget", 1, k, {"burst", "header", "level", "rate"})
    end
  end
  local rate, burst = opts.rate, opts.burst
  if type(rate) ~= "number" or rate < 0 then usage("http.budget", 1, "rate must be a non-negative number") end
  if type(burst) ~= "number" or burst <= 0 then usage("http.budget", 1, "burst must be a positive number") end
  local level = opts.level == nil and burst or opts.level
  if type(level) ~= "number" or level < 0 then usage("http.budget", 1, "level must be a non-negative number") end
  if opts.header ~= nil and type(opts.header) ~= "string" then usage("http.budget", 1, "header must be a header name") end
  return setmetatable({rate = rate, burst = burst, tokens = math.min(level, burst), t = core.hrtime(),
    header = opts.header and opts.header:lower(), queue = {}}, Budget)
end

function Budget:refill()
  local now = core.hrtime()
  if self.rate > 0 then self.tokens = math.min(self.burst, self.tokens + (now - self.t) * self.rate) end
  self.t = now
end

--- budget:level() -> the tokens there are now
function Budget:level()
  self:refill()
  return self.tokens
end

-- let the first waiter look again
local function wake_head(self)
  local head = self.queue[1]
  if head then core.wake(head.task) end
end

--- budget:set(n): the server says n remain; the level becomes n (at most burst)
function Budget:set(n)
  if type(n) ~= "number" or n < 0 then usage("set", 1, "a non-negative number expected") end
  self:refill()
  self.tokens = math.min(n, self.burst)
  wake_head(self)
end

-- suspend until woken, or until `seconds` have passed when given
local function nap(task, seconds)
  local timer = seconds and core.spawn(function()
    core.sleep(seconds)
    core.wake(task)
  end)
  local _ <close> = setmetatable({}, {__close = function()
    if timer then
      local s = timer:status()
      if s == "ready" or s == "suspended" then timer:cancel() end
    end
  end})
  core.suspend()
end

--- budget:take([n = 1]): takes n tokens, waiting (in turn with the other tasks waiting) until
-- there are
function Budget:take(n)
  n = n or 1
  if type(n) ~= "number" or n <= 0 or n > self.burst then
    usage("take", 1, "a number of tokens from 0 to burst expected")
  end
  self:refill()
  if #self.queue == 0 and self.tokens >= n then
    self.tokens = self.tokens - n
    return
  end
  local me = {task = core.current(), n = n}
  if not me.task then error(core.error("usage", "budget:take must run inside an opsh task"), 2) end
  local queue = self.queue
  queue[#queue + 1] = me
  local _ <close> = setmetatable({}, {__close = function()
    -- taken, failed or cancelled: out of the queue, and the next in line looks
    for i = 1, #queue do
      if queue[i] == me then
        table.remove(queue, i)
        break
      end
    end
    wake_head(self)
  end})
  while true do
    self:refill()
    if queue[1] == me then
      if self.tokens >= n then
        self.tokens = self.tokens - n
        return
      end
      nap(me.task, self.rate > 0 and (n - self.tokens) / self.rate or nil)
    else
      nap(me.task, nil)
    end
  end
end

--- budget:before(info): as a throttle, one token per attempt
function Budget:before()
  self:take(1)
end

--- budget:after(headers): as a throttle with `header`, the level the server reports
function Budget:after(headers)
  if not self.header then return end
  local v = tonumber(headers[self.header])
  if v then self:set(v) end
end

return M
