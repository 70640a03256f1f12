-- opsh.azure.errors: ARM's error answers as opsh errors of kind "azure": the `{"error": {code,
-- message, target, details}}` body, the status, and the ids support asks for (x-ms-request-id,
-- x-ms-correlation-request-id), on one line.
local core = require("opsh._core")
local redact = require("opsh.redact")

local M = {}

local function str(v) return type(v) == "string" and v ~= "" and v or nil end

--- parse(body) -> {code, message, target, details} from an ARM error body (nil when it is not one)
function M.parse(body)
  if type(body) ~= "string" or body == "" then return nil end
  local ok, doc = pcall(require("opsh.json").decode, body)
  if not ok or type(doc) ~= "table" then return nil end
  local e = doc.error
  if type(e) ~= "table" then
    -- some providers answer {"code", "message"} without the envelope
    if str(doc.code) or str(doc.message) then e = doc else return nil end
  end
  return {code = str(e.code), message = str(e.message) and e.message:gsub("%s+", " "), target = str(e.target),
    details = type(e.details) == "table" and e.details or nil}
end

local function one_line(s, max)
  s = tostring(s):gsub("%s+", " ")
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

--- of_response(res, secrets) -> the error for an ARM answer with status >= 400 (not raised).
-- secrets: values to scrub from what the error shows (a body the request carried).
function M.of_response(res, secrets)
  local body = res.body or ""
  if secrets and #secrets > 0 then body = redact.text(body, secrets) end
  local e = M.parse(body) or {}
  local h = res.headers or {}
  local code = e.code or (res.status == 404 and "NotFound") or ("HTTP" .. tostring(res.status))
  local message = e.message or one_line(body ~= "" and body or (res.reason or ""), 300)
  local text = string.format("%s %s: HTTP %d: %s%s", res.method or "?", res.url or "?", res.status, code,
    message ~= "" and (": " .. one_line(message, 500)) or "")
  return core.error("azure", text, {
    code = code, status = res.status, method = res.method, url = res.url, target = e.target, details = e.details,
    request_id = h["x-ms-request-id"], correlation_id = h["x-ms-correlation-request-id"],
    retry_after = h["retry-after"], body = body,
  })
end

--- operation_failed(op, doc, shown) -> the error of a long-running operation that ended Failed or
-- Canceled: its status document's error (code, message), kind "azure"
function M.operation_failed(op, doc, status)
  local e = type(doc) == "table" and (type(doc.error) == "table" and doc.error
    or (type(doc.properties) == "table" and type(doc.properties.error) == "table" and doc.properties.error)) or {}
  local code = str(e.code) or ("Operation" .. tostring(status))
  local message = str(e.message) or ("the operation ended " .. tostring(status))
  return core.error("azure", string.format("%s %s: the operation ended %s: %s: %s", op.method, op.shown,
    tostring(status), code, one_line(message, 500)), {code = code, status = op.http_status, state = status,
    method = op.method, url = op.shown, details = e.details, correlation_id = op.correlation_id,
    request_id = op.request_id, handle = op.handle})
end

return M
