---@meta _
-- Editor types for what a procedure is written against: its declaration, the `ctx` it gets and the
-- environment schema (lua/opsh/script.lua, lua/opsh/cli.lua, lua/opsh/env.lua). See docs/scripts.md
-- and docs/environments.md. Annotate a procedure file with `---@type opsh.procedure` above its `return`.

---@alias opsh.arg.type "string"|"integer"|"number"|"boolean"|"duration"|"list"

---@class opsh.arg
---@field help string one line
---@field type? opsh.arg.type default "string"
---@field required? boolean
---@field default? any
---@field choices? string[]

---@alias opsh.procedure.flag "read-only"|"mutating"|"destructive"

---@class opsh.procedure
---@field description string first line is the summary `opsh list` shows
---@field categories string[]
---@field flags? opsh.procedure.flag[]
---@field args? table<string, opsh.arg>
---@field examples? string[]
---@field run fun(ctx: opsh.ctx, args: table): any

---@class opsh.ctx
---@field name string the procedure's name
---@field env opsh.environment the selected environment (raises a usage error when none is)
---@field dry_run boolean --dry-run: the primitives record mutations instead of sending them
---@field yes boolean --yes
---@field verbose boolean
---@field quiet boolean
---@field output "table"|"json"|"yaml"|"tsv"
---@field flags table<string, boolean> the declaration's flags as a set
---@field problems string[]
---@field log opsh.log
local ctx = {}
---Print records in the chosen --output format.
---@param records table
---@param opts? opsh.out.options
function ctx.out(records, opts) end
---A heading between parts of a report (table output only).
---@param title string
function ctx.section(title) end
---Something is wrong: logged, and the run exits 3.
---@param message string
function ctx.problem(message) end
---Ask before a destructive step: --yes answers yes; no terminal means refuse (usage error).
---@param question string
---@return true
function ctx.confirm(question) end
---A spinner while something long runs.
---@param message string
---@return opsh.progress.handle
function ctx.progress(message) end
---A pool on the environment's PostgreSQL (primary, or the replica).
---@param opts? {replica?: boolean, database?: string, size?: integer}
---@return opsh.pg.pool
function ctx.pg(opts) end
---A client of the environment's Redis.
---@param opts? {db?: integer}
---@return opsh.redis.connection
function ctx.redis(opts) end
---A named secret of the environment (OPSH_SECRET_<NAME>, else its provider).
---@param name string
---@return opsh.secret
function ctx.secret(name) end

--- Run `fn` as a named step: timed, counted (its mutations), undone in reverse order when the run fails.
---@param name string
---@param fn fun(): any
---@param opts? {undo?: fun(...): any, destructive?: boolean, target?: string}
---@return any ...
function ctx.step(name, fn, opts) end

--- A lease on resources ("postgres:psql-legal-production") in the environment's Redis; released at the end.
---@param resources string|string[]
---@param opts? {wait?: number, ttl?: number}
---@return table lease
function ctx.lock(resources, opts) end

---@class opsh.environment.aks
---@field cluster string
---@field resource_group? string
---@field node_pool? string
---@field kubeconfig? string
---@field context? string

---@class opsh.environment.postgres
---@field server string
---@field resource_group? string
---@field database? string
---@field admin_user? string
---@field replica? string the replica server's name
---@field host? string default <server>.postgres.database.azure.com
---@field port? integer default 5432
---@field replica_host? string
---@field replica_port? integer
---@field sslmode? string default "verify-full"
---@field sslrootcert? string
---@field password_secret? string

---@class opsh.environment.redis
---@field name string
---@field resource_group? string
---@field host? string
---@field port? integer
---@field tls? boolean default true
---@field ca? string
---@field key_secret? string

---@class opsh.environment
---@field name string
---@field description? string
---@field subscription? string
---@field tenant? string
---@field resource_group string
---@field location? string
---@field namespace string
---@field deployments? string[]
---@field aks opsh.environment.aks
---@field postgres opsh.environment.postgres
---@field redis? opsh.environment.redis
---@field keyvault? {name?: string, url?: string}
---@field appinsights? {app?: string, resource_group?: string}
---@field acr? {name?: string, login_server?: string}
---@field storage? {account?: string, resource_group?: string, endpoint?: string, backup_container?: string}
---@field secondary? string the name of the DR environment
---@field secrets? {provider?: "keyvault"|"twin"|"env"}
---@field endpoints? table<string, string>
---@field twin? table
local environment = {}
---@param opts? {replica?: boolean, database?: string, size?: integer}
---@return opsh.pg.pool
function environment:pg(opts) end
---@param opts? {db?: integer}
---@return opsh.redis.connection
function environment:redis(opts) end
---@param name string
---@return opsh.secret
function environment:secret(name) end
