-- Fuzz target: opsh.yaml's decoder (libyaml's parser with opsh's resolver, anchors, merge keys
-- and limits) and its emitter. Whatever decodes must encode and read back the same, and, when
-- JSON can hold it, go through JSON and back; failures are structured yaml errors.
local json = require("opsh.json")
local yaml = require("opsh.yaml")
local F = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/common.lua")

local function check(data)
  local ok, docs = pcall(yaml.decode_all, data)
  if not ok then return F.expected(docs, "yaml") end
  local text
  ok, text = pcall(yaml.encode_all, docs)
  -- aliases may nest a value deeper than the 1000 levels an encoder writes
  if not ok then return F.expected(text, "yaml") end
  F.same(docs, yaml.decode_all(text), "YAML round trip")
  local jtext
  ok, jtext = pcall(json.encode, docs)
  if not ok then return F.expected(jtext, "json") end   -- .inf and .nan have no JSON form
  F.same(docs, json.decode(jtext), "JSON round trip")
end

return {check = check}
