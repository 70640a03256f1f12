-- opsh.k8s.errors (internal): an error response -> {kind = "k8s", code, reason, message, status
-- (the Status object), details, method, path}. Bodies that are not a Status (a proxy's HTML, the
-- plain text of a 429) get the reason client-go would give their code.
local core = require("opsh._core")
local json = require("opsh.json")

local M = {}

local REASONS = {
  [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Expired",
  [413] = "RequestEntityTooLarge", [415] = "UnsupportedMediaType", [422] = "Invalid",
  [429] = "TooManyRequests", [500] = "InternalError", [503] = "ServiceUnavailable", [504] = "Timeout",
}
local MESSAGES = {
  [401] = "Unauthorized", [404] = "the server could not find the requested resource",
  [429] = "Too many requests, please try again later.", [503] = "the server is currently unable to handle the request",
}

--- from_response(res, method, path) -> the error object (not raised)
function M.from_response(res, method, path)
  local status
  local body = res.body or ""
  if body:sub(1, 1) == "{" then
    local ok, doc = pcall(json.decode, body)
    if ok and type(doc) == "table" and doc.kind == "Status" then status = doc end
  end
  local code = status and tonumber(status.code) or res.status
  local reason = status and status.reason ~= json.null and status.reason or REASONS[code] or "Unknown"
  local message = status and status.message or nil
  if message == nil or message == "" or message == json.null then
    message = MESSAGES[code]
    if not message then
      local line = body:match("^%s*([^\r\n]+)")
      message = line and line:sub(1, 300) or ("HTTP " .. tostring(res.status))
    end
  end
  return core.error("k8s", string.format("%s %s: %s (%s %d)", method, path, message, reason, code), {
    code = code, reason = reason, status = status, details = status and status.details,
    method = method, path = path, server_message = message,
    retry_after = res.headers and res.headers["retry-after"],
  })
end

--- is(err, reason_or_code) -> does err say that (e.g. is(err, "NotFound"), is(err, 409))?
function M.is(err, what)
  if type(err) ~= "table" or err.kind ~= "k8s" then return false end
  if type(what) == "number" then return err.code == what end
  return err.reason == what
end

return M
