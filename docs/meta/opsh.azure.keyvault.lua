---@meta opsh.azure.keyvault
-- Editor stubs for `opsh.azure.keyvault` (lua/opsh/azure/keyvault.lua). See docs/keyvault.md.

---@class opsh.azure.keyvault.info
---@field name string
---@field version? string
---@field id? string
---@field enabled boolean
---@field content_type? string
---@field tags? table<string, string>
---@field created? integer epoch seconds
---@field updated? integer epoch seconds
---@field expires? integer epoch seconds
---@field not_before? integer epoch seconds
---@field recovery_level? string
---@field deleted? integer epoch seconds (delete, deleted, deleted_secret)
---@field scheduled_purge? integer epoch seconds (delete, deleted, deleted_secret)
---@field recovery_id? string (delete, deleted, deleted_secret)
---@field dry_run? boolean a mutation recorded in a --dry-run, not sent

---@class opsh.azure.keyvault.set_opts
---@field content_type? string
---@field tags? table<string, string>
---@field expires? integer epoch seconds
---@field not_before? integer epoch seconds
---@field enabled? boolean default true

---@class opsh.azure.keyvault.vault
---@field name string
---@field url string the vault's base URL
---@field page? integer maxresults for list/versions (1..25; default 25)
local Vault = {}

---@param name string
---@param opts? {version?: string, missing?: "nil"}
---@return opsh.secret|nil value
---@return opsh.azure.keyvault.info info
function Vault:get(name, opts) end

---@param name string
---@param value string|opsh.secret
---@param opts? opsh.azure.keyvault.set_opts
---@return opsh.azure.keyvault.info
function Vault:set(name, value, opts) end

---@return opsh.azure.keyvault.info[] all secrets (every page), no values
function Vault:list() end

---@param name string
---@return opsh.azure.keyvault.info[] newest first
function Vault:versions(name) end

---@param name string
---@param version string
---@return opsh.azure.keyvault.info
function Vault:disable(name, version) end

---@param name string
---@return opsh.azure.keyvault.info
function Vault:delete(name) end

---@param name string
---@return opsh.azure.keyvault.info
function Vault:recover(name) end

---@return opsh.azure.keyvault.info[] the deleted secrets (every page), with deleted, scheduled_purge, recovery_id
function Vault:deleted() end

---@param name string
---@param opts? {missing?: "nil"}
---@return opsh.azure.keyvault.info|nil info of the deleted secret (nil with missing = "nil" when not deleted)
function Vault:deleted_secret(name, opts) end

--- Removes a deleted secret for good. Raises (status 403, purge_protected = true) on a vault with purge protection.
---@param name string
---@return true|{name: string, dry_run: true}
function Vault:purge(name) end

---@class opsh.azure.keyvault
---@overload fun(env?: table|string, vault?: string): opsh.azure.keyvault.vault
local M = {}

M.API = "7.5"

---@param env? table|string
---@param vault? string
---@return opsh.azure.keyvault.vault one per environment and vault name for the run
function M.vault(env, vault) end

---@param env table|string
---@param vault? string
---@param opts? {url?: string, ca?: string, credential?: table}
---@return opsh.azure.keyvault.vault a new vault object
function M.new(env, vault, opts) end

---@param env table
---@param name string
---@return opsh.secret the connections "keyvault" provider
function M.get_secret(env, name) end

---@param header string a WWW-Authenticate value
---@return {authorization: string, resource?: string, scope?: string, tenant?: string}|nil
function M.parse_challenge(header) end

---@param env table
---@param vault? string
---@return string the vault's base URL
function M.url_of(env, vault) end

return M
