-- opsh.lock: leases on the resources a procedure touches, held in the environment's Redis so two
-- runs from any machines cannot act on one resource at once. A lease is one key per resource
-- (`opsh:lock:<resource>`) set with NX and a time to live, renewed by a task while held, and
-- carrying who holds it; each grant also takes a fencing token (a counter that only grows) that a
-- procedure may pass on to show it still holds the newest grant. Several resources are taken in
-- name order, all or none, so two runs wanting the same pair cannot deadlock.
local core = require("opsh._core")
local json = require("opsh.json")

local M = {}

M.DEFAULT_TTL = 30        -- seconds a lease lives without renewal (a crashed holder frees it this late)
M.DEFAULT_WAIT = 0        -- seconds to wait for a busy resource before giving up
M.PREFIX = "opsh:lock:"

local function usage(message) error(core.error("usage", message), 3) end

-- KEYS[1] = lease key; ARGV[1] = the holder's value; ARGV[2] = ttl ms
local RENEW = [[if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end]]
local RELEASE = [[if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1]) else return 0 end]]

local function check_resources(resources)
  if type(resources) == "string" then resources = {resources} end
  if type(resources) ~= "table" or #resources == 0 then
    usage("lock: give a resource name or a list of them (e.g. \"postgres:psql-legal-production\")")
  end
  local seen, list = {}, {}
  for i, r in ipairs(resources) do
    if type(r) ~= "string" or not r:find("^[%w][%w_.:/%-]*$") then
      usage(string.format("lock: resource #%d must be a name like \"postgres:server-name\", not %s", i,
        type(r) == "string" and ("'" .. r .. "'") or type(r)))
    end
    if not seen[r] then seen[r] = true; list[#list + 1] = r end
  end
  table.sort(list)
  return list
end

local function describe_holder(resource, text)
  local ok, h = pcall(json.decode, text or "")
  if not ok or type(h) ~= "table" then return resource .. " is locked (holder unknown)" end
  return string.format("%s is locked by %s@%s (pid %s, %s) since %s", resource, tostring(h.operator),
    tostring(h.host), tostring(h.pid), h.procedure and ("procedure " .. h.procedure) or "no procedure",
    tostring(h.since))
end

local Lease = {}
Lease.__index = Lease
Lease.__name = "opsh.lock.lease"

--- acquire(redis_connection, resources [, {ttl=, wait=, procedure=, operator=}]) -> lease
-- Raises {kind="locked", resource=, holder=} naming who holds it when a resource stays busy for
-- longer than `wait` seconds (default 0: do not wait). In a dry-run no lease is taken (nothing will
-- change) and the lease says so (lease.dry_run).
function M.acquire(r, resources, opts)
  opts = opts or {}
  if type(opts) ~= "table" then usage("lock.acquire: options must be a table") end
  for k in pairs(opts) do
    if k ~= "ttl" and k ~= "wait" and k ~= "procedure" and k ~= "operator" then
      usage(string.format("lock.acquire: unknown option '%s' (ttl, wait, procedure, operator)", tostring(k)))
    end
  end
  local list = check_resources(resources)
  local ttl = opts.ttl or M.DEFAULT_TTL
  local wait = opts.wait or M.DEFAULT_WAIT
  if type(ttl) ~= "number" or ttl < 1 then usage("lock.acquire: ttl must be at least 1 second") end
  if type(wait) ~= "number" or wait < 0 then usage("lock.acquire: wait must be a number of seconds >= 0") end
  local lease = setmetatable({resources = list, held = {}, tokens = {}, ttl = ttl, redis = r}, Lease)
  if require("opsh.dryrun").active() then
    lease.dry_run = true
    return lease
  end
  local operator, host, pid = require("opsh.audit").who()
  lease.value = json.encode({
    operator = opts.operator or operator, host = host, pid = pid, procedure = opts.procedure,
    since = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    nonce = core.reveal(require("opsh.crypto").random_password(16, {url = true})),
  }, {sort_keys = true})
  local ttl_ms = math.floor(ttl * 1000)
  local deadline = core.hrtime() + wait
  local pause = 0.05
  local audit = require("opsh.audit")
  -- the leases are the run's own bookkeeping, not changes to the platform: no audit lines
  audit.quietly(function()
    while true do
      local busy, holder
      for _, res in ipairs(list) do
        local key = M.PREFIX .. res
        if r:set(key, lease.value, "NX", "PX", ttl_ms) then
          lease.held[#lease.held + 1] = res
          lease.tokens[res] = r:incr(M.PREFIX .. "fence:" .. res)
        else
          busy, holder = res, r:get(key)
          break
        end
      end
      if not busy then break end
      lease:release()
      lease.held, lease.tokens, lease.released = {}, {}, nil
      if core.hrtime() >= deadline then
        error(core.error("locked", describe_holder(busy, holder) ..
          (wait > 0 and string.format("; waited %g s", wait) or ""), {resource = busy, holder = holder}), 0)
      end
      core.sleep(math.min(pause, math.max(0.001, deadline - core.hrtime())))
      pause = math.min(pause * 2, 1)
    end
  end)
  lease.renewer = core.spawn(function()
    while true do
      core.sleep(ttl / 3)
      for _, res in ipairs(lease.held) do
        local ok, n = pcall(audit.quietly, r.call, r, "EVAL", RENEW, 1, M.PREFIX .. res, lease.value, ttl_ms)
        if ok and n == 0 then lease.lost = res end
      end
    end
  end)
  return lease
end

--- lease:token(resource) -> the fencing token of this grant (an integer that only grows per resource)
function Lease:token(resource) return self.tokens[resource or self.resources[1]] end

--- lease:check(): raises {kind="locked"} if the lease was lost (expired and taken by someone else)
function Lease:check()
  if self.lost then
    error(core.error("locked", string.format("the lease on %s was lost (not renewed within %g s)", self.lost,
      self.ttl), {resource = self.lost}), 0)
  end
  return true
end

--- lease:release(): frees every resource still held by this lease (only if still ours)
function Lease:release()
  if self.released then return end
  self.released = true
  if self.renewer then self.renewer:cancel(); self.renewer = nil end
  for _, res in ipairs(self.held) do
    pcall(require("opsh.audit").quietly, self.redis.call, self.redis, "EVAL", RELEASE, 1, M.PREFIX .. res, self.value)
  end
end
Lease.__close = Lease.release
Lease.__gc = function(self) if self.renewer then self.renewer:cancel() end end

--- holder(redis_connection, resource) -> who holds it ({operator, host, pid, procedure, since}), or nil
function M.holder(r, resource)
  local text = r:get(M.PREFIX .. check_resources(resource)[1])
  if text == nil then return nil end
  local ok, h = pcall(json.decode, text)
  return ok and h or nil
end

return M
