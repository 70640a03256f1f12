-- opsh.yaml: YAML for kubeconfigs and manifests. Plain scalars mean what they mean to kubectl
-- (Kubernetes' sigs.k8s.io/yaml), null is json.null and sequences are json arrays, so a document
-- converts to JSON as the API server would receive it. Output is block style with sorted keys.
local json = require("opsh.json")
local C = require("opsh._yaml")

local M = {}

--- The value null decodes to (opsh.json's json.null).
M.null = json.null

--- The version of libyaml in use.
M.libyaml_version = C.libyaml_version

local function check_string(s, fname)
  if type(s) ~= "string" then
    error(string.format("bad argument #1 to '%s' (string expected, got %s)", fname, type(s)), 3)
  end
end

--- decode(s) -> the first document of the stream (nil when there is none);
--- raises {kind="yaml", message="... at line L column C", line=, column=}.
function M.decode(s)
  check_string(s, "decode")
  return C.decode(s)
end

--- decode_all(s) -> the list of the stream's documents, empty documents left out.
function M.decode_all(s)
  check_string(s, "decode_all")
  return C.decode_all(s)
end

local function options(opts, fname)
  if opts == nil then return true, 2 end
  if type(opts) ~= "table" then
    error(string.format("bad argument #2 to '%s' (table expected, got %s)", fname, type(opts)), 3)
  end
  local sort, indent = opts.sort_keys, opts.indent
  if sort == nil then sort = true end
  if type(sort) ~= "boolean" then
    error(string.format("bad argument #2 to '%s' (option 'sort_keys' must be a boolean)", fname), 3)
  end
  if indent == nil then indent = 2 end
  if math.type(indent) ~= "integer" or indent < 2 or indent > 9 then
    error(string.format("bad argument #2 to '%s' (option 'indent' must be an integer from 2 to 9)", fname), 3)
  end
  return sort, indent
end

--- encode(v [, {sort_keys = true, indent = 2}]) -> one YAML document; raises {kind="yaml", path=}.
function M.encode(v, opts)
  local sort, indent = options(opts, "encode")
  return C.encode(v, sort, indent)
end

--- encode_all(list [, opts]) -> a stream with one document per item, separated by ---.
function M.encode_all(list, opts)
  if type(list) ~= "table" then
    error(string.format("bad argument #1 to 'encode_all' (table expected, got %s)", type(list)), 2)
  end
  local sort, indent = options(opts, "encode_all")
  return C.encode_all(list, sort, indent)
end

return M
