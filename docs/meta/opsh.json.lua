---@meta opsh.json
-- JSON for Kubernetes and Azure payloads: integers stay integers, null is json.null, arrays are marked
-- so that [] round-trips, output has sorted keys. See docs/json.md.

---@class opsh.json
local json = {}

---The value JSON null decodes to and encodes from. Truthy: test `v == json.null`.
---@type userdata
json.null = nil

---A shared, read-only empty array; encodes as `[]`.
---@type table
json.empty_array = {}

---The metatable that decoded arrays and `json.array` tables carry.
---@type table
json.array_mt = {}

---@class opsh.json.encode_opts
---@field pretty? boolean  newlines and indentation (default false)
---@field sort_keys? boolean  sort object keys bytewise (default true)
---@field indent? integer  spaces per level when pretty, 0-16 (default 2)
---@field reveal_secrets? boolean  for primitives building a request body (opsh.http): secrets as their bytes; the text is then an opsh.secret when it holds any, and the count comes second

---Decode a JSON text. Raises {kind="json", message=, line=, column=, offset=} on malformed input.
---@param s string
---@return any
function json.decode(s) end

---Encode a value. Raises {kind="json", message=, path=} for values JSON cannot hold.
---@param v any
---@param opts? opsh.json.encode_opts
---@return string|opsh.secret text
---@return integer? secrets with reveal_secrets: how many secrets the text holds
function json.encode(v, opts) end

---Mark t (or a new table) as a JSON array: it encodes as `[...]`, `[]` when empty.
---@generic T: table
---@param t? T
---@return T
function json.array(t) end

---Is v marked as a JSON array (decoded array, json.array, json.empty_array)?
---@param v any
---@return boolean
function json.is_array(v) end

return json
