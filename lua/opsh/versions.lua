-- opsh.versions: the libraries opsh runs on, for `opsh version`.
local runtime = require("opsh.runtime")

local M = {}

function M.list()
  local rows = {}
  local function add(component, version) rows[#rows + 1] = {component = component, version = version} end
  local curl, h2 = require("opsh.http").curl_version()
  add("libcurl", curl .. (h2 and " (HTTP/2)" or ""))
  add("openssl", (runtime.openssl_version:gsub("^OpenSSL ", "")))
  local pq = require("opsh.pg").libpq_version
  add("libpq", string.format("%d.%d", pq // 10000, pq % 10000))
  local redis = require("opsh.redis")
  if redis.hiredis_version then add("hiredis", redis.hiredis_version) end
  add("libyaml", require("opsh.yaml").libyaml_version)
  return rows
end

return M
