-- opsh.json: JSON for Kubernetes and Azure payloads. Integers stay integers, null is the
-- json.null sentinel, arrays are marked so that [] round-trips, output is stable (sorted keys).
local C = require("opsh._json")

local M = {}

--- The value JSON null decodes to and encodes from (a truthy sentinel: test `v == json.null`).
M.null = C.null

--- A shared, read-only empty array: encodes as [] where {} would encode as {}.
M.empty_array = C.empty_array

--- The metatable arrays carry (decoded arrays, json.array).
M.array_mt = C.array_mt

--- array([t]) -> t marked as a JSON array (a new empty array without t).
M.array = C.array

--- is_array(v) -> true if v is marked as a JSON array.
M.is_array = C.is_array

--- decode(s) -> value; raises {kind="json", message="... at line L column C (byte N)", line=, column=, offset=}.
function M.decode(s)
  if type(s) ~= "string" then
    error(string.format("bad argument #1 to 'decode' (string expected, got %s)", type(s)), 2)
  end
  return C.decode(s)
end

local function option(opts, name, kind, default)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= kind then
    error(string.format("bad argument #2 to 'encode' (option '%s' must be a %s, got %s)", name, kind, type(v)), 3)
  end
  return v
end

--- encode(v [, {pretty = false, sort_keys = true, indent = 2}]) -> string; raises {kind="json", path=}.
-- {reveal_secrets = true} is for primitives that send a request body (opsh.http): opsh.secret
-- values are written as their bytes instead of "<redacted>"; the text is then returned as an
-- opsh.secret when it holds any (a plain string otherwise), with the number of secrets it holds.
function M.encode(v, opts)
  if opts == nil then return C.encode(v, false, true, 2) end
  if type(opts) ~= "table" then
    error(string.format("bad argument #2 to 'encode' (table expected, got %s)", type(opts)), 2)
  end
  local indent = option(opts, "indent", "number", 2)
  if math.type(indent) ~= "integer" or indent < 0 or indent > 16 then
    error("bad argument #2 to 'encode' (option 'indent' must be an integer from 0 to 16)", 2)
  end
  return C.encode(v, option(opts, "pretty", "boolean", false), option(opts, "sort_keys", "boolean", true), indent,
    option(opts, "reveal_secrets", "boolean", false))
end

return M
