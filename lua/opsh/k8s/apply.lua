-- opsh.k8s.apply (internal): c:apply(source) — server-side apply of objects, multi-document YAML
-- text, files and directories of manifests, one PATCH (application/apply-patch+yaml, fieldManager,
-- force) per document: no OpenAPI, no prior GET, creates or updates built-ins and CRDs alike.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local yaml = require("opsh.yaml")
local client = require("opsh.k8s.client")
local helpers = require("opsh.k8s.helpers")

local Client = client.Client
local usage = client.usage

local M = {}

local function docs_of_text(text, where, out)
  local ok, docs = pcall(yaml.decode_all, text)
  if not ok then
    error(core.error("usage", string.format("%s: %s", where, core.is_error(docs) and docs.message or tostring(docs))), 0)
  end
  for _, d in ipairs(docs) do
    if d ~= json.null and type(d) == "table" then
      if type(d.kind) == "string" and d.kind:match("List$") and type(d.items) == "table" then
        for _, it in ipairs(d.items) do out[#out + 1] = {doc = it, source = where} end
      else
        out[#out + 1] = {doc = d, source = where}
      end
    end
  end
end

--- documents(source) -> {{doc=, source=}}: an object, a list of objects, YAML/JSON text, a file, or a
-- directory (its *.yaml, *.yml, *.json files in name order, not recursive)
function M.documents(source)
  local out = {}
  if type(source) == "table" then
    if source.kind then return {{doc = source, source = "object"}} end
    for i, d in ipairs(source) do out[#out + 1] = {doc = d, source = "object " .. i} end
    return out
  end
  if type(source) ~= "string" then usage("apply needs an object, a list, YAML text, a file or a directory") end
  if source:find("\n", 1, true) or source:find("^%s*[{%-]") or source:find("kind:", 1, true) then
    docs_of_text(source, "manifest", out)
    return out
  end
  local st = fs.stat(source)
  if not st then usage("apply: " .. source .. " does not exist") end
  if st.type == "dir" then
    for _, name in ipairs(fs.list(source)) do
      if name:match("%.ya?ml$") or name:match("%.json$") then
        docs_of_text(fs.read(source .. "/" .. name), source .. "/" .. name, out)
      end
    end
  else
    docs_of_text(fs.read(source), source, out)
  end
  return out
end

--- c:apply(source [, {namespace=, field_manager = "opsh", force = true}]) -> records {kind, name,
-- namespace, result ("serverside-applied"), object}; a document without apiVersion,
-- kind or metadata.name is refused before anything is sent
function Client:apply(source, opts)
  opts = opts or {}
  local docs = M.documents(source)
  for _, d in ipairs(docs) do
    local doc = d.doc
    if type(doc.apiVersion) ~= "string" or type(doc.kind) ~= "string" or type(doc.metadata) ~= "table"
      or type(doc.metadata.name) ~= "string" then
      usage(string.format("apply: a document in %s lacks apiVersion, kind or metadata.name", d.source))
    end
    d.rec = self:resource(doc.kind, doc.apiVersion)
  end
  local rows = {}
  for _, d in ipairs(docs) do
    local doc, rec = d.doc, d.rec
    local ns
    if rec.namespaced then
      ns = doc.metadata.namespace or opts.namespace or self.namespace
      if doc.metadata.namespace == nil then doc.metadata.namespace = ns end
    end
    local obj = self:patch(rec, doc.metadata.name, doc, {namespace = ns, type = "apply",
      field_manager = opts.field_manager or self.field_manager, force = opts.force == nil and true or opts.force})
    rows[#rows + 1] = {kind = doc.kind, name = doc.metadata.name, namespace = ns,
      result = require("opsh.dryrun").active() and "serverside-applied (server dry run)" or "serverside-applied",
      object = obj}
  end
  return helpers.with_columns(rows, {"kind", "name", "namespace", "result"})
end

return M
