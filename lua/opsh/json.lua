-- opsh.json: JSON for Kubernetes and Azure payloads. Integers stay integers, null is the
-- json.null sentinel, arrays are marked so that [] round-trips, output is stable (sorted keys).
local C = require("opsh._json")
local check = require("opsh.check")

local M = {}

--- The value JSON null decodes to and encodes from (a truthy sentinel: test `v == json.null`).
M.null = C.null

--- A shared, read-only empty array: encodes as [] where {} would encode as {}.
M.empty_array = C.empty_array

--- The metatable arrays carry (decoded arrays, json.array).
M.array_mt = C.array_mt

--- array([t]) -> t marked as a JSON array (a new empty array without t).
function M.array(t)
  if t ~= nil and type(t) ~= "table" then check.table("json.array", 1, t) end
  if t ~= nil and getmetatable(t) ~= nil and getmetatable(t) ~= C.array_mt then
    check.fail("json.array", 1, "table already has a metatable")
  end
  return C.array(t)
end

--- is_array(v) -> true if v is marked as a JSON array.
M.is_array = C.is_array

--- decode(s) -> value; raises {kind="json", message="... at line L column C (byte N)", line=, column=, offset=}.
function M.decode(s)
  if type(s) ~= "string" then check.string("json.decode", 1, s) end
  return C.decode(s)
end

local ENCODE_OPTIONS = {pretty = "boolean", sort_keys = "boolean", indent = {"integer", min = 0, max = 16},
  reveal_secrets = "boolean"}

--- encode(v [, {pretty = false, sort_keys = true, indent = 2}]) -> string; raises {kind="json", path=}.
-- {reveal_secrets = true} is for primitives that send a request body (opsh.http): opsh.secret
-- values are written as their bytes instead of "<redacted>"; the text is then returned as an
-- opsh.secret when it holds any (a plain string otherwise), with the number of secrets it holds.
function M.encode(v, opts)
  if opts == nil then return C.encode(v, false, true, 2) end
  check.options("json.encode", 2, opts, ENCODE_OPTIONS)
  local indent, sort = opts.indent, opts.sort_keys
  if indent == nil then indent = 2 end
  if sort == nil then sort = true end
  return C.encode(v, opts.pretty or false, sort, indent, opts.reveal_secrets or false)
end

return M
