-- opsh.azure.throttle: ARM's request budget, one per subscription and principal in the process,
-- shared by every task and every ARM client that calls with that identity. ARM reports what is
-- left after each request (x-ms-ratelimit-remaining-subscription-reads, -writes, -deletes, the
-- global and tenant ones, -resource-requests); each such header is a bucket here. Its refill rate
-- is learnt from how the remaining count moves against the requests sent, so the client paces
-- itself to the server's budget, whatever it is, and slows down before a 429 instead of after.
-- A request waits, in turn, until every bucket its kind has met holds a token beyond the reserve.
local core = require("opsh._core")

local M = {}

M.PREFIX = "x-ms-ratelimit-remaining-"
M.WINDOW = 1.0      -- seconds of observations a rate estimate is made over
M.MAX_WAIT = 5.0    -- seconds a waiter sleeps at most before it looks again
M.MAX_AGE = 30      -- seconds of reports a bucket's size is taken from (twice that at most)
M.TRUST = 0.95      -- the part of the learnt refill rate counted on (it is an estimate)

-- the kind of a request: which buckets it draws from
local function kind_of(method)
  if method == "GET" or method == "HEAD" then return "read" end
  if method == "DELETE" then return "delete" end
  return "write"
end
M.kind_of = kind_of

-- the kind a header counts ("...-reads" -> read); resource-requests and unknown ones count all kinds
local function header_kind(name)
  if name:find("reads?$") then return "read" end
  if name:find("deletes?$") then return "delete" end
  if name:find("writes?$") then return "write" end
  return nil
end

local Bucket = {}
Bucket.__index = Bucket

local function new_bucket(name)
  return setmetatable({name = name, remaining = nil, t = 0, sent = {}, rate = nil, max = 0,
    win_t = nil, win_r = nil, win_n = 0}, Bucket)
end

M.PENDING_TTL = 60  -- seconds after which a request never answered (a transport failure) stops counting

-- requests sent and not answered yet: they will take tokens the last report did not count
function Bucket:pending(now)
  local sent = self.sent
  while sent[1] and now - sent[1] > M.PENDING_TTL do table.remove(sent, 1) end
  return #sent
end

function Bucket:add() self.sent[#self.sent + 1] = core.hrtime() end

function Bucket:answered()
  if self.sent[1] then table.remove(self.sent, 1) end
end

-- tokens the bucket holds now, by the last report, the requests sent since and the refill
function Bucket:available(now)
  if self.remaining == nil then return math.huge end
  local refill = (self.rate or 0) * M.TRUST * (now - self.t)
  return math.min(self.max, self.remaining + refill) - self:pending(now)
end

-- a response reported `remaining`. Over a window of at least WINDOW seconds opened below the top,
-- the requests answered and the change of the count give the refill rate; a window that ends at
-- the top (refill lost to a full bucket) gives only a lower bound of it.
function Bucket:observe(remaining, now)
  -- the bucket's size: the most it reported over the last two MAX_AGE periods (a budget can shrink)
  if now - (self.max_t or now) > M.MAX_AGE then
    self.prev_max, self.cur_max, self.max_t = self.cur_max or 0, 0, now
  end
  self.max_t = self.max_t or now
  self.cur_max = math.max(self.cur_max or 0, remaining)
  self.max = math.max(self.cur_max, self.prev_max or 0)
  if self.win_t then
    self.win_n = self.win_n + 1
    local dt = now - self.win_t
    if dt >= M.WINDOW then
      local r = math.max(0, (remaining - self.win_r + self.win_n) / dt)
      if remaining < self.max then
        self.rate = self.rate and (self.rate + r) / 2 or r
      elseif not self.rate or r > self.rate then
        self.rate = r
      end
      self.win_t = nil
    end
  end
  if not self.win_t and remaining < self.max then self.win_t, self.win_r, self.win_n = now, remaining, 0 end
  self.remaining, self.t = remaining, now
end

local Budget = {}
Budget.__index = Budget

local budgets = setmetatable({}, {__mode = "v"})

--- budget(subscription, principal) -> the process's one budget for that identity
function M.budget(subscription, principal)
  local key = tostring(subscription) .. "\0" .. tostring(principal)
  local b = budgets[key]
  if not b then
    b = setmetatable({key = key, buckets = {}, by_kind = {read = {}, write = {}, delete = {}},
      queue = {}, waits = 0, throttled = 0, reserve = nil, enabled = true,
      known = {}, probing = {}}, Budget)
    budgets[key] = b
  end
  return b
end

--- unpaced(budget) -> a budget of its own that only counts (arm{budget = false}: for contrast)
function M.unpaced(budget)
  local b = M.budget(budget.key .. "\0unpaced", "")
  b.enabled = false
  return b
end

--- reset(): forget every budget (specs)
function M.reset()
  for k in pairs(budgets) do budgets[k] = nil end
end

-- the tokens kept back in a bucket: a margin for estimation error and other processes
function Budget:reserve_of(bucket)
  if self.reserve then return self.reserve end
  return math.max(2, math.floor(bucket.max * 0.04))
end

M.PROBE_TTL = 10   -- seconds the first request of a kind holds the others back at most
M.PROBE = 1.0       -- seconds between probes while a bucket's refill rate is not known yet

-- seconds until the request of `kind` may go (0: now). A bucket whose refill rate is not known
-- yet (nothing measured, or it seemed to refill nothing) lets one request through now and then, so
-- a fresh report comes; an empty one only after MAX_WAIT.
function Budget:wait_for(kind, now)
  -- nothing heard for this kind yet: one request goes first, so the budget is known before a burst
  if not self.known[kind] then
    local p = self.probing[kind]
    -- the probe's own retry (after a failure that brought no answer) goes; others wait for its answer
    if p and p.task ~= core.current() and now - p.t < M.PROBE_TTL then
      local st = p.task and p.task:status()
      if st == "ready" or st == "suspended" or st == "running" then return M.MAX_WAIT end
    end
    return 0
  end
  local longest = 0
  for _, bucket in ipairs(self.by_kind[kind]) do
    local avail = bucket:available(now)
    local need = 1 + self:reserve_of(bucket) - avail
    if need > 0 then
      local w
      if bucket.rate and bucket.rate > 0 then
        w = need / (bucket.rate * M.TRUST)
        -- a pessimistic estimate must not stall: with nothing on the way and a token there, one
        -- request a PROBE goes and brings a fresh report
        if w > M.PROBE and bucket:pending(now) == 0 and avail >= 1 then
          w = math.min(w, M.PROBE - (now - bucket.t))
        end
      elseif bucket:pending(now) > 0 then
        w = M.MAX_WAIT                    -- an answer on its way will say more
      else
        w = (avail >= 1 and M.PROBE or M.MAX_WAIT) - (now - bucket.t)
      end
      if w > longest then longest = w end
    end
  end
  return math.min(math.max(longest, 0), M.MAX_WAIT)
end

local function wake_head(self)
  local head = self.queue[1]
  if head then core.wake(head) end
end

local function nap(seconds)
  local me = core.current()
  local timer = core.spawn(function()
    core.sleep(seconds)
    core.wake(me)
  end)
  local _ <close> = setmetatable({}, {__close = function()
    local s = timer:status()
    if s == "ready" or s == "suspended" then timer:cancel() end
  end})
  core.suspend()
end

function Budget:taken(kind)
  if not self.known[kind] then self.probing[kind] = {t = core.hrtime(), task = core.current()} end
  for _, bucket in ipairs(self.by_kind[kind]) do bucket:add() end
end

--- budget:take(method): before a request — waits (in turn) until the buckets of its kind allow one
function Budget:take(method)
  local kind = kind_of(method)
  if not self.enabled then return kind end
  local queue = self.queue
  if #queue == 0 and self:wait_for(kind, core.hrtime()) == 0 then
    self:taken(kind)
    return kind
  end
  local me = core.current()
  queue[#queue + 1] = me
  self.waits = self.waits + 1
  local _ <close> = setmetatable({}, {__close = function()
    for i = 1, #queue do
      if queue[i] == me then table.remove(queue, i) break end
    end
    wake_head(self)
  end})
  while true do
    if queue[1] == me then
      local w = self:wait_for(kind, core.hrtime())
      if w <= 0 then
        self:taken(kind)
        return kind
      end
      nap(w)
    else
      core.suspend()
    end
  end
end

--- budget:done(kind, headers, status): after a response (or a failure, headers nil) — the request is
-- no longer pending, and what the server reports becomes each bucket's level
function Budget:done(kind, headers, status)
  local now = core.hrtime()
  if status == 429 then self.throttled = self.throttled + 1 end
  if headers then self.known[kind], self.probing[kind] = true, nil end
  local seen = {}
  if headers then
    for name, value in pairs(headers) do
      if type(name) == "string" and name:sub(1, #M.PREFIX) == M.PREFIX then
        local n = tonumber(value)
        if n then
          local bucket = self.buckets[name]
          if not bucket then
            bucket = new_bucket(name)
            self.buckets[name] = bucket
            local hk = header_kind(name)
            for k, list in pairs(self.by_kind) do
              if hk == nil or hk == k then list[#list + 1] = bucket end
            end
          else
            bucket:answered()
          end
          seen[bucket] = true
          bucket:observe(n, now)
        end
      end
    end
  end
  for _, bucket in ipairs(self.by_kind[kind]) do
    if not seen[bucket] then bucket:answered() end
  end
  wake_head(self)
end

--- budget:stats() -> {buckets = {name -> {remaining, rate, max}}, waits, throttled}
function Budget:stats()
  local out = {buckets = {}, waits = self.waits, throttled = self.throttled}
  for name, b in pairs(self.buckets) do
    out.buckets[name] = {remaining = b.remaining, rate = b.rate, max = b.max, pending = #b.sent}
  end
  return out
end

--- throttle(budget) -> an opsh.http client throttle drawing on the budget
function M.throttle(budget)
  return {
    before = function(_, info) info.azure_kind = budget:take(info.method) end,
    after = function(_, headers, info) budget:done(info.azure_kind or kind_of(info.method), headers, info.status) end,
  }
end

return M
