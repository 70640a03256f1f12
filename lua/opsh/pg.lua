-- opsh.pg: PostgreSQL through libpq, non-blocking on the opsh loop. Connections, $n-parameter
-- queries with typed results, transactions, LISTEN/NOTIFY, COPY streaming and a pool.
-- The transport is the C module opsh._pg; this layer adds the policy: TLS verified unless asked
-- otherwise, host names resolved off the loop, dry-run as read-only sessions. See docs/pg.md.
local C = require("opsh._pg")
local core = require("opsh._core")
local check = require("opsh.check")
local json = require("opsh.json")
local fs = require("opsh.fs")
local dryrun = require("opsh.dryrun")

local M = {}

M.null = json.null
M.libpq_version = C.libpq_version
C.configure(json.decode, json.encode, json.null)

local methods = C.conn_methods

-- libpq keywords accepted in a connection table (docs: "Parameter Key Words")
local KEYWORDS = {}
for k in ([[host hostaddr port dbname user password passfile channel_binding options
  application_name fallback_application_name keepalives keepalives_idle keepalives_interval
  keepalives_count tcp_user_timeout sslmode sslcompression sslcert sslkey sslpassword sslrootcert
  sslcrl sslcrldir sslsni requirepeer ssl_min_protocol_version ssl_max_protocol_version gssencmode
  krbsrvname gsslib service target_session_attrs client_encoding]]):gmatch("%S+") do
  KEYWORDS[k] = true
end
-- opsh's own options in a connection table; POOL_KEYS belong to pg.pool
local OWN = {uri = true, conninfo = true, connect_timeout = true, statement_timeout = true, timezone = true}
local POOL_KEYS = {size = true, acquire_timeout = true}

local DEFAULT_CONNECT_TIMEOUT = 10

-- sslmode values; those weaker than verify-full are used only when asked for by name, with a warning
local WEAK_SSLMODES = {
  disable = "no TLS: the password and every query cross the network in clear text",
  allow = "TLS only if the server insists: the password and every query may cross in clear text",
  prefer = "falls back to clear text when the server offers no TLS, and never checks its certificate",
  require = "the server's certificate is not checked: anyone on the path can pose as the server",
  ["verify-ca"] = "the server's host name is not checked against its certificate",
}
local SSLMODE_NAMES = "disable, allow, prefer, require, verify-ca, verify-full"

-- where distributions keep the system's CA bundle (libpq before 16 has no sslrootcert=system)
local CA_BUNDLES = {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"}

local function raise(kind, message, fields)
  error(core.error(kind, message, fields), 3)
end

local function usage(message)
  error(core.error("usage", message), 3)
end

-- every name a connection table may hold, for "did you mean"
local function option_names(pool)
  local list = {}
  for k in pairs(KEYWORDS) do list[#list + 1] = k end
  for k in pairs(OWN) do list[#list + 1] = k end
  if pool then for k in pairs(POOL_KEYS) do list[#list + 1] = k end end
  table.sort(list)
  return list
end

-- A server setting for the options keyword: "-c name=value", spaces escaped as libpq wants.
local function setting(name, value)
  return "-c " .. name .. "=" .. tostring(value):gsub("([\\ ])", "\\%1")
end

-- target (uri | conninfo | table), overrides (table) -> conninfo|nil, {keyword = string|secret}, timeout
local function connect_params(target, overrides, fname, pool)
  local conninfo, opts
  if type(target) == "string" then
    conninfo, opts = target, overrides or {}
  elseif type(target) == "table" then
    opts = target
    conninfo = target.uri or target.conninfo
  elseif target == nil then
    opts = overrides or {}
  else
    check.fail("pg." .. fname, 1, "string or table expected, got " .. check.typename(target))
  end
  if type(opts) ~= "table" then
    check.fail("pg." .. fname, 2, "table expected, got " .. check.typename(opts))
  end
  local params, server_options, parsed = {}, nil, {}
  if conninfo then
    local err
    parsed, err = C.parse_conninfo(conninfo)
    if not parsed then raise("pg_connect", err) end
    server_options = parsed.options
  end
  for k, v in pairs(opts) do
    if KEYWORDS[k] then
      if k == "password" then
        if type(v) ~= "string" and not core.is_secret(v) then
          check.fail("pg." .. fname, 1, "must be a string or an opsh.secret, got " .. check.typename(v), "password")
        end
        params.password = v
      elseif k == "options" then
        server_options = (server_options and server_options .. " " or "") .. tostring(v)
      else
        params[k] = tostring(v)
      end
    elseif not OWN[k] and not (pool and POOL_KEYS[k]) then
      check.unknown("pg." .. fname, 1, k, option_names(pool))
    end
  end
  -- Results need ISO dates to give RFC 3339 timestamps; sessions default to UTC so that a
  -- script means the same everywhere (timezone = "..." picks another).
  local settings = {setting("DateStyle", "ISO, YMD"), setting("TimeZone", opts.timezone or "UTC")}
  if opts.statement_timeout then
    local s = tonumber(opts.statement_timeout)
    if not s or s < 0 then check.fail("pg." .. fname, 1, "must be seconds", "statement_timeout") end
    settings[#settings + 1] = setting("statement_timeout", math.floor(s * 1000 + 0.5))
  end
  if server_options then settings[#settings + 1] = server_options end
  params.options = table.concat(settings, " ")
  if not params.client_encoding then params.client_encoding = "UTF8" end
  -- GSSAPI would talk to the Kerberos KDC with blocking calls on the loop thread
  if not params.gssencmode and not parsed.gssencmode and not os.getenv("PGGSSENCMODE") then
    params.gssencmode = "disable"
  end
  local mode = params.sslmode or parsed.sslmode
  if mode and mode ~= "verify-full" and not WEAK_SSLMODES[mode] then
    usage(string.format("%s: sslmode '%s' is not one of %s", fname, mode, SSLMODE_NAMES))
  end
  local timeout = tonumber(opts.connect_timeout) or DEFAULT_CONNECT_TIMEOUT
  return {conninfo = conninfo, params = params, parsed = parsed, timeout = timeout}
end

-- ---- connecting: TLS policy, host names resolved off the loop ----

local function split(list)
  local out = {}
  for part in (list .. ","):gmatch("([^,]*),") do out[#out + 1] = part end
  return out
end

local function unix_host(h) return h:sub(1, 1) == "/" or h:sub(1, 1) == "@" end

local function ip_literal(h) return h:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or h:find(":", 1, true) ~= nil end

local bundle
-- the system's CA bundle: SSL_CERT_FILE (as OpenSSL reads it), else the distribution's file
local function system_ca_bundle()
  if bundle then return bundle end
  local candidates = {}
  local env = os.getenv("SSL_CERT_FILE")
  if env and env ~= "" then candidates[1] = env end
  for _, path in ipairs(CA_BUNDLES) do candidates[#candidates + 1] = path end
  for _, path in ipairs(candidates) do
    local st = fs.stat(path)
    if st and st.type == "file" then
      bundle = path
      return path
    end
  end
  if M.libpq_version >= 160000 then
    bundle = "system"
    return bundle
  end
  raise("pg_connect", "no system CA bundle to verify the server with (looked at SSL_CERT_FILE, "
    .. table.concat(CA_BUNDLES, ", ") .. "): give sslrootcert, the CA that signed the server's certificate")
end

local warned = {}

-- sslmode verify-full unless one is asked for by name (option, conninfo, PGSSLMODE), with the
-- system CA bundle unless sslrootcert says otherwise. Unix-domain sockets have no TLS in libpq.
-- -> whether the mode is opsh's default
local function tls_policy(params, parsed)
  local host = params.host or parsed.host or os.getenv("PGHOST")
  local hostaddr = params.hostaddr or parsed.hostaddr or os.getenv("PGHOSTADDR")
  local service = params.service or parsed.service or os.getenv("PGSERVICE")
  -- no host at all is libpq's default socket; a service file may name any host
  local tcp = hostaddr ~= nil or service ~= nil
  for _, h in ipairs(host and split(host) or {}) do
    if h ~= "" and not unix_host(h) then tcp = true end
  end
  local mode = params.sslmode or parsed.sslmode or os.getenv("PGSSLMODE")
  local defaulted = mode == nil or mode == ""
  if defaulted then mode = "verify-full" end
  if mode ~= "verify-full" and not WEAK_SSLMODES[mode] then
    raise("usage", string.format("connect: sslmode '%s' (from PGSSLMODE) is not one of %s", mode, SSLMODE_NAMES))
  end
  params.sslmode = mode
  if not tcp then return defaulted end
  if WEAK_SSLMODES[mode] then
    local target = string.format("%s:%s", host or hostaddr or ("service " .. tostring(service)),
      params.port or parsed.port or os.getenv("PGPORT") or "5432")
    local key = mode .. " " .. target
    if not warned[key] then
      warned[key] = true
      require("opsh.log").warn(string.format("opsh.pg: sslmode=%s for %s: %s", mode, target, WEAK_SSLMODES[mode]))
    end
  end
  if (mode == "verify-full" or mode == "verify-ca") and not params.sslrootcert and not parsed.sslrootcert
      and not os.getenv("PGSSLROOTCERT") then
    params.sslrootcert = system_ca_bundle()
  end
  return defaulted
end

-- Every host name becomes one entry per address (hostaddr), resolved on libuv's thread pool
-- within the time left (left() -> seconds, 0 for no limit); `host` stays for the certificate
-- check. libpq tries the entries in order.
local function resolve_hosts(params, parsed, left)
  if params.hostaddr or parsed.hostaddr or os.getenv("PGHOSTADDR") then return end
  local host = params.host or parsed.host or os.getenv("PGHOST")
  if not host or host == "" then return end
  local hosts = split(host)
  local names = false
  for _, h in ipairs(hosts) do
    if h ~= "" and not unix_host(h) and not ip_literal(h) then names = true end
  end
  if not names then return end
  local ports = split(params.port or parsed.port or os.getenv("PGPORT") or "")
  if #ports ~= 1 and #ports ~= #hosts then return end   -- libpq says what is wrong
  local H, A, P = {}, {}, {}
  local failure
  for i, h in ipairs(hosts) do
    local port = ports[#ports == 1 and 1 or i]
    if h == "" or unix_host(h) or ip_literal(h) then
      H[#H + 1], A[#A + 1], P[#P + 1] = h, "", port
    elseif not failure or not failure.timeout then
      local addrs, err, timed_out = C.resolve(h, left())
      if addrs then
        for _, a in ipairs(addrs) do H[#H + 1], A[#A + 1], P[#P + 1] = h, a, port end
      elseif not failure then
        failure = {host = h, port = tonumber(port) or (port ~= "" and port or nil), timeout = timed_out or nil,
          message = timed_out and string.format('timed out resolving host name "%s"', h)
            or string.format('could not translate host name "%s" to address: %s', h, err)}
      end
    end
  end
  if #H == 0 then
    raise("pg_connect", failure.message, {host = failure.host, port = failure.port, timeout = failure.timeout})
  end
  params.host, params.hostaddr, params.port = table.concat(H, ","), table.concat(A, ","), table.concat(P, ",")
end

local readonly = setmetatable({}, {__mode = "k"})      -- conn -> true: opsh made its session read-only
local password_of = setmetatable({}, {__mode = "k"})   -- conn -> its password (scrubbed from records)

-- spec: the result of connect_params; opens one connection
local function open(spec)
  -- connect_timeout 0 waits as long as it takes, as in libpq
  local deadline = spec.timeout > 0 and core.hrtime() + spec.timeout or nil
  local function left() return deadline and math.max(0.001, deadline - core.hrtime()) or 0 end
  local params = {}
  for k, v in pairs(spec.params) do params[k] = v end
  local defaulted = tls_policy(params, spec.parsed)
  resolve_hosts(params, spec.parsed, left)
  local ro = dryrun.active()
  if ro then params.options = params.options .. " " .. setting("default_transaction_read_only", "on") end
  local ok, conn = pcall(C.connect, spec.conninfo, params, left(), spec.timeout)
  if not ok then
    if defaulted and core.is_error(conn) and type(conn.message) == "string"
        and conn.message:find("does not support SSL", 1, true) then
      conn.message = conn.message .. " (opsh.pg requires TLS: sslmode=verify-full unless asked otherwise; ask for "
        .. "sslmode = \"disable\" only for a server you trust)"
    end
    error(conn, 0)
  end
  readonly[conn] = ro or nil
  password_of[conn] = params.password
  return conn
end

--- connect(uri | conninfo | {host=, port=, dbname=, user=, password=, sslmode=, ...} [, overrides]) -> conn
function M.connect(target, overrides)
  return open(connect_params(target, overrides, "connect"))
end

-- ---- dry-run: read-only sessions, and the statements they would let through ----

local c_query, c_exec, c_copy = methods.query, methods.exec, methods._copy
local dry_active = dryrun.active

-- Statements and functions a read-only transaction lets run although they change the server
-- (PostgreSQL 15, checked by tests/pg/pg_safety_spec.lua and docs/pg.md#dry-run).
local CHANGING_STATEMENTS = {vacuum = "VACUUM", analyze = "ANALYZE", analyse = "ANALYZE",
  checkpoint = "CHECKPOINT", cluster = "CLUSTER", reindex = "REINDEX", notify = "NOTIFY",
  ["alter system"] = "ALTER SYSTEM", ["prepare transaction"] = "PREPARE TRANSACTION",
  ["commit prepared"] = "COMMIT PREPARED", ["rollback prepared"] = "ROLLBACK PREPARED"}
local CHANGING_FUNCTIONS = {}
for name in ([[pg_promote pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile
  pg_switch_wal pg_switch_xlog pg_create_restore_point pg_wal_replay_pause pg_wal_replay_resume
  pg_xlog_replay_pause pg_xlog_replay_resume pg_backup_start pg_backup_stop pg_start_backup pg_stop_backup
  pg_create_physical_replication_slot pg_create_logical_replication_slot pg_drop_replication_slot
  pg_copy_physical_replication_slot pg_copy_logical_replication_slot pg_replication_slot_advance
  pg_logical_slot_get_changes pg_logical_slot_get_binary_changes pg_logical_emit_message
  pg_import_system_collations pg_notify lo_create lo_creat lo_import lo_export lo_unlink lo_from_bytea
  lo_put lowrite lo_truncate lo_truncate64 dblink dblink_exec pg_file_write pg_file_rename pg_file_unlink
  pg_file_sync pg_stat_reset[%w_]* pg_replication_origin_[%w_]+]]):gmatch("%S+") do
  CHANGING_FUNCTIONS[#CHANGING_FUNCTIONS + 1] = name
end
-- words that open a PL/pgSQL block or branch before a statement
local BLOCK_WORDS = {begin = true, ["then"] = true, ["else"] = true, loop = true, declare = true}

-- the statements of sql as lower-case code: comments and quoted strings removed, dollar quotes
-- opened up (their bodies are code in DO blocks and function definitions)
local function statements(sql)
  local parts, i, n = {}, 1, #sql
  while i <= n do
    local j = sql:find("[-/'\"$]", i)
    if not j then
      parts[#parts + 1] = sql:sub(i)
      break
    end
    parts[#parts + 1] = sql:sub(i, j - 1)
    local c, two = sql:sub(j, j), sql:sub(j, j + 1)
    if two == "--" then
      i = (sql:find("\n", j, true) or n) + 1
    elseif two == "/*" then
      local depth, k = 1, j + 2
      while k <= n and depth > 0 do
        local t = sql:sub(k, k + 1)
        if t == "/*" then depth, k = depth + 1, k + 2
        elseif t == "*/" then depth, k = depth - 1, k + 2
        else k = k + 1 end
      end
      parts[#parts + 1] = " "
      i = k
    elseif c == "'" then
      local escapes = sql:sub(j - 1, j - 1):lower() == "e"
      local k = j + 1
      while k <= n do
        local d = sql:sub(k, k)
        if escapes and d == "\\" then k = k + 2
        elseif d == "'" and sql:sub(k + 1, k + 1) == "'" then k = k + 2
        elseif d == "'" then break
        else k = k + 1 end
      end
      parts[#parts + 1] = " '' "
      i = k + 1
    elseif c == '"' then
      local k = sql:find('"', j + 1, true) or n
      parts[#parts + 1] = sql:sub(j + 1, k - 1)
      i = k + 1
    elseif c == "$" then
      local tag = sql:match("^%$[%a_]?[%w_]*%$", j)
      parts[#parts + 1] = tag and ";" or "$"
      i = j + (tag and #tag or 1)
    else
      parts[#parts + 1] = c
      i = j + 1
    end
  end
  local out = {}
  for st in (table.concat(parts):lower() .. ";"):gmatch("([^;]*);") do out[#out + 1] = st end
  return out
end

-- why sql would change the server although the session is read-only, or nil
local function changes_anyway(sql)
  local raw = sql:lower()
  for _, name in ipairs(CHANGING_FUNCTIONS) do
    local at, stop = raw:find("%f[%w_]" .. name .. "[\"%s]*%(")
    if at then return raw:sub(at, stop):gsub("[\"%s(]", "") .. "()" end
  end
  if raw:find("set_config%s*%(%s*'[%w_]*transaction_read_only'") then return "set_config(transaction_read_only)" end
  for _, st in ipairs(statements(sql)) do
    local words = {}
    for w in st:gmatch("[%a_][%w_]*") do words[#words + 1] = w end
    local k = 1
    while BLOCK_WORDS[words[k]] and words[k + 1] and not (words[k] == "begin" and k == 1 and
        (words[2] == "read" or words[2] == "isolation" or words[2] == "transaction" or words[2] == "work")) do
      k = k + 1
    end
    local one, two = words[k], words[k] and words[k + 1] and (words[k] .. " " .. words[k + 1])
    local what = CHANGING_STATEMENTS[two or ""] or CHANGING_STATEMENTS[one or ""]
    if what then return what end
    if one == "copy" and (st:find("%f[%w_]to%s+program%f[^%w_]") or st:find("%f[%w_]to%s+''")) then
      return "COPY TO a server file or program"
    end
    if (one == "set" or one == "reset" or one == "begin" or one == "start")
        and (st:find("transaction_read_only", 1, true) or st:find("read%s+write")) then
      return "turning the read-only session off"
    end
  end
  return nil
end

local TX_CONTROL = {begin = true, start = true, commit = true, ["end"] = true, rollback = true, abort = true,
  savepoint = true, release = true}

-- sql with every PASSWORD '...' literal replaced, for records and logs (ALTER/CREATE ROLE take
-- no parameters, so a password there is a literal)
local function without_passwords(sql)
  local lower = sql:lower()
  local out, i = {}, 1
  while true do
    local _, quote = lower:find("password%s*'", i)
    if not quote then break end
    local j = quote + 1
    while true do
      local q = sql:find("'", j, true)
      if not q then j = #sql + 1 break end
      if sql:sub(q + 1, q + 1) == "'" then j = q + 2 else j = q + 1 break end
    end
    out[#out + 1] = sql:sub(i, quote - 1) .. "'<redacted>'"
    i = j
  end
  out[#out + 1] = sql:sub(i)
  return table.concat(out)
end
M._without_passwords = without_passwords

local function one_line(sql)
  sql = without_passwords(sql)
  local line = sql:gsub("%s+", " "):match("^%s*(.-)%s*$")
  if #line > 200 then line = line:sub(1, 200) .. "…" end
  return line
end

-- the result of a statement that was not run: recorded as a would-be change
local function would_be(self, sql, args, reason)
  local info = self:info()
  local params = {}
  for i = 1, args.n do
    if args[i] == nil then params[i] = M.null else params[i] = args[i] end
  end
  local record = dryrun.record({kind = "pg", action = one_line(sql),
    target = string.format("%s/%s", info.host or "?", info.dbname or "?"),
    request = {sql = without_passwords(sql), params = params}, secrets = {password_of[self]}})
  return {dry_run = true, command = "DRY RUN", columns = {}, reason = reason, record = record}
end

-- Keeps the session's default_transaction_read_only in step with the run's dry-run state (a
-- connection opened before dryrun.with, a pool, the REPL). Inside a transaction, only that
-- transaction is made read-only; the session follows once it has ended.
local function sync_session(self, want)
  if (readonly[self] or false) == want then return end
  local tx = self:info().transaction
  if tx == "idle" then
    c_exec(self, want and "SET default_transaction_read_only = on" or "SET default_transaction_read_only = off")
    readonly[self] = want or nil
  elseif want and tx == "intrans" then
    c_exec(self, "SET transaction_read_only = on")
  end
end

-- A call in a dry-run (or on a session still read-only from one): statements that would change
-- the server anyway are recorded without being sent; the others run in the read-only session,
-- and one it refuses as a write (25006) is recorded instead. Inside a transaction a savepoint
-- keeps a refused statement from aborting it, so the procedure carries on.
local function dry_call(self, sql, args, fn, ...)
  local want = dry_active()
  sync_session(self, want)
  if not want then return fn(self, sql, ...) end
  local why = changes_anyway(sql)
  if why then return would_be(self, sql, args, why .. " changes the server even in a read-only session: not sent") end
  local first = sql:match("^%s*([%a_]+)")
  local savepoint = self:info().transaction == "intrans" and not TX_CONTROL[(first or ""):lower()]
  if savepoint then c_exec(self, "SAVEPOINT opsh_dry_run") end
  local res = table.pack(pcall(fn, self, sql, ...))
  if savepoint then
    local ok, err = pcall(c_exec, self, res[1] and "RELEASE SAVEPOINT opsh_dry_run"
      or "ROLLBACK TO SAVEPOINT opsh_dry_run; RELEASE SAVEPOINT opsh_dry_run")
    if not ok and res[1] then error(err, 0) end
  end
  if res[1] then return table.unpack(res, 2, res.n) end
  local err = res[2]
  if core.is_error(err) and err.sqlstate == "25006" then
    return would_be(self, sql, args, string.format("refused by the read-only session: %s (25006)", err.message))
  end
  error(err, 0)
end

-- Command tags of statements that change nothing on the server (transaction control and session
-- settings included); anything else, and a read that calls a changing function, is a mutation.
local READ_TAGS = {SELECT = true, SHOW = true, SET = true, RESET = true, BEGIN = true, START = true,
  COMMIT = true, ROLLBACK = true, SAVEPOINT = true, RELEASE = true, FETCH = true, MOVE = true, DECLARE = true,
  CLOSE = true, DISCARD = true, LISTEN = true, UNLISTEN = true, EXPLAIN = true, DEALLOCATE = true,
  PREPARE = true}
local READ_WORDS = {select = true, show = true, set = true, reset = true, begin = true, start = true,
  commit = true, ["end"] = true, rollback = true, abort = true, savepoint = true, release = true, fetch = true,
  move = true, declare = true, close = true, discard = true, listen = true, unlisten = true, explain = true,
  deallocate = true, prepare = true, values = true, table = true, with = true}

local function is_mutation(sql, res)
  local tag = type(res) == "table" and type(res.command) == "string" and res.command:match("^%u+")
  if tag and not READ_TAGS[tag] then return true end
  if not tag or sql:find("[(;]") then
    local why = changes_anyway(sql)
    if why and why ~= "turning the read-only session off" then return true end
    for _, st in ipairs(statements(sql)) do
      local first = st:match("^%s*([%a_]+)")
      if first and not READ_WORDS[first] then return true end
    end
    return false
  end
  local first = sql:match("^%s*([%a_]+)")
  return first ~= nil and not READ_WORDS[first:lower()]
end

-- a statement sent outside a dry run: one audit line when it changed something
local function audited(self, sql, res)
  if is_mutation(sql, res) then
    local info = self:info()
    require("opsh.audit").record({kind = "pg", action = one_line(sql),
      target = string.format("%s/%s", info.host or "?", info.dbname or "?"),
      result = type(res) == "table" and res.command or nil, secrets = {password_of[self]}})
  end
  return res
end

--- conn:query(sql, ...) -> result
function methods:query(sql, ...)
  if not readonly[self] and not dry_active() then return audited(self, sql, c_query(self, sql, ...)) end
  return dry_call(self, sql, table.pack(...), c_query, ...)
end

--- conn:exec(sql) -> result of the last statement
function methods:exec(sql, ...)
  if not readonly[self] and not dry_active() then return audited(self, sql, c_exec(self, sql, ...)) end
  return dry_call(self, sql, table.pack(...), c_exec, ...)
end

-- ---- connection methods written in Lua ----

local depth = setmetatable({}, {__mode = "k"})   -- conn -> open transaction(fn) levels

local function closer(fn)
  return setmetatable({}, {__close = fn})
end

--- conn:transaction(fn) -> fn's results; COMMIT, or ROLLBACK and re-raise. Nested calls use savepoints.
function methods:transaction(fn)
  if type(fn) ~= "function" then
    check.func("conn:transaction", 1, fn)
  end
  local level = depth[self] or 0
  local savepoint = level > 0 and ("opsh_savepoint_" .. level) or nil
  self:exec(savepoint and ("SAVEPOINT " .. savepoint) or "BEGIN")
  depth[self] = level + 1
  local finished = false
  local _ <close> = closer(function()
    depth[self] = level > 0 and level or nil
    -- a cancelled task or an error in COMMIT/ROLLBACK: end it without waiting
    if not finished then self:_abort(true) end
  end)
  local res = table.pack(pcall(fn, self))
  if res[1] then
    local ok, r = pcall(self.exec, self, savepoint and ("RELEASE SAVEPOINT " .. savepoint) or "COMMIT")
    finished = true
    if not ok then error(r, 0) end
    if not savepoint and r.command == "ROLLBACK" then
      raise("pg", "the transaction was rolled back: an error inside it was caught and the transaction was "
        .. "aborted", {sqlstate = "25P02", code = "25P02"})
    end
    return table.unpack(res, 2, res.n)
  end
  if savepoint then
    self:exec("ROLLBACK TO SAVEPOINT " .. savepoint .. "; RELEASE SAVEPOINT " .. savepoint)
  else
    self:exec("ROLLBACK")
  end
  finished = true
  error(res[2], 0)
end

--- conn:listen(channel): LISTEN (the channel is quoted as an identifier)
function methods:listen(channel)
  self:exec("LISTEN " .. self:escape_identifier(channel))
end

function methods:unlisten(channel)
  self:exec("UNLISTEN " .. (channel and self:escape_identifier(channel) or "*"))
end

--- conn:notify(channel, payload)
function methods:notify(channel, payload)
  self:query("SELECT pg_notify($1, $2)", channel, payload)
end

--- conn:notifications({timeout = seconds}) -> iterator of {channel=, payload=, pid=}; without a
-- timeout it waits until the task is cancelled, with one it ends when the time is up.
function methods:notifications(opts)
  local timeout = opts and opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    check.fail("conn:notifications", 1, "must be a non-negative number", "timeout")
  end
  local deadline = timeout and core.hrtime() + timeout
  return function()
    if deadline then return self:_wait_notification(math.max(0, deadline - core.hrtime())) end
    return self:_wait_notification()
  end
end

--- conn:set_statement_timeout(seconds): for this session (0 = none)
function methods:set_statement_timeout(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    check.fail("conn:set_statement_timeout", 1, "non-negative number expected, got " .. tostring(seconds))
  end
  self:query("SELECT set_config('statement_timeout', $1, false)", tostring(math.floor(seconds * 1000 + 0.5)))
end

-- Runs fn(file) inside a COPY of direction `want` ("out" | "in"), with `path` (if any) opened with
-- `how` through opsh.fs (libuv's thread pool: a slow disk or a FIFO never stalls the loop). A COPY
-- left unfinished (an error, a cancelled task) is cancelled on the server.
local function with_copy(self, sql, want, path, how, fn)
  local f = path and fs.open(path, how)
  local done = false
  local _ <close> = closer(function()
    if f then f:close() end
    if not done then self:_abort(false) end
  end)
  if c_copy(self, sql) ~= want then
    raise("usage", want == "out" and "copy_out expects COPY ... TO STDOUT" or "copy_in expects COPY ... FROM STDIN")
  end
  local res = fn(f)
  done = true
  if f then
    local file = f
    f = nil
    file:close()
  end
  return res
end

local function copy_out(self, sql, opts)
  return with_copy(self, sql, "out", opts.file, "w", function(f)
    local bytes = 0
    while true do
      local data, res = self:_copy_read()
      if data then
        bytes = bytes + #data
        if f then f:write(data) else opts.on_data(data) end
      end
      if res then
        res.bytes = bytes
        return res
      end
    end
  end)
end

--- conn:copy_out(sql, {file = path} | {on_data = fn}) -> result (command, affected, bytes)
function methods:copy_out(sql, opts)
  check.string("conn:copy_out", 1, sql)
  if type(opts) ~= "table" or (opts.file == nil) == (opts.on_data == nil) then
    check.fail("conn:copy_out", 2, "table with file or on_data expected")
  end
  if readonly[self] or dry_active() then return dry_call(self, sql, {n = 0}, copy_out, opts) end
  return copy_out(self, sql, opts)
end

local CHUNK = 64 * 1024
local CHUNK_MAX = 16 * 1024 * 1024

local function copy_in(self, sql, opts)
  return with_copy(self, sql, "in", opts.file, "r", function(f)
    local read = f and function() return f:read(CHUNK) end or opts.source
    local ok, err = pcall(function()
      while true do
        local chunk = read()
        if chunk == nil then break end
        if type(chunk) ~= "string" then raise("usage", "copy_in source must return strings or nil") end
        if #chunk <= CHUNK_MAX then
          if #chunk > 0 then self:_copy_write(chunk) end
        else   -- a CopyData message must stay under the server's 1 GiB
          for at = 1, #chunk, CHUNK_MAX do self:_copy_write(chunk:sub(at, at + CHUNK_MAX - 1)) end
        end
      end
    end)
    if not ok then
      -- the server must see the COPY fail: a half-written table is never committed
      pcall(self._copy_end, self, "aborted by the client")
      error(err, 0)
    end
    return self:_copy_end()
  end)
end

--- conn:copy_in(sql, {file = path} | {source = fn -> chunk|nil}) -> result (command, affected)
function methods:copy_in(sql, opts)
  check.string("conn:copy_in", 1, sql)
  if type(opts) ~= "table" or (opts.file == nil) == (opts.source == nil) then
    check.fail("conn:copy_in", 2, "table with file or source expected")
  end
  if readonly[self] or dry_active() then return dry_call(self, sql, {n = 0}, copy_in, opts) end
  return audited(self, sql, copy_in(self, sql, opts))
end

-- the pool (lua/opsh/pg/pool.lua) opens connections as connect() does
M.pool = require("opsh.pg.pool").bind{open = open, connect_params = connect_params, closer = closer, raise = raise}

return M
