-- opsh.yaml: YAML for kubeconfigs and manifests. Plain scalars mean what they mean to kubectl
-- (Kubernetes' sigs.k8s.io/yaml), null is json.null and sequences are json arrays, so a document
-- converts to JSON as the API server would receive it. Output is block style with sorted keys.
local json = require("opsh.json")
local C = require("opsh._yaml")
local check = require("opsh.check")

local M = {}

--- The value null decodes to (opsh.json's json.null).
M.null = json.null

--- The version of libyaml in use.
M.libyaml_version = C.libyaml_version

--- decode(s) -> the first document of the stream (nil when there is none);
--- raises {kind="yaml", message="... at line L column C", line=, column=}.
function M.decode(s)
  check.string("yaml.decode", 1, s)
  return C.decode(s)
end

--- decode_all(s) -> the list of the stream's documents, empty documents left out.
function M.decode_all(s)
  check.string("yaml.decode_all", 1, s)
  return C.decode_all(s)
end

local ENCODE_OPTIONS = {sort_keys = "boolean", indent = {"integer", min = 2, max = 9}}

local function options(opts, fname)
  if opts == nil then return true, 2 end
  check.options(fname, 2, opts, ENCODE_OPTIONS)
  local sort = opts.sort_keys
  if sort == nil then sort = true end
  return sort, opts.indent or 2
end

--- encode(v [, {sort_keys = true, indent = 2}]) -> one YAML document; raises {kind="yaml", path=}.
function M.encode(v, opts)
  local sort, indent = options(opts, "yaml.encode")
  return C.encode(v, sort, indent)
end

--- encode_all(list [, opts]) -> a stream with one document per item, separated by ---.
function M.encode_all(list, opts)
  check.table("yaml.encode_all", 1, list)
  local sort, indent = options(opts, "yaml.encode_all")
  return C.encode_all(list, sort, indent)
end

return M
