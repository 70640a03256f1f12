---@meta opsh.pg
-- Editor stubs for `opsh.pg` (lua/opsh/pg.lua + bindings/pg*.c) and `opsh.twin.postgres`. See docs/pg.md.

---@class opsh.pg.options
---@field uri? string postgresql://... (the other keys override its values)
---@field conninfo? string "host=... dbname=..."
---@field host? string
---@field hostaddr? string
---@field port? integer|string
---@field dbname? string
---@field user? string
---@field password? string|opsh.secret never appears in errors, logs or argv
---@field passfile? string
---@field sslmode? "disable"|"allow"|"prefer"|"require"|"verify-ca"|"verify-full" default "verify-full"; a weaker mode logs a warning
---@field sslrootcert? string default: the system CA bundle (SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt, ...)
---@field gssencmode? "disable"|"prefer"|"require" default "disable" (GSSAPI would block the loop)
---@field sslcert? string
---@field sslkey? string
---@field application_name? string
---@field options? string server options, e.g. "-c search_path=app"
---@field target_session_attrs? string
---@field connect_timeout? number seconds for the whole connect (DNS included); default 10
---@field statement_timeout? number seconds; the server cancels longer statements (57014)
---@field timezone? string session TimeZone; default "UTC"

---@class opsh.pg.column
---@field name string
---@field type integer the type OID
---@field type_name? string "int4", "jsonb", ... for common types

---@class opsh.pg.result
---@field [integer] table<string, any> records: column name -> typed value (NULL is pg.null)
---@field columns opsh.pg.column[]
---@field command string command tag, e.g. "INSERT 0 3"
---@field affected? integer rows affected/returned/copied
---@field notices? string[] server notices during the statement
---@field bytes? integer copy_out only: bytes written
---@field dry_run? true in a dry-run: the statement was not run (no rows; see `reason`, `record`)
---@field reason? string dry-run: why it was not run
---@field record? table dry-run: the opsh.dryrun record made for it

---@class opsh.pg.notification
---@field channel string
---@field payload string
---@field pid integer the notifying backend's process id

---@class opsh.pg.info
---@field state "idle"|"busy"|"copy_out"|"copy_in"|"draining"|"broken"|"closed"
---@field host? string
---@field hostaddr? string the address connected to (absent on a Unix socket)
---@field port? integer
---@field dbname? string
---@field user? string
---@field backend_pid? integer
---@field server_version? integer e.g. 150005
---@field ssl? boolean
---@field transaction? "idle"|"active"|"intrans"|"inerror"|"unknown"

---@class opsh.pg.conn
local conn = {}

---Run one statement with $1..$n parameters (nil/pg.null, boolean, number, string, table → JSON, secret).
---Secret parameters and the connection's password are scrubbed from its errors. In a dry-run, a write
---returns {dry_run = true, command = "DRY RUN", reason =, record =} instead of running.
---@param sql string
---@param ... any
---@return opsh.pg.result
function conn:query(sql, ...) end

---Run a script of statements (simple protocol, no parameters); returns the last statement's result.
---@param sql string
---@return opsh.pg.result
function conn:exec(sql) end

---BEGIN, fn(conn), COMMIT; on error ROLLBACK and re-raise. Nested calls use savepoints.
---@generic R
---@param fn fun(conn: opsh.pg.conn): R
---@return R
function conn:transaction(fn) end

---@param channel string
function conn:listen(channel) end

---@param channel? string all channels when nil
function conn:unlisten(channel) end

---@param channel string
---@param payload? string
function conn:notify(channel, payload) end

---Iterator over notifications; ends after `timeout` seconds (a deadline for the whole loop).
---@param opts? {timeout?: number}
---@return fun(): opsh.pg.notification|nil
function conn:notifications(opts) end

---Stream COPY ... TO STDOUT to a file or a callback.
---@param sql string
---@param opts {file?: string, on_data?: fun(chunk: string)}
---@return opsh.pg.result
function conn:copy_out(sql, opts) end

---Feed COPY ... FROM STDIN from a file or a source function (strings until nil).
---@param sql string
---@param opts {file?: string, source?: fun(): string|nil}
---@return opsh.pg.result
function conn:copy_in(sql, opts) end

---@param seconds number 0 for none
function conn:set_statement_timeout(seconds) end

---@return opsh.pg.info
function conn:info() end

---Quote an identifier ("my table" → "\"my table\"").
---@param name string
---@return string
function conn:escape_identifier(name) end

---Close the connection (idempotent; also `<close>` and garbage collection).
function conn:close() end

---@class opsh.pg.pool_options: opsh.pg.options
---@field size? integer default 10
---@field acquire_timeout? number seconds; default 30

---@class opsh.pg.pool
local pool = {}
---@return opsh.pg.conn
function pool:acquire() end
---@param c opsh.pg.conn
function pool:release(c) end
---@generic R
---@param fn fun(conn: opsh.pg.conn): R
---@return R
function pool:with(fn) end
---One statement on a borrowed connection.
---@param sql string
---@return opsh.pg.result
function pool:query(sql, ...) end
---One simple-protocol statement (or several) on a borrowed connection.
---@param sql string
---@return opsh.pg.result
function pool:exec(sql) end
---@return {size: integer, open: integer, idle: integer, busy: integer, waiting: integer}
function pool:stats() end
function pool:close() end

---@class opsh.pg
---@field null any SQL NULL (the same value as opsh.json's null)
---@field libpq_version integer
local pg = {}

---Connect (suspends the task): TLS verify-full unless a weaker sslmode is named; host names resolved
---off the loop. Raises {kind="pg_connect", host, port, dbname, user} on failure.
---@param target? string|opsh.pg.options a URI, a conninfo string or a table
---@param overrides? opsh.pg.options with a string target
---@return opsh.pg.conn
function pg.connect(target, overrides) end

---@param opts opsh.pg.pool_options
---@return opsh.pg.pool
function pg.pool(opts) end

---@class opsh.twin.postgres.handle
---@field host string "127.0.0.1"
---@field port integer
---@field user string
---@field password opsh.secret
---@field dbname string
---@field dir string
---@field data string the data directory
---@field log string the server log
---@field pid integer the postmaster
---@field archive_dir? string
---@field tls? {cert: string, key: string, ca?: string}
---@field stop fun() fast shutdown, idempotent
---@field connect_params fun(extra?: opsh.pg.options): opsh.pg.options

---@class opsh.twin.postgres
local launcher = {}

---@param opts {dir: string, port?: integer, user?: string, password?: string|opsh.secret, dbname?: string, tls?: {cert: string, key: string, ca?: string}, wal_archive?: boolean, seed_sql?: string, settings?: table[], max_connections?: integer}
---@return opsh.twin.postgres.handle
function launcher.start(opts) end

---@param opts {primary: opsh.twin.postgres.handle, dir: string, port?: integer, name?: string}
---@return opsh.twin.postgres.handle
function launcher.start_replica(opts) end

---@param opts {server: opsh.twin.postgres.handle, dir: string}
---@return {dir: string, data: string}
function launcher.base_backup(opts) end

---@param opts {dir: string, backup?: string, from?: opsh.twin.postgres.handle, archive_dir?: string, target_time?: string, immediate?: boolean, user: string, password?: opsh.secret, dbname: string, tls?: table, port?: integer}
---@return opsh.twin.postgres.handle
function launcher.restore(opts) end

---@param rec {dir: string, data: string, log: string}
---@return integer pid
function launcher.restart(rec) end

---@param dir string
---@param server {host: string, port: integer, user: string, password: opsh.secret|string}
---@return string path
function launcher.write_passfile(dir, server) end

return pg
