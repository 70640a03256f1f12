-- opsh.azure.arm: the Azure Resource Manager client. One opsh.http client per environment with
-- the credential chain's ARM token, the process's throttling budget for the subscription and
-- principal, ARM's errors as kind "azure", 500/408 retried for idempotent calls (429 and
-- 502-504 are opsh.http's), long-running operations followed to their end (or left as a
-- handle), nextLink paging as an iterator. In a dry-run mutations are recorded, not sent (opsh.http).
local core = require("opsh._core")
local http = require("opsh.http")
local errors = require("opsh.azure.errors")
local lro = require("opsh.azure.lro")
local throttle = require("opsh.azure.throttle")
local redact = require("opsh.redact")

local M = {}

local IDEMPOTENT = {GET = true, HEAD = true, PUT = true, DELETE = true}
local RETRY_500 = {[500] = true, [408] = true}
local CALL_OPTIONS = {api_version = true, body = true, query = true, headers = true, missing_ok = true,
  wait = true, final_state = true, poll_interval = true, timeout = true, label = true, secret_fields = true}

local Arm = {}
Arm.__index = Arm

local function usage(fname, msg)
  error(core.error("usage", string.format("bad argument to 'arm:%s' (%s)", fname, msg)), 0)
end

local function uuid()
  local b = {require("opsh.crypto").random_bytes(16):byte(1, 16)}
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local hex = string.format(string.rep("%02x", 16), table.unpack(b))
  return string.format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16), hex:sub(17, 20),
    hex:sub(21, 32))
end

--- new(envt, {credential =, retries = 4, poll_interval = 30, min_poll = 0.2, budget = true}) -> arm
function M.new(envt, opts)
  opts = opts or {}
  local credential = opts.credential or require("opsh.azure").credential(envt)
  local cloud = credential.cloud
  local subscription = envt.subscription or os.getenv("AZURE_SUBSCRIPTION_ID")
  local budget = throttle.budget(subscription or "-", credential:principal())
  -- budget = false: nothing waits (the budget still counts what the server says, 429s included)
  if opts.budget == false then budget = throttle.unpaced(budget) end
  local self = setmetatable({envt = envt, credential = credential, cloud = cloud, subscription = subscription,
    budget = budget, retries = opts.retries or 4, poll = {poll_interval = opts.poll_interval,
      min_poll = opts.min_poll, max_poll = opts.max_poll}}, Arm)
  self.http = http.client{base_url = cloud.arm, ca = cloud.ca, auth = credential:auth("arm"),
    throttle = throttle.throttle(budget), raise_for_status = false,
    headers = {Accept = "application/json"}, timeout = opts.timeout or 120, retries = opts.http_retries or 4,
    max_retry_after = opts.max_retry_after or 300}
  return self
end

--- arm:id(resource_group, provider_type, name, ...) -> "/subscriptions/<sub>/resourceGroups/<rg>/providers/…"
function Arm:id(resource_group, provider_type, name, ...)
  if not self.subscription then
    error(core.error("config", string.format("environment '%s' names no subscription", tostring(self.envt.name))), 0)
  end
  local parts = {"/subscriptions/", self.subscription}
  if resource_group then parts[#parts + 1] = "/resourceGroups/" .. resource_group end
  if provider_type then parts[#parts + 1] = "/providers/" .. provider_type .. "/" .. name end
  local rest = table.pack(...)
  for i = 1, rest.n, 2 do
    parts[#parts + 1] = "/" .. rest[i]
    if rest[i + 1] ~= nil then parts[#parts + 1] = "/" .. rest[i + 1] end
  end
  return table.concat(parts)
end

-- one call, 500/408 retried for idempotent methods -> res (any status), or a dry-run answer
function Arm:send(method, path, o)
  local query
  if o.api_version and not path:find("[?&]api%-version=") then
    query = {["api-version"] = o.api_version}
  end
  if o.query then
    query = query or {}
    for k, v in pairs(o.query) do query[k] = v end
  end
  local headers = {["x-ms-correlation-request-id"] = o.correlation_id}
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  local req = {method = method, url = path, query = query, headers = headers, timeout = o.timeout,
    secret_fields = o.secret_fields}
  if type(o.body) == "table" then req.json = o.body elseif o.body ~= nil then req.body = o.body end
  if method == "POST" and o.read then req.read = true end
  local attempt = 0
  while true do
    attempt = attempt + 1
    local res = self.http:request(req)
    if res.dry_run or not (RETRY_500[res.status] and IDEMPOTENT[method] and attempt <= self.retries) then
      return res
    end
    local wait = http.retry_after(res.headers["retry-after"]) or math.min(30, 0.5 * 2 ^ (attempt - 1))
    require("opsh.log").debug(string.format("azure: %s %s: HTTP %d, attempt %d, again in %.1f s", method,
      res.url, res.status, attempt, wait))
    core.sleep(wait)
  end
end

--- arm:request(method, path, opts) -> the answer's JSON (nil when it has none, or for a 404 with
-- missing_ok); for a long-running operation, its result (or, with wait = false or --no-wait, an
-- operation {handle =, ...}); in a dry-run, a mutation gives {dry_run = true, record = ...}
function Arm:request(method, path, opts)
  local fname = method:lower()
  opts = opts or {}
  if type(path) ~= "string" or path == "" then usage(fname, "a path or URL is required") end
  if type(opts) ~= "table" then usage(fname, "options must be a table") end
  for k in pairs(opts) do
    if not CALL_OPTIONS[k] and k ~= "read" then usage(fname, "unknown option '" .. tostring(k) .. "'") end
  end
  if not opts.api_version and not path:find("[?&]api%-version=") then
    usage(fname, "api_version is required (ARM refuses a call without one)")
  end
  local o = setmetatable({correlation_id = uuid()}, {__index = opts})
  local secrets = opts.body ~= nil and redact.collect(opts.body, {}) or nil
  local res = self:send(method, path, o)
  if res.dry_run then return {dry_run = true, record = res.record} end
  if res.status == 404 and opts.missing_ok then return nil end
  if res.status >= 400 then error(errors.of_response(res, secrets), 0) end
  if method ~= "GET" and method ~= "HEAD" and not opts.read then
    local url = self.http:url(path)
    if o.api_version and not url:find("[?&]api%-version=") then
      url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. o.api_version
    end
    local op = lro.start(method, url, res, opts)
    if op then
      op.correlation_id = op.correlation_id or o.correlation_id
      op.handle = lro.encode(op, self.envt.name)
      if opts.wait == false or (opts.wait == nil and lro.no_wait) then
        if lro.no_wait and opts.wait == nil then
          io.stderr:write(string.format("opsh: %s %s started; resume with: opsh wait %s\n", method,
            (res.url:match("^[^?]*"):match("([^/]+)/*$")) or "", op.handle))
        end
        return {handle = op.handle, method = method, url = res.url, status = "InProgress"}
      end
      return self:wait_op(op, opts)
    end
  end
  if res.status == 204 or res.body == nil or res.body == "" then return nil end
  return res:json()
end

-- follow op to its end with this client
function Arm:wait_op(op, opts)
  local poll = setmetatable({label = opts and opts.label}, {__index = function(_, k)
    return (opts and opts[k]) or self.poll[k]
  end})
  -- every poll carries the operation's correlation id (a resumed one gets a new id for its polls)
  local cid = op.correlation_id or uuid()
  return lro.wait(op, function(url) return self:send("GET", url, {correlation_id = cid}) end, poll)
end

--- arm:wait(handle [, opts]) -> the result of an operation left with --no-wait / {wait = false}
function Arm:wait(handle, opts)
  local op = lro.decode(type(handle) == "table" and handle.handle or handle)
  for _, u in ipairs({op.url, op.aao, op.location}) do
    if not u:find("^[hH][tT][tT][pP][sS]?://") then usage("wait", "the handle's URLs must be absolute") end
    self.http:url(u)   -- raises unless it is on this client's ARM origin
  end
  return self:wait_op(op, opts)
end

function Arm:get(path, opts) return self:request("GET", path, opts) end
function Arm:put(path, opts) return self:request("PUT", path, opts) end
function Arm:patch(path, opts) return self:request("PATCH", path, opts) end
function Arm:post(path, opts) return self:request("POST", path, opts) end
function Arm:delete(path, opts) return self:request("DELETE", path, opts) end

--- arm:pages(path, opts) -> iterator over the pages of a list (each the decoded answer), following
-- nextLink until it is absent or null (a page may be empty and still have one)
function Arm:pages(path, opts)
  opts = opts or {}
  local nxt = path
  local first = true
  return function()
    if not nxt then return nil end
    local doc = self:request("GET", nxt, first and opts or {headers = opts.headers})
    first = false
    local link = type(doc) == "table" and doc.nextLink or nil
    if type(link) ~= "string" or link == "" then link = nil end
    nxt = link
    return doc or {value = {}}
  end
end

--- arm:list(path, opts) -> iterator over the items (`value`) of every page
function Arm:list(path, opts)
  local pages = self:pages(path, opts)
  local page, i = nil, 0
  return function()
    while true do
      if page then
        i = i + 1
        local item = page[i]
        if item ~= nil then return item end
      end
      local doc = pages()
      if not doc then return nil end
      page, i = type(doc.value) == "table" and doc.value or {}, 0
    end
  end
end

--- arm:all(path, opts) -> the items of every page, as one list
function Arm:all(path, opts)
  local out = {}
  for item in self:list(path, opts) do out[#out + 1] = item end
  return out
end

return M
