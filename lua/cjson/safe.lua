-- cjson.safe: lua-cjson's non-raising variant: encode/decode return nil, message on failure.
local cjson = require("cjson").new()

local M = {}
for k, v in pairs(cjson) do M[k] = v end
M._NAME = "cjson.safe"

function M.encode(v)
  local ok, res = pcall(cjson.encode, v)
  if ok then return res end
  return nil, res
end

function M.decode(s)
  local ok, res = pcall(cjson.decode, s)
  if ok then return res end
  return nil, res
end

function M.new()
  local fresh = require("cjson").new()
  local inst = {}
  for k, v in pairs(M) do inst[k] = v end
  for k, v in pairs(fresh) do if k ~= "encode" and k ~= "decode" and k ~= "new" then inst[k] = v end end
  inst.encode = function(v) local ok, r = pcall(fresh.encode, v); if ok then return r end; return nil, r end
  inst.decode = function(s) local ok, r = pcall(fresh.decode, s); if ok then return r end; return nil, r end
  return inst
end

return M
