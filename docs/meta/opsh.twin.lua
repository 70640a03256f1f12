---@meta opsh.twin
-- Editor stubs for `opsh.twin` (lua/opsh/twin/). See docs/twin.md.

---@class opsh.twin.event
---@field type "ADDED"|"MODIFIED"|"DELETED"
---@field version integer the store's version after this change (strictly increasing)
---@field collection string
---@field key string
---@field object any

---@class opsh.twin.client
local client = {}
---@param collection string
---@param key string
---@return any object, integer version
function client:get(collection, key) end
---@param collection string
---@param key string
---@param object any
---@param opts? {if_version?: integer}
---@return integer version
function client:put(collection, key, object, opts) end
---RFC 7386 merge patch.
---@return integer version, any object
function client:patch(collection, key, merge_patch, opts) end
---@return integer|nil version
function client:delete(collection, key, opts) end
---@return {key: string, version: integer, object: any}[] items, integer store_version
function client:list(collection) end
---All or nothing: a list of {op=, collection=, key=, object=, if_version=}.
---@return integer|nil version
function client:txn(ops) end
---@return table state {collection -> {key -> object}}, integer version
function client:read() end
---fn(state) changes the state; keys it changed are written only if nobody changed them since (else fn runs again).
---@return any ...
function client:update(fn) end
---Calls fn(event) for each change from `from` on; fn returns false to stop. A too-old `from` raises (410).
---@param opts {collection?: string, from?: integer, timeout?: number}
---@param fn fun(event: opsh.twin.event): boolean?
function client:watch(opts, fn) end

---@class opsh.twin
local twin = {}
---Start the twin (idempotent). `without`: components to leave out.
---@param opts? {dir?: string, without?: string|string[]}
---@return table state, "started"|"running" what
function twin.up(opts) end
---Stop what the twin started; its state is kept.
---@param opts? {dir?: string}
---@return boolean stopped
function twin.down(opts) end
---Back to the seeded state, with a new CA and an empty store.
---@param opts? {dir?: string, without?: string|string[]}
function twin.reset(opts) end
---The names of the components the running twin was started without (sorted).
---@param dir? string
---@return string[]
function twin.left_out(dir) end
---Records {component, pid, state, detail}, and whether all are healthy.
---@return table[] records, boolean healthy
function twin.status(dir, st, cl) end
---The `twin` environment (what --env twin selects); region "secondary": `twin-secondary`, its failover
---target (the streaming replica as the promoted-to server, the secondary cluster).
---@param dir? string
---@param region? "production"|"secondary"
---@return table
function twin.environment(dir, region) end
---Ordered {name, value} pairs for `eval "$(opsh twin env --shell)"`.
---@param dir? string
---@return string[][]
function twin.shell_exports(dir) end
---The state {collection -> {key -> object}}, and its version.
---@param dir? string
---@return table, integer
function twin.read_state(dir) end
---update_state([dir,] fn) -> fn's results, through the API process.
function twin.update_state(dir, fn) end
---A client of the running twin's state store.
---@param dir? string
---@return opsh.twin.client
function twin.client(dir) end
---The API process (`opsh twin serve`, started detached by `up`).
---@param opts {dir?: string, port?: integer}
function twin.serve(opts) end
---Component modules in start order.
---@return table[]
function twin.components() end
---@param name string
---@return table|nil
function twin.component(name) end
---@return string[]
function twin.names() end
---{name -> why it is left out} for a `without` list.
---@param without? string|string[]
---@return table<string, string>
function twin.plan(without) end
---For components: wait until ready() is true, or fail with the end of the log.
function twin.wait_until(p, logfile, what, ready, timeout) end
---For components: wait until the process accepts connections on port.
function twin.wait_ready(p, port, logfile, timeout) end
---The object components get (dir, state, ca paths, the client).
function twin.handle(dir, st, client) end

return twin
