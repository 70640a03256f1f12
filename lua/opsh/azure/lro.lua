-- opsh.azure.lro: ARM's long-running operations, per the RPC rules: an operation is followed
-- through its Azure-AsyncOperation URL (a status document), else its Location URL (202 until it
-- answers with the result), else the resource's provisioningState; each wait is the answer's
-- Retry-After. Terminal states are Succeeded, Failed and Canceled; the result is the resource
-- (PUT, PATCH: a final GET), the Location answer or the status document's properties (POST), or
-- nothing (DELETE). An operation can be left (--no-wait, {wait = false}) as a handle another
-- process resumes: `opsh wait <handle>`, azure.wait(handle).
local core = require("opsh._core")
local errors = require("opsh.azure.errors")
local log = require("opsh.log")

local M = {}

M.TERMINAL = {succeeded = "Succeeded", failed = "Failed", canceled = "Canceled", cancelled = "Canceled"}
M.PREFIX = "azop1."
M.no_wait = false   -- `opsh --no-wait`: mutations give a handle instead of waiting

local function terminal(state)
  if type(state) ~= "string" then return nil end
  return M.TERMINAL[state:lower()]
end
M.terminal = terminal

local function provisioning_state(doc)
  if type(doc) ~= "table" then return nil end
  local p = doc.properties
  return type(p) == "table" and p.provisioningState or doc.provisioningState
end
M.provisioning_state = provisioning_state

--- start(method, url, res, opts) -> op, or nil when the answer is already the end of it.
-- url: the resource's URL (with its api-version); res: the first answer (2xx).
function M.start(method, url, res, opts)
  local h = res.headers
  local aao, location = h["azure-asyncoperation"], h["location"]
  local op = {method = method, url = url, shown = res.url, aao = aao,
    location = (res.status == 202 or res.status == 201 or method ~= "PUT") and location or nil,
    final_state = opts.final_state, retry_after = tonumber(h["retry-after"]), http_status = res.status,
    correlation_id = h["x-ms-correlation-request-id"], request_id = h["x-ms-request-id"]}
  if aao or res.status == 202 then return op end
  if (method == "PUT" or method == "PATCH") and (res.status == 200 or res.status == 201) then
    local ok, doc = pcall(res.json, res)
    local state = ok and provisioning_state(doc)
    if state and not terminal(state) then return op end
  end
  return nil
end

--- encode(op, env_name) -> the handle: a string that holds what is needed to follow it elsewhere
function M.encode(op, env_name)
  local crypto = require("opsh.crypto")
  local doc = {v = 1, m = op.method, u = op.url, a = op.aao, l = op.location, f = op.final_state, e = env_name}
  return M.PREFIX .. crypto.base64url_encode(require("opsh.json").encode(doc))
end

--- decode(handle) -> op, env name
function M.decode(handle)
  local function bad(why)
    error(core.error("usage", "not an operation handle (" .. why .. "): give what --no-wait printed, 'azop1.…'"), 0)
  end
  if type(handle) ~= "string" then bad("a string is expected") end
  if handle:sub(1, #M.PREFIX) ~= M.PREFIX then bad("it does not start with " .. M.PREFIX) end
  local ok, text = pcall(require("opsh.crypto").base64url_decode, handle:sub(#M.PREFIX + 1))
  if not ok then bad("it is not base64url") end
  local dok, doc = pcall(require("opsh.json").decode, text)
  if not dok or type(doc) ~= "table" or doc.v ~= 1 or type(doc.m) ~= "string" or type(doc.u) ~= "string" then
    bad("it does not decode to an operation")
  end
  return {method = doc.m, url = doc.u, aao = doc.a, location = doc.l, final_state = doc.f,
    shown = require("opsh.http").redact(doc.u), handle = handle, retry_after = 0}, doc.e
end

local function check_status(res, what)
  if res.status >= 400 then
    local err = errors.of_response(res)
    err.message = what .. ": " .. err.message
    error(err, 0)
  end
end

-- the wait before poll n: the last answer's Retry-After (integer seconds, per the RPC), else 1 s
-- doubling at each poll up to poll_interval (30 s)
local function interval(res, opts, n)
  local ra = res and tonumber(res.headers["retry-after"])
  local wait = ra or math.min(opts.poll_interval or 30, 2 ^ ((n or 1) - 1))
  return math.max(opts.min_poll or 0.2, math.min(wait, opts.max_poll or 60))
end

local function name_of(url)
  return (url:match("^[^?]*"):match("([^/]+)/*$")) or url
end

--- wait(op, get, opts) -> the operation's result. get(url) -> res (raw answer, any status) does
-- the polls through the ARM client (its budget and credentials); opts: poll_interval, min_poll,
-- max_poll, label, handle (shown when the wait is cancelled).
function M.wait(op, get, opts)
  opts = opts or {}
  local label = opts.label or (op.method .. " " .. name_of(op.url))
  local p <close> = require("opsh.progress").start(label .. ": in progress")
  local finished = false
  local _ <close> = setmetatable({}, {__close = function(_, err)
    if err ~= nil and not finished and op.handle and core.cancelled(err) then
      log.info(string.format("azure: %s left running; resume with: opsh wait %s", label, op.handle))
    end
  end})
  -- the first wait is the first answer's Retry-After; an operation resumed from its handle is looked at at once
  local first = {headers = {["retry-after"] = op.retry_after and tostring(op.retry_after)}}
  local last = first
  local doc
  local n = 0
  local function pause()
    n = n + 1
    core.sleep(interval(last, opts, n))
  end
  if op.aao then
    while true do
      pause()
      last = get(op.aao)
      check_status(last, "reading the status of " .. label)
      doc = last:json() or {}
      local state = terminal(doc.status)
      p:update(string.format("%s: %s%s", label, tostring(doc.status or "?"),
        doc.percentComplete and string.format(" %d%%", math.floor(tonumber(doc.percentComplete) or 0)) or ""))
      if state == "Succeeded" then break end
      if state then error(errors.operation_failed(op, doc, state), 0) end
    end
  elseif op.location then
    while true do
      pause()
      last = get(op.location)
      if last.status ~= 202 then break end
      p:update(label .. ": in progress")
    end
    check_status(last, label)
    finished = true
    p:done()
    if op.method == "PUT" or op.method == "PATCH" then
      local res = get(op.url)
      check_status(res, label)
      return res:json()
    end
    if last.status == 204 then return nil end
    return last:json()
  else
    while true do
      pause()
      last = get(op.url)
      check_status(last, label)
      doc = last:json()
      local raw = provisioning_state(doc)
      local state = raw == nil and "Succeeded" or terminal(raw)
      p:update(string.format("%s: %s", label, tostring(raw or "?")))
      if state == "Succeeded" then
        finished = true
        return doc
      end
      if state then error(errors.operation_failed(op, doc, state), 0) end
    end
  end
  -- the status document said Succeeded: the result is where the operation's kind puts it
  finished = true
  p:done()
  if op.method == "DELETE" then return nil end
  if op.method == "POST" then
    if op.final_state ~= "azure-async-operation" and op.location then
      local res = get(op.location)
      check_status(res, label)
      if res.status == 204 or res.status == 202 then return doc.properties end
      return res:json()
    end
    return doc.properties
  end
  local res = get(op.url)
  check_status(res, label)
  return res:json()
end

return M
