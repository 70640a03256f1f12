-- Fuzz target: opsh.json's decoder. Whatever decodes must encode (compact, and pretty with
-- sorted keys) and read back the same, and survive a trip through YAML; whatever does not
-- decode must fail with a structured json error.
local json = require("opsh.json")
local yaml = require("opsh.yaml")
local F = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/common.lua")

local function check(data)
  local ok, v = pcall(json.decode, data)
  if not ok then return F.expected(v, "json") end
  F.same(v, json.decode(json.encode(v)), "compact JSON round trip")
  F.same(v, json.decode(json.encode(v, {pretty = true, sort_keys = true})), "pretty JSON round trip")
  local text = yaml.encode(v)
  F.same(v, yaml.decode(text), "YAML round trip")
end

return {check = check}
