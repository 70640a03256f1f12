---@meta opsh.yaml
-- YAML for kubeconfigs, manifests and `-o yaml`: plain scalars typed as Kubernetes types them
-- (yes/on are booleans, 0644 is octal), quoted scalars are strings, null is json.null. See docs/yaml.md.

---@class opsh.yaml
local yaml = {}

---The value null, `~` and empty values decode to (opsh.json's json.null).
---@type userdata
yaml.null = nil

---The version of libyaml in use.
---@type string
yaml.libyaml_version = ""

---@class opsh.yaml.encode_opts
---@field sort_keys? boolean  sort mapping keys bytewise (default true)
---@field indent? integer  spaces per level, 2-9 (default 2)

---The first document of a YAML stream, or nil when it has none.
---Raises {kind="yaml", message=, line=, column=} on malformed input.
---@param s string
---@return any
function yaml.decode(s) end

---Every document of a YAML stream (empty documents left out).
---@param s string
---@return any[]
function yaml.decode_all(s) end

---One YAML document, block style. Raises {kind="yaml", message=, path=} for values YAML cannot hold.
---@param v any
---@param opts? opsh.yaml.encode_opts
---@return string
function yaml.encode(v, opts) end

---A YAML stream with one document per item, separated by `---`.
---@param list any[]
---@param opts? opsh.yaml.encode_opts
---@return string
function yaml.encode_all(list, opts) end

return yaml
