-- opsh.http.url: percent-encoding and the redaction of credentials in URLs, the one copy opsh.http,
-- opsh.redis (redis:// URLs) and opsh.server (request targets) share. Loads nothing else.
local M = {}

-- query keys whose values are credentials (substring match, lower case): SAS `sig`, OAuth
-- `code`/`access_token`/`client_secret`, `pass`/`password`, API keys...
local SENSITIVE = {"sig", "token", "pass", "pwd", "secret", "code", "key", "credential", "auth", "session"}

--- add_plain(secrets, v): a plain-string credential to scrub from what a call shows; one shorter
-- than 4 bytes is left (removing every "ab" from an error would garble it, and URLs hide such values anyway)
function M.add_plain(secrets, v)
  if #v >= 4 then secrets[#secrets + 1] = v end
end
local add_plain = M.add_plain

--- escape(s) -> s percent-encoded: everything but RFC 3986's unreserved characters
function M.escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

--- unescape(s [, plus]) -> s with %XX decoded (and "+" as a space when plus: form encoding)
function M.unescape(s, plus)
  if type(s) ~= "string" then require("opsh.check").string("unescape", 1, s) end
  if plus ~= nil and plus ~= true and plus ~= false then require("opsh.check").boolean("unescape", 2, plus) end
  if plus then s = s:gsub("+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
local unescape = M.unescape

--- sensitive(key) -> true when a query key names a credential
function M.sensitive(key)
  local k = unescape(key):lower()
  for _, w in ipairs(SENSITIVE) do
    if k:find(w, 1, true) then return true end
  end
  return false
end
local sensitive = M.sensitive

-- url -> redacted url; the values it hid are appended to `hidden` (if given), raw and decoded
function M.redact(url, hidden)
  local base, query = url:match("^([^?#]*)%??([^#]*)")
  base = base:gsub("^(%a[%w+.-]*://)([^/@]*)@", function(scheme, userinfo)
    if hidden then
      local pass = userinfo:match(":(.*)$")
      if pass then
        add_plain(hidden, pass)
        local plain = unescape(pass)
        if plain ~= pass then add_plain(hidden, plain) end
      end
    end
    return scheme .. "REDACTED@"
  end)
  if query == "" then return base end
  local parts = {}
  for pair in query:gmatch("[^&]+") do
    local k, eq, v = pair:match("^([^=]*)(=?)(.*)$")
    if eq == "=" and sensitive(k) then
      parts[#parts + 1] = k .. "=REDACTED"
      if hidden then
        add_plain(hidden, v)
        local plain = unescape(v)
        if plain ~= v then add_plain(hidden, plain) end
      end
    else
      parts[#parts + 1] = pair
    end
  end
  return base .. "?" .. table.concat(parts, "&")
end

return M
