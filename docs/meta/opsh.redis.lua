---@meta opsh.redis
-- opsh.redis: Redis client on the opsh loop. See docs/redis.md.

---@class opsh.redis
local redis = {}

---Nil replies inside arrays and pipelines (json.null when opsh.json is present).
redis.null = nil ---@type any

---What a command recorded by a dry-run returns (truthy; prints "redis.dry_run").
redis.dry_run = {} ---@type table

---Commands retried once after a lost connection.
---@type table<string, boolean>
redis.READONLY = {}

---@class opsh.redis.options
---@field url? string redis:// or rediss://user:pass@host:port/db
---@field host? string default 127.0.0.1
---@field port? integer default 6379 (6380 with tls)
---@field username? string ACL user
---@field password? opsh.secret
---@field db? integer selected on every (re)connect
---@field tls? boolean
---@field ca? string PEM text or a PEM file (default: system store)
---@field servername? string name to verify (default host)
---@field verify? boolean default true
---@field timeout? number seconds per reply (default none)
---@field connect_timeout? number seconds for resolving, TCP, TLS, AUTH and SELECT (default 10)

---Connect, authenticate and select the database.
---@param opts opsh.redis.options|string options or a URL
---@return opsh.redis.connection
function redis.connect(opts) end

---@param url string
---@return opsh.redis.options
function redis.parse_url(url) end

---@param text string INFO output
---@return table<string, table<string, any>>
function redis.parse_info(text) end

---@class opsh.redis.connection
---Any command as a method: r:get(k), r:hset(k, f, v), r:client("INFO").
---@field [string] fun(self: opsh.redis.connection, ...: string|number|opsh.secret): any
local conn = {}

---Send a command; raises {kind="redis", code=} for an error reply. In a dry-run a write is
---recorded instead and returns redis.dry_run, the record.
---@param name string
---@param ... string|number|opsh.secret
---@return any reply
---@return table? record the dry-run record, for a recorded write
function conn:call(name, ...) end

---@param db integer
function conn:select(db) end

---Parsed INFO: {section = {field = value}}.
---@param section? string
---@return table<string, table<string, any>>
function conn:info(section) end

---Record commands with p:<command>(...) or p:call(...); send them at once; replies in order
---(error replies as error objects in place, nil as redis.null), with field n. In a dry-run the
---writes are recorded and their places hold redis.dry_run.
---@param fn fun(p: opsh.redis.pipeline)
---@return table
function conn:pipeline(fn) end

---Subscribe on a connection of its own; iterate it with `for msg in r:subscribe(...)`.
---@param ... string|{timeout?: number} channels, then optional options
---@return opsh.redis.subscription
function conn:subscribe(...) end

---Like subscribe, with patterns; messages carry `pattern`.
---@param ... string|{timeout?: number}
---@return opsh.redis.subscription
function conn:psubscribe(...) end

function conn:close() end

---@class opsh.redis.pipeline
---@field [string] fun(self: opsh.redis.pipeline, ...: string|number|opsh.secret)
local pipeline = {}
---@param name string
---@param ... string|number|opsh.secret
function pipeline:call(name, ...) end

---@class opsh.redis.message
---@field channel string
---@field payload string
---@field pattern? string

---@class opsh.redis.subscription
local sub = {}
---The next message, or nil when none came within timeout.
---@param timeout? number
---@return opsh.redis.message?
function sub:next(timeout) end
function sub:close() end

---@class opsh.twin.redis
local twin_redis = {}

---@class opsh.twin.redis.handle
---@field host string
---@field port? integer
---@field tls_port? integer
---@field password? opsh.secret
---@field pid integer
---@field dir string
local handle = {}
function handle:stop() end
function handle:restart() end
---@param o? {tls?: boolean}
---@return opsh.redis.options
function handle:options(o) end

---@param opts {dir: string, port?: integer, tls?: {cert: string, key: string, ca?: string}, tls_port?: integer, tls_only?: boolean, password?: string|opsh.secret}
---@return opsh.twin.redis.handle
function twin_redis.start(opts) end

return redis
