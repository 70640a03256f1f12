-- opsh.twin.k8s.status: the apiserver's `Status` answers (404, 409, 410, 422, ...), raised as errors the
-- router turns into responses so deep helpers can fail with one call.
local json = require("opsh.json")

local M = {}

local REASONS = {[400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Expired",
  [415] = "UnsupportedMediaType", [422] = "Invalid", [429] = "TooManyRequests", [500] = "InternalError",
  [503] = "ServiceUnavailable", [504] = "Timeout"}

--- body(code, message, reason?, details?) -> a Status object
function M.body(code, message, reason, details)
  return {kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure", message = message,
    reason = reason or REASONS[code] or "", details = details, code = code}
end

--- answer(code, message, reason?, details?, headers?) -> a response table
function M.answer(code, message, reason, details, headers)
  local h = headers or {}
  h["Content-Type"] = "application/json"
  return {status = code, headers = h, body = json.encode(M.body(code, message, reason, details))}
end

--- fail(code, message, reason?, details?): raise a Status for the router
function M.fail(code, message, reason, details)
  error({k8s_status = M.answer(code, message, reason, details)}, 0)
end

local function res_name(r) return r.group == "" and r.resource or (r.resource .. "." .. r.group) end
M.res_name = res_name

function M.not_found(r, name)
  M.fail(404, string.format('%s "%s" not found', res_name(r), name), "NotFound",
    {name = name, group = r.group ~= "" and r.group or nil, kind = r.resource})
end

function M.already_exists(r, name)
  M.fail(409, string.format('%s "%s" already exists', res_name(r), name), "AlreadyExists",
    {name = name, group = r.group ~= "" and r.group or nil, kind = r.resource})
end

function M.conflict(r, name, why)
  M.fail(409, string.format('Operation cannot be fulfilled on %s "%s": %s', res_name(r), name,
    why or "the object has been modified; please apply your changes to the latest version and try again"),
    "Conflict", {name = name, group = r.group ~= "" and r.group or nil, kind = r.resource})
end

--- invalid(r, name, causes = {{field=, message=, type=}}) -> 422
function M.invalid(r, name, causes)
  local parts = {}
  local list = json.array()
  for i, c in ipairs(causes) do
    parts[i] = c.field .. ": " .. c.message
    list[i] = {type = c.type or "FieldValueInvalid", message = c.message, field = c.field}
  end
  M.fail(422, string.format('%s%s "%s" is invalid: %s', r.kind, r.group ~= "" and ("." .. r.group) or "",
    name or "", table.concat(parts, ", ")), "Invalid",
    {name = name, group = r.group ~= "" and r.group or nil, kind = r.kind, causes = list})
end

return M
