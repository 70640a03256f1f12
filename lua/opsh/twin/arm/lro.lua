-- opsh.twin.arm.lro: long-running operations as ARM's RPC describes them. A mutation answers at once
-- (201/202 with Azure-AsyncOperation, Location and a short Retry-After); its work runs in a task of its
-- own after `lro_seconds` (knob, default 2), and the operation URLs report InProgress, then the
-- terminal state. The Location URL answers 202 until the end, then what the synchronous call would have.
local core = require("opsh._core")
local log = require("opsh.log")
local router = require("opsh.twin.arm.router")

local M = {}

local ops = {}   -- id -> {status, started, ended, answer, error}

-- Operations are also kept in the twin store (collection arm.operations), so that their URLs answer
-- after the API process restarts; one that was running then is reported Failed.
local STORE = "arm.operations"

local function save(twin, id, op)
  if not (twin and twin.store) then return end
  local ok, err = pcall(twin.store.put, twin.store, STORE, id, op)
  if not ok then log.warn("twin ARM: operation not stored", {id = id, error = tostring(err)}) end
end

local function find(twin, id)
  if ops[id] then return ops[id] end
  local op = twin and twin.store and twin.store:get(STORE, id)
  if op and op.status == "InProgress" then
    op.status, op.ended = "Failed", op.started
    op.error = {code = "OperationInterrupted", message = "The twin's API process restarted during the operation."}
  end
  return op
end

--- start(ctx, {provider =, location =, work = fn() -> final answer (a table or a response), seconds =})
-- -> headers for the 201/202 answer. work runs after the delay; an error it raises (router.fail or a
-- failure of a real server) makes the operation Failed with that error.
function M.start(ctx, opts)
  local id = router.uuid()
  local op = {status = "InProgress", started = router.now_iso()}
  ops[id] = op
  save(ctx.twin, id, op)
  local seconds = tonumber(opts.seconds or ctx.knobs.lro_seconds) or 2
  core.spawn(function()
    if seconds > 0 then core.sleep(seconds) end
    local ok, res = pcall(opts.work)
    op.ended = router.now_iso()
    if ok then
      op.status, op.answer = "Succeeded", res
    else
      op.status = "Failed"
      if core.is_error(res) and res.arm then
        op.error = res.arm.json.error
      else
        log.error("twin ARM operation failed", {error = tostring(res)})
        op.error = {code = "InternalServerError", message = tostring(core.is_error(res) and res.message or res)}
      end
    end
    save(ctx.twin, id, op)
    if opts.done then pcall(opts.done, ok, res) end
  end)
  local sub = ctx.lpath:match("^/subscriptions/([^/]+)") or ""
  local base = string.format("%s/subscriptions/%s/providers/%s/locations/%s", ctx.base, sub, opts.provider,
    (opts.location or "westeurope"):lower():gsub("%s", ""))
  local api = "?api-version=" .. (opts.api_version or "2022-11-01")
  return {["Azure-AsyncOperation"] = base .. "/operations/" .. id .. api,
    ["Location"] = base .. "/operationResults/" .. id .. api, ["Retry-After"] = "1"}, id
end

--- status(id [, twin]) -> the operation-status body, or nil
function M.status(id, twin)
  local op = find(twin, id)
  if not op then return nil end
  local body = {id = id, name = id, status = op.status, startTime = op.started, endTime = op.ended,
    percentComplete = op.status == "InProgress" and 50 or 100}
  if op.error then body.error = op.error end
  return body
end

--- routes(add): GET .../locations/{loc}/{operations|azureAsyncOperation|asyncOperations|operationStatuses|
-- operationResults}/{id}
function M.routes(add)
  local kinds = {"operations", "azureasyncoperation", "asyncoperations", "operationstatuses"}
  for _, kind in ipairs(kinds) do
    add("GET", "^/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/" .. kind .. "/([^/]+)$", function(_, ctx, id)
      local body = M.status(id, ctx.twin)
      if not body then return router.err(404, "OperationNotFound", "no operation " .. id) end
      return {status = 200, headers = body.status == "InProgress" and {["Retry-After"] = "1"} or nil, json = body}
    end)
  end
  add("GET", "^/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/operationresults/([^/]+)$", function(req, ctx, id)
    local op = find(ctx.twin, id)
    if not op then return router.err(404, "OperationNotFound", "no operation " .. id) end
    if op.status == "InProgress" then
      return {status = 202, headers = {Location = ctx.base .. req.target, ["Retry-After"] = "1"}}
    end
    if op.status == "Failed" then return router.err(400, op.error.code, op.error.message) end
    local a = op.answer
    if a == nil then return {status = 204} end
    if type(a) == "table" and a.status then return a end
    return {status = 200, json = a}
  end)
end

return M
