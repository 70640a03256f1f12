-- opsh.http.summary (internal): a one-line summary of an error response's body for the message
-- opsh.http raises: Azure's and Kubernetes' JSON errors, OAuth's, RFC 9457 problem details, the
-- telling line of an HTML error page, or the first line of text.
local M = {}

local function clip(s, max)
  s = s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

local function str(v) return type(v) == "string" and v ~= "" and v or nil end

-- {"error": {"code", "message"}} (Azure), a Kubernetes Status, OAuth's {"error", "error_description"},
-- RFC 9457 problem details -> summary, code
local function json_summary(body)
  local ok, doc = pcall(require("opsh.json").decode, body)
  if not ok or type(doc) ~= "table" then return nil end
  local e = doc.error
  if type(e) == "table" then
    local code, msg = str(e.code), str(e.message)
    if code and msg then return code .. ": " .. msg, code end
    return msg or code, code
  end
  if str(e) then
    local desc = str(doc.error_description)
    return desc and (e .. ": " .. desc) or e, e
  end
  if str(doc.message) then return doc.message, str(doc.reason) or str(doc.code) end
  local title, detail = str(doc.title), str(doc.detail)
  if detail then return title and (title .. ": " .. detail) or detail end
  return title
end

local ENTITIES = {amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = " ", ["#39"] = "'"}

local function ci(word)
  return (word:gsub("%a", function(c) return "[" .. c:lower() .. c:upper() .. "]" end))
end
local SCRIPT_BLOCK = "<" .. ci("script") .. ".-</" .. ci("script") .. "%s*>"
local STYLE_BLOCK = "<" .. ci("style") .. ".-</" .. ci("style") .. "%s*>"

-- the first line of an HTML page's text that says more than the status line does
local function html_summary(body, status, reason)
  local text = body:gsub("<!%-%-.-%-%->", ""):gsub(SCRIPT_BLOCK, "\n"):gsub(STYLE_BLOCK, "\n")
    :gsub("<[^>]*>", "\n"):gsub("&(#?%w+);", function(e) return ENTITIES[e] end)
  local same = {[tostring(status)] = true, [reason:lower()] = true,
    [(status .. " " .. reason):lower()] = true, ["error " .. status] = true, ["http error " .. status] = true}
  for line in text:gmatch("[^\r\n]+") do
    line = clip(line, 1000)
    local l = line:lower():gsub("[%s%-:]+", " ")
    -- skip a line that only repeats the status, and a server signature such as nginx/1.22.1
    if line ~= "" and not same[l] and not line:find("^[%w%-_.]+/%d[%w.%-]*$") then return line end
  end
end

--- summarise(res, body) -> a one-line summary of the (scrubbed) body or nil, the error's code
function M.summarise(res, body)
  if body == "" then return nil end
  if #body > 65536 then body = body:sub(1, 65536) end
  local ctype = (res.headers["content-type"] or ""):lower()
  local first = body:match("^%s*(.)")
  if ctype:find("json", 1, true) or first == "{" then
    local text, code = json_summary(body)
    if text then return clip(text, 300), code end
  end
  if ctype:find("html", 1, true) or first == "<" then
    local text = html_summary(body, res.status, res.reason or "")
    return text and clip(text, 300)
  end
  for line in body:gmatch("[^\r\n]+") do
    if line:find("%S") then return clip(line, 300) end
  end
end

return M
