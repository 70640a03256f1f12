---@meta opsh.connections
-- Editor stubs for `opsh.connections` (lua/opsh/connections.lua). See docs/connections.md.

---@class opsh.connections
---@field providers table<string, fun(env: table, name: string): opsh.secret|string|nil>
local connections = {}
---The named secret: OPSH_SECRET_<NAME>, else the environment's provider.
---@param env table
---@param name string
---@return opsh.secret
function connections.secret(env, name) end
---The provider the environment uses: "keyvault", "twin" or "env".
---@param env table
---@return string
function connections.provider_of(env) end
---A pool on the environment's PostgreSQL primary (or replica).
---@param env table
---@param opts? {replica?: boolean, database?: string, size?: integer}
---@return opsh.pg.pool
function connections.pg(env, opts) end
---A client of the environment's Redis.
---@param env table
---@param opts? {db?: integer}
---@return opsh.redis.connection
function connections.redis(env, opts) end
---Close every pool and client opened through this module.
function connections.close() end

return connections
