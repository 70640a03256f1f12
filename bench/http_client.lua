-- bench/http_client.lua: what the Lua layer of opsh.http costs per call, libcurl stubbed out:
-- plain http.get against http.client calls, with and without default headers and an auth
-- provider; best of 5 rounds of N calls (default 200,000). Usage: build/opsh bench/http_client.lua [N]
local C = require("opsh._http")
C.request = function() return {status = 200, headers = {}, body = "x", reason = "OK", version = "1.1"} end
local http = require("opsh.http")
local opsh = require("opsh")
local N = tonumber(arg[1]) or 200000
local token = opsh.secret("Bearer bench-token")
local url = "http://127.0.0.1:8080/index.html"
local cases = {
  {"http.get(url)", function() return http.get(url) end},
}
local popts = {headers = {["X-Team"] = "sre", Authorization = token}}
cases[#cases + 1] = {"http.get(url, {headers + secret auth})", function() return http.get(url, popts) end}
if http.client then
  local bare = http.client{base_url = "http://127.0.0.1:8080"}
  cases[#cases + 1] = {"client:get(path) bare", function() return bare:get("/index.html") end}
  local full = http.client{base_url = "http://127.0.0.1:8080", headers = {["X-Team"] = "sre"},
    auth = function() return token end}
  cases[#cases + 1] = {"client:get(path) header + auth", function() return full:get("/index.html") end}
end
local best = {}
for _ = 1, 5 do
  for i, c in ipairs(cases) do
    collectgarbage()
    local t0 = os.clock()
    local f = c[2]
    for _ = 1, N do f() end
    local us = (os.clock() - t0) / N * 1e6
    best[i] = math.min(best[i] or math.huge, us)
  end
end
for i, c in ipairs(cases) do print(string.format("%-42s %6.2f us", c[1], best[i])) end
