-- opsh.twin.arm.router: what every ARM request goes through before a resource handler sees it:
-- path normalisation (repeated slashes, case-insensitive matching), the bearer token, api-version,
-- the per-subscription throttling budget, the test knobs (injected failures, slow replies), the
-- answer headers (x-ms-request-id, x-ms-ratelimit-remaining-*), errors shaped as ARM's, paging and
-- long-running operations.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local identity = require("opsh.twin.identity")

local M = {}

M.KNOBS = "arm.knobs"     -- store collection of the test knobs (key "knobs"); see docs/twin-azure.md
M.COLLECTION = "arm"

local DEFAULT_BUDGET = {reads = 250, reads_per_second = 25, writes = 200, writes_per_second = 10}

function M.uuid()
  local b = crypto.hex_encode(crypto.random_bytes(16)):lower()
  return string.format("%s-%s-4%s-%s%s-%s", b:sub(1, 8), b:sub(9, 12), b:sub(14, 16),
    ("89ab"):sub(tonumber(b:sub(17, 17), 16) % 4 + 1, tonumber(b:sub(17, 17), 16) % 4 + 1), b:sub(18, 20),
    b:sub(21, 32))
end

function M.now_iso(offset)
  return os.date("!%Y-%m-%dT%H:%M:%S.0000000Z", os.time() + (offset or 0))
end

--- error answer in ARM's shape
function M.err(status, code, message, headers)
  return {status = status, headers = headers, json = {error = {code = code, message = message}}}
end

function M.not_found(kind, name)
  return M.err(404, "ResourceNotFound", string.format("The Resource '%s/%s' under resource group was not found. "
    .. "For more details please go to https://aka.ms/ARMResourceNotFoundFix", kind, name))
end

-- ---- knobs ----

function M.knobs(twin)
  return (twin.store:get(M.KNOBS, "knobs")) or {}
end

-- the first injected failure that applies to this request (its count decremented), or nil
local function injected(twin, knobs, req, path)
  for i, f in ipairs(knobs.fail or {}) do
    local count = tonumber(f.count) or 0
    if count > 0 and (not f.method or f.method:upper() == req.method)
      and (not f.match or path:find(tostring(f.match):lower(), 1, true)) then
      f.count = count - 1
      local list = knobs.fail
      list[i] = f
      twin.store:patch(M.KNOBS, "knobs", {fail = list})
      return f
    end
  end
end

-- ---- throttling: one token bucket per subscription and operation kind (reads, writes) ----

local buckets = {}

local function take(budget, sub, kind)
  local size = tonumber(budget[kind]) or DEFAULT_BUDGET[kind]
  local rate = tonumber(budget[kind .. "_per_second"]) or DEFAULT_BUDGET[kind .. "_per_second"]
  local key = sub .. "/" .. kind
  local b = buckets[key]
  local now = core.hrtime()
  if not b or b.size ~= size or b.rate ~= rate then
    b = {tokens = size, at = now, size = size, rate = rate}
    buckets[key] = b
  end
  b.tokens = math.min(size, b.tokens + (now - b.at) * rate)
  b.at = now
  if b.tokens < 1 then
    local wait = rate > 0 and math.ceil((1 - b.tokens) / rate) or 60
    return false, 0, math.max(1, wait)
  end
  b.tokens = b.tokens - 1
  return true, math.floor(b.tokens)
end

--- reset_budget(): every bucket full again (knobs changed)
function M.reset_budget() buckets = {} end

-- ---- paths ----

--- normalise(path) -> path with repeated and trailing slashes folded, and its lower-cased form
function M.normalise(path)
  local p = path:gsub("//+", "/")
  if #p > 1 then p = p:gsub("/$", "") end
  return p, p:lower()
end

--- page(req, base_url, items, [size]): a list answer, nextLink with a $skiptoken when more remain
function M.page(req, base_url, items, size)
  size = size or math.huge
  local skip = math.tointeger(tonumber(req.query["$skiptoken"] or "")) or 0
  local out = {}
  for i = skip + 1, math.min(#items, skip + size) do out[#out + 1] = items[i] end
  local body = {value = json.array(out)}
  if skip + size < #items then
    local q = {}
    for k, v in pairs(req.query) do if k ~= "$skiptoken" then q[#q + 1] = k .. "=" .. v end end
    table.sort(q)
    q[#q + 1] = "$skiptoken=" .. tostring(skip + size)
    body.nextLink = base_url .. req.path .. "?" .. table.concat(q, "&"):gsub(" ", "%%20")
  end
  return body
end

-- ---- the request pipeline ----

local WRITE = {PUT = true, PATCH = true, POST = true, DELETE = true}

--- wrap(twin, base, fn) -> a handler: auth, api-version, budget, knobs, headers around fn(req, ctx).
-- ctx = {path = normalised, lpath = lower-cased, claims, base = the endpoint URL, knobs, twin}
function M.wrap(twin, base, fn, opts)
  opts = opts or {}
  return function(req)
    local path, lpath = M.normalise(req.path)
    local request_id = M.uuid()
    local headers = {["x-ms-request-id"] = request_id,
      ["x-ms-correlation-request-id"] = req.headers["x-ms-correlation-request-id"] or request_id,
      ["x-ms-routing-request-id"] = "TWIN:" .. os.date("!%Y%m%dT%H%M%SZ") .. ":" .. request_id}
    if req.headers["x-ms-client-request-id"] then
      headers["x-ms-client-request-id"] = req.headers["x-ms-client-request-id"]
    end
    local function finish(res)
      if type(res) ~= "table" or res.status == nil then res = {status = 200, json = res} end
      res.headers = res.headers or {}
      for k, v in pairs(headers) do if res.headers[k] == nil then res.headers[k] = v end end
      if res.json == nil and res.body == nil and res.status ~= 204 and res.status ~= 202 then
        res.body = ""
      end
      return res
    end
    local knobs = M.knobs(twin)
    if tonumber(knobs.delay) and tonumber(knobs.delay) > 0 then core.sleep(tonumber(knobs.delay)) end
    local claims
    if not opts.anonymous then
      local c, denied = identity.verify(twin, req.headers.authorization, "https://management.azure.com/")
      if not c then return finish(denied) end
      claims = c
      if not req.query["api-version"] then
        return finish(M.err(400, "MissingApiVersionParameter",
          "The api-version query parameter (?api-version=) is required for all requests."))
      end
      local sub = lpath:match("^/subscriptions/([^/]+)") or "tenant"
      local kind = WRITE[req.method] and "writes" or "reads"
      local ok, left, wait = take(knobs.budget or {}, sub, kind)
      if not ok then
        headers["Retry-After"] = tostring(wait)
        headers["x-ms-ratelimit-remaining-subscription-" .. kind] = "0"
        return finish(M.err(429, "TooManyRequests", string.format("The request is being throttled as the limit "
          .. "has been reached for operation type - %s. Retry after %d seconds.", kind == "reads" and "Read"
          or "Write", wait)))
      end
      headers["x-ms-ratelimit-remaining-subscription-" .. kind] = tostring(left)
      headers["x-ms-ratelimit-remaining-subscription-global-" .. kind] = tostring(left * 15)
      headers["x-ms-ratelimit-remaining-subscription-resource-requests"] = tostring(left)
    end
    local f = injected(twin, knobs, req, lpath)
    if f then
      local status = math.tointeger(tonumber(f.status)) or 500
      if status == 429 or status == 503 then headers["Retry-After"] = tostring(f.retry_after or 1) end
      return finish(M.err(status, status == 429 and "TooManyRequests" or "InternalServerError",
        "injected by the twin's knobs (" .. status .. ")"))
    end
    local ok, res = pcall(fn, req, {path = path, lpath = lpath, claims = claims, base = base, knobs = knobs, twin = twin})
    if not ok then
      if core.is_error(res) and res.arm then return finish(res.arm) end
      error(res, 0)
    end
    return finish(res)
  end
end

--- fail(status, code, message): raise out of a handler as an ARM error answer
function M.fail(status, code, message)
  local e = core.error("arm", message)
  e.arm = M.err(status, code, message)
  error(e, 0)
end

return M
