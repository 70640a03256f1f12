-- Fuzz target: HTTP responses as curl hands them over (bindings/http/response.c: status line,
-- header lines, body chunks), then what opsh.http reads from them: Retry-After and JSON bodies.
local http = require("opsh.http")
local json = require("opsh.json")
local F = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/common.lua")

local function check(data)
  local res = http_response(data)   -- luacheck: ignore (a global the harness sets)
  assert(math.type(res.status) == "integer", "status is an integer")
  -- a bare CR inside a line (RFC 9112 2.2: treat as SP or reject) is passed on as it came: \n only
  assert(type(res.reason) == "string" and not res.reason:find("\n"), "reason is one line")
  assert(type(res.body) == "string", "body is a string")
  for name, value in pairs(res.headers) do
    assert(type(name) == "string" and name ~= "" and not name:find("[A-Z\n:]"), "header names are lower case")
    assert(type(value) == "string" and not value:find("\n"), "header values are one line")
  end
  local wait = http.retry_after(res.headers["retry-after"], 1700000000)
  assert(wait == nil or (wait >= 0 and wait == wait and wait < math.huge), "Retry-After is a wait")
  local ok, v = pcall(json.decode, res.body)
  if not ok then return F.expected(v, "json") end
  F.same(v, json.decode(json.encode(v)), "JSON body round trip")
end

return {check = check, coverage = true}
