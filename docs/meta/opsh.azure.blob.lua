---@meta opsh.azure.blob
-- Editor stubs for `opsh.azure.blob` (lua/opsh/azure/blob.lua). See docs/blob.md.

---@class opsh.azure.blob.record
---@field etag string
---@field content_md5? string base64, as the service reports it (Put Blob; Azure computes none for a block list)
---@field crc64? string x-ms-content-crc64 as the service reports it
---@field last_modified? string
---@field version_id? string
---@field request_id? string
---@field size? integer bytes
---@field blocks? integer blocks sent (0: one Put Blob)
---@field block_crc64? string[] per block, what the service reported
---@field dry_run? boolean

---@class opsh.azure.blob.item
---@field name string
---@field size integer
---@field last_modified string
---@field etag string
---@field content_md5? string
---@field content_type? string
---@field tier? string

---@class opsh.azure.blob.account
---@field name string the storage account
---@field endpoint string
local Account = {}
---Create a container; false when it existed.
---@param name string
---@return boolean created
function Account:create_container(name) end
---Delete a container; false when there was none.
---@param name string
---@return boolean
function Account:delete_container(name) end
---Put a block blob from exactly one of data, file, source (function -> chunk|nil) or process (stdout = "pipe").
---@param container string
---@param name string
---@param opts string|{data?: string, file?: string, source?: fun(): string?, process?: opsh.process, md5?: boolean, block_size?: integer, parallel?: integer, single_put_max?: integer, content_type?: string, tier?: string, metadata?: table<string,string>}
---@return opsh.azure.blob.record
function Account:put(container, name, opts) end
---Get a blob: the body and record; with file or on_data, the record.
---@param container string
---@param name string
---@param opts? {file?: string, on_data?: fun(chunk: string): boolean?, missing_ok?: boolean}
---@return string|opsh.azure.blob.record|nil
---@return opsh.azure.blob.record?
function Account:get(container, name, opts) end
---Properties and metadata, or nil when there is no such blob.
---@param container string
---@param name string
---@return (opsh.azure.blob.record|{content_type: string, tier: string, metadata: table<string,string>})?
function Account:properties(container, name) end
---Delete a blob; false when there was none.
---@param container string
---@param name string
---@return boolean
function Account:delete(container, name) end
---Set the access tier.
---@param container string
---@param name string
---@param tier "Hot"|"Cool"|"Cold"|"Archive"
function Account:set_tier(container, name, tier) end
---All blobs of a container (every page), optionally under a prefix.
---@param container string
---@param opts? {prefix?: string, page_size?: integer, on_page?: fun(next_marker: string?)}
---@return opsh.azure.blob.item[]
function Account:list(container, opts) end
---The blob service properties.
---@return {delete_retention: {enabled: boolean, days?: integer}, versioning: boolean, xml: string}
function Account:service_properties() end
---Set the delete retention policy (days 1..365, or false to turn it off).
---@param p {delete_retention_days: integer|false}
function Account:set_service_properties(p) end
---Send one signed request (path under the endpoint; clen = the body's length).
function Account:request(method, path, opts, clen) end
---Put Block List of blocks 1..n.
function Account:commit(path, n, opts) end
---Put Block i from {data} or {file, offset, length}.
function Account:put_block(path, i, blk) end

---@class opsh.azure.blob
---@field VERSION string the x-ms-version sent
---@field defaults {block_size: integer, stream_block_size: integer, parallel: integer, single_put_max: integer}
local blob = {}
---An account: Shared Key (key, a secret) or an auth provider (token = http.bearer(fetch)).
---@param opts {endpoint: string, account?: string, key?: opsh.secret|string, token?: fun(ctx: table): any, ca?: string, retries?: integer, timeout?: number, block_size?: integer, parallel?: integer}
---@return opsh.azure.blob.account
function blob.account(opts) end
---The environment's storage account with Entra tokens (audience storage).
---@param env table
---@return opsh.azure.blob.account
function blob.of(env) end
---The Shared Key string-to-sign (headers by lower-case name).
---@param method string
---@param account string
---@param path string
---@param query? table
---@param headers table
---@return string
function blob.string_to_sign(method, account, path, query, headers) end
return blob
