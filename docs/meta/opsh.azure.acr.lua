---@meta opsh.azure.acr
-- Editor stubs for `opsh.azure.acr` (lua/opsh/azure/acr.lua). See docs/acr.md.

---@class opsh.azure.acr.manifest
---@field digest string sha256:<hex>
---@field tags string[]
---@field created string RFC 3339
---@field updated string RFC 3339
---@field size? integer
---@field architecture? string
---@field os? string
---@field delete_enabled boolean changeableAttributes.deleteEnabled
---@field write_enabled boolean changeableAttributes.writeEnabled
---@field read_enabled boolean changeableAttributes.readEnabled
---@field list_enabled boolean changeableAttributes.listEnabled
---@field locked boolean delete_enabled or write_enabled is false

---@class opsh.azure.acr.tag
---@field name string
---@field digest string sha256:<hex> of the manifest it points to
---@field created string RFC 3339 (createdTime)
---@field updated string RFC 3339 (lastUpdateTime)
---@field signed? boolean
---@field delete_enabled boolean
---@field write_enabled boolean
---@field read_enabled boolean
---@field list_enabled boolean
---@field locked boolean delete_enabled or write_enabled is false

---@alias opsh.azure.acr.attributes {delete_enabled?: boolean, write_enabled?: boolean, read_enabled?: boolean, list_enabled?: boolean}

---@class opsh.azure.acr.registry
---@field endpoint string
---@field service string
local Registry = {}
---Repository names, every page.
---@param opts? {page?: integer}
---@return string[]
function Registry:repositories(opts) end
---Manifests with tags and times, newest first (order = "asc": oldest first).
---@param repo string
---@param opts? {order?: "desc"|"asc", page?: integer}
---@return opsh.azure.acr.manifest[]
function Registry:manifests(repo, opts) end
---Tags with their digests and times (/acr/v1/<repo>/_tags, every page): by name, or by last update with order.
---@param repo string
---@param opts? {order?: "desc"|"asc", digest?: string, page?: integer}
---@return opsh.azure.acr.tag[]
function Registry:tags(repo, opts) end
---Tag names (OCI /v2/<repo>/tags/list, every page; any registry).
---@param repo string
---@param opts? {page?: integer}
---@return string[]
function Registry:tag_names(repo, opts) end
---A manifest (decoded), its digest and media type; nil when missing.
---@param repo string
---@param reference string tag or digest
---@return table?, string?, string?
function Registry:manifest(repo, reference) end
---Delete a manifest by digest: true, false when already gone; in a dry run {dry_run = true, record =}.
---@param repo string
---@param digest string
---@return boolean|{dry_run: boolean, record: table}
function Registry:delete_manifest(repo, digest) end
---A manifest's (reference a digest) or a tag's record with its attributes; nil when missing.
---@param repo string
---@param reference string digest or tag
---@return (opsh.azure.acr.manifest|opsh.azure.acr.tag)?
function Registry:attributes(repo, reference) end
---Change a manifest's (digest) or a tag's attributes (lock: delete_enabled/write_enabled false); only those given are sent.
---In a dry run {dry_run = true, record =}.
---@param repo string
---@param reference string digest or tag
---@param attrs opsh.azure.acr.attributes
---@return opsh.azure.acr.manifest|opsh.azure.acr.tag|{dry_run: boolean, record: table}
function Registry:set_attributes(repo, reference, attrs) end
---The opsh.http client carrying a scope's access tokens.
---@param scope string
---@return opsh.http.client
function Registry:client(scope) end
---An ACR access token (opsh.secret) for a scope.
---@param scope string
function Registry:token(scope) end

---@class opsh.azure.acr
---@field PAGE integer
local acr = {}
---A registry.
---@param opts {endpoint?: string, login_server?: string, service?: string, ca?: string, credential?: table|false, page?: integer, retries?: integer, timeout?: number}
---@return opsh.azure.acr.registry
function acr.new(opts) end
---The environment's registry.
---@return opsh.azure.acr.registry
function acr.of(env) end
---The next page's path from a response's Link header (`rel="next"`), or nil.
---@param res {headers: table<string, string>}
---@return string?
function acr.next_link(res) end
return acr
