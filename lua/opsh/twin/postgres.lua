-- opsh.twin.postgres: throwaway PostgreSQL servers on 127.0.0.1 for the specs and the twin.
-- start{dir=} runs initdb, writes postgresql.conf/pg_hba.conf (loopback only, scram passwords,
-- TLS and WAL archiving on request) and starts the server with pg_ctl; start_replica{} makes a
-- streaming replica with pg_basebackup -R. As root (CI), the server runs as the `postgres`
-- system user, which owns the directory; otherwise as the invoking user.
local core = require("opsh._core")
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")

local M = {}

local function raise(message, fields)
  error(core.error("twin", message, fields), 2)
end

-- argv -> ok, output (stdout and stderr). A clean environment: a PGSSLROOTCERT or PGHOST the user
-- exported for psql must not reach initdb, pg_ctl or pg_basebackup (which runs as postgres when root).
local function run(argv, cwd)
  local r = proc.run({argv = argv, cwd = cwd, stderr = "stdout", check = false, timeout = 120,
    env = require("opsh.twin.childenv").clean()})
  return r.code == 0, r.stdout or ""
end

local function must(argv, what)
  local ok, out = run(argv)
  if not ok then raise(what .. " failed: " .. out:gsub("%s+$", ""), {output = out}) end
  return out
end

local is_root
local function root()
  if is_root == nil then is_root = must({"id", "-u"}, "id"):match("^0%s*$") ~= nil end
  return is_root
end

local bin
local function bindir()
  if not bin then
    local ok, out = run({"pg_config", "--bindir"})
    bin = ok and out:match("^%s*(.-)%s*$") or "/usr/lib/postgresql/15/bin"
  end
  return bin
end

-- runuser lives in /usr/sbin, which a root PATH normally has but a trimmed one may not
local function runuser()
  for _, path in ipairs({"/usr/sbin/runuser", "/sbin/runuser"}) do
    if fs.exists(path) then return path end
  end
  return "runuser"
end

-- run a PostgreSQL program (as the postgres user when root) from inside dir
local function pg_run(dir, program, ...)
  local argv = {bindir() .. "/" .. program, ...}
  if root() then argv = {runuser(), "-u", "postgres", "--", table.unpack(argv)} end
  return run(argv, dir)
end

local function give(path)
  if root() then must({"chown", "-R", "postgres:postgres", path}, "chown") end
end

local function make_dir(path)
  fs.mkdir(path, {parents = true})
  fs.chmod(path, tonumber("755", 8))
  give(path)
end

local function random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function conf_lines(settings)
  local out = {"", "# written by opsh.twin.postgres"}
  for _, kv in ipairs(settings) do
    local v = kv[2]
    if type(v) == "string" then v = "'" .. v:gsub("'", "''") .. "'" end
    out[#out + 1] = string.format("%s = %s", kv[1], tostring(v))
  end
  return table.concat(out, "\n") .. "\n"
end

local function append_conf(data, settings)
  fs.append(data .. "/postgresql.conf", conf_lines(settings))
end

local function socket_dir(dir, port)
  local d = dir .. "/run"
  -- the socket path (d/.s.PGSQL.port) must fit in sockaddr_un
  if #d + #"/.s.PGSQL." + #tostring(port) >= 107 then return nil end
  return d
end

local function pg_ctl_start(dir, data, port)
  local sock = socket_dir(dir, port)
  if sock then make_dir(sock) end
  return pg_run(dir, "pg_ctl", "-D", data, "-l", dir .. "/postgres.log", "-w", "-t", "60",
    "-o", string.format("-c port=%d -c unix_socket_directories=%s", port, sock or "''"), "start")
end

-- start with a free port, trying others if the one picked was taken in the meantime
local function start_server(dir, data, port)
  local tries = port and 1 or 5
  local last
  for _ = 1, tries do
    local p = port or net.free_port("127.0.0.1")
    local ok, out = pg_ctl_start(dir, data, p)
    if ok then
      -- so that a plain `pg_ctl start` (a restart by the twin) comes back on the same port
      append_conf(data, {{"port", p}, {"unix_socket_directories", socket_dir(dir, p) or ""}})
      return p
    end
    last = out .. (fs.read(dir .. "/postgres.log", {missing_ok = true}) or ""):sub(-2000)
    if not last:find("already in use", 1, true) and not last:find("could not bind", 1, true) then break end
  end
  raise("PostgreSQL did not start in " .. dir .. ": " .. (last or ""):gsub("%s+$", ""), {log = dir .. "/postgres.log"})
end

local function make_handle(fields)
  local h = fields
  local stopped = false
  --- handle:stop(): fast shutdown; idempotent
  function h.stop()
    if stopped then return end
    stopped = true
    local ok, out = pg_run(h.dir, "pg_ctl", "-D", h.data, "-m", "fast", "-w", "-t", "60", "stop")
    if not ok and fs.exists(h.data .. "/postmaster.pid") then
      raise("pg_ctl stop failed: " .. out:gsub("%s+$", ""))
    end
  end
  --- handle:connect_params([extra]) -> a table for opsh.pg.connect
  function h.connect_params(extra)
    local p = {host = h.host, port = h.port, user = h.user, password = h.password, dbname = h.dbname}
    if h.tls then
      p.sslmode, p.sslrootcert = "verify-full", h.tls.ca
    elseif socket_dir(h.dir, h.port) then
      p.host = socket_dir(h.dir, h.port)     -- no TLS without certificates: the local socket, not plain TCP
    else
      p.sslmode = "disable"
    end
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end
  return h
end

local function read_pid(data)
  local text = fs.read(data .. "/postmaster.pid", {missing_ok = true})
  return text and tonumber(text:match("^(%d+)"))
end

local function with_conn(h, dbname, fn)
  local pg = require("opsh.pg")
  local conn <close> = pg.connect(h.connect_params({dbname = dbname}))
  return fn(conn)
end

--- start{dir=, port=nil, user="opsh", password=nil, dbname="opsh", tls={cert=, key=, ca=},
---   wal_archive=false, seed_sql=nil, settings={{name, value}}} -> handle
-- handle: {host="127.0.0.1", port, user, password (opsh.secret), dbname, dir, data, pid, log,
--   archive_dir, tls, stop(), connect_params()}
function M.start(opts)
  if type(opts) ~= "table" or type(opts.dir) ~= "string" then
    error("bad argument #1 to 'start' (table with dir expected)", 2)
  end
  local dir = fs.absolute(opts.dir)
  local data = dir .. "/data"
  local user = opts.user or "opsh"
  local dbname = opts.dbname or "opsh"
  local password = opts.password and core.reveal(opts.password) or random_hex(18)
  if fs.exists(data .. "/PG_VERSION") then raise("a data directory already exists in " .. dir) end
  make_dir(dir)
  local pwfile = dir .. "/.initdb-password"
  fs.write(pwfile, password .. "\n", {mode = tonumber("600", 8)})
  give(pwfile)
  local ok, out = pg_run(dir, "initdb", "-D", data, "-U", user, "--pwfile=" .. pwfile, "--auth=scram-sha-256",
    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
  fs.remove(pwfile)
  if not ok then raise("initdb failed: " .. out:gsub("%s+$", ""), {output = out}) end

  local settings = {
    {"listen_addresses", "127.0.0.1"},
    {"max_connections", opts.max_connections or 200},
    {"shared_buffers", "32MB"},
    {"fsync", "off"}, {"full_page_writes", "off"}, {"synchronous_commit", "off"},
    {"wal_level", "replica"}, {"max_wal_senders", 10}, {"hot_standby", "on"},
    {"logging_collector", "off"}, {"log_line_prefix", "%m [%p] "},
  }
  local archive_dir
  if opts.wal_archive then
    archive_dir = dir .. "/wal_archive"
    make_dir(archive_dir)
    settings[#settings + 1] = {"archive_mode", "on"}
    settings[#settings + 1] = {"archive_command", "test ! -f " .. archive_dir .. "/%f && cp %p " .. archive_dir .. "/%f"}
  end
  local tls
  if opts.tls then
    if type(opts.tls.cert) ~= "string" or type(opts.tls.key) ~= "string" then
      error("bad argument #1 to 'start' (tls needs cert and key)", 2)
    end
    fs.write(data .. "/server.crt", fs.read(opts.tls.cert))
    fs.write(data .. "/server.key", fs.read(opts.tls.key), {mode = tonumber("600", 8)})
    settings[#settings + 1] = {"ssl", "on"}
    settings[#settings + 1] = {"ssl_cert_file", "server.crt"}
    settings[#settings + 1] = {"ssl_key_file", "server.key"}
    if opts.tls.ca then
      fs.write(data .. "/root.crt", fs.read(opts.tls.ca))
      settings[#settings + 1] = {"ssl_ca_file", "root.crt"}
    end
    tls = {cert = opts.tls.cert, key = opts.tls.key, ca = opts.tls.ca}
  end
  for _, kv in ipairs(opts.settings or {}) do settings[#settings + 1] = kv end
  append_conf(data, settings)
  fs.write(data .. "/pg_hba.conf", table.concat({
    "# written by opsh.twin.postgres: passwords (scram) over loopback only",
    "local all all scram-sha-256",
    "host all all 127.0.0.1/32 scram-sha-256",
    "host replication all 127.0.0.1/32 scram-sha-256",
  }, "\n") .. "\n")
  give(dir)

  local port = start_server(dir, data, opts.port)
  local h = make_handle({
    host = "127.0.0.1", port = port, user = user, password = core.secret(password), dbname = dbname,
    dir = dir, data = data, log = dir .. "/postgres.log", pid = read_pid(data),
    archive_dir = archive_dir, tls = tls,
  })
  local ok2, err = pcall(function()
    if dbname ~= "postgres" then
      with_conn(h, "postgres", function(conn)
        conn:exec("CREATE DATABASE " .. conn:escape_identifier(dbname))
      end)
    end
    if opts.seed_sql then
      with_conn(h, dbname, function(conn) conn:exec(opts.seed_sql) end)
    end
  end)
  if not ok2 then
    h.stop()
    error(err, 0)
  end
  return h
end

-- pg_basebackup of server p into data (extra arguments after); the password reaches pg_basebackup
-- (and a replica's walreceiver) through a passfile in dir, never argv. -> the passfile's path
--- write_passfile(dir, server) -> the path of dir/.pgpass holding server's {host, port, user, password}
-- (a replica's walreceiver reads it on every reconnection: rewrite it when the password changes)
function M.write_passfile(dir, p)
  local passfile = dir .. "/.pgpass"
  fs.write(passfile, string.format("%s:%d:*:%s:%s\n", p.host, p.port, p.user, core.reveal(p.password)),
    {mode = tonumber("600", 8)})
  give(passfile)
  return passfile
end

local function basebackup(p, dir, data, name, ...)
  local passfile = M.write_passfile(dir, p)
  local conninfo = string.format("host=%s port=%d user=%s passfile=%s application_name=%s",
    p.host, p.port, p.user, passfile, name)
  local ok, out = pg_run(dir, "pg_basebackup", "-d", conninfo, "-D", data, "-X", "stream", "-c", "fast",
    "--no-sync", ...)
  if not ok then raise("pg_basebackup failed: " .. out:gsub("%s+$", ""), {output = out}) end
  return passfile
end

--- start_replica{primary=handle, dir=, port=nil} -> handle of a streaming, read-only replica
function M.start_replica(opts)
  if type(opts) ~= "table" or type(opts.primary) ~= "table" or type(opts.dir) ~= "string" then
    error("bad argument #1 to 'start_replica' (table with primary and dir expected)", 2)
  end
  local p = opts.primary
  local dir = fs.absolute(opts.dir)
  local data = dir .. "/data"
  make_dir(dir)
  basebackup(p, dir, data, opts.name or "opsh_replica", "-R")
  local settings = {}
  local archive_dir
  if p.archive_dir then
    archive_dir = dir .. "/wal_archive"
    make_dir(archive_dir)
    settings[#settings + 1] = {"archive_command", "test ! -f " .. archive_dir .. "/%f && cp %p " .. archive_dir .. "/%f"}
  end
  append_conf(data, settings)
  give(dir)
  local port = start_server(dir, data, opts.port)
  return make_handle({
    host = "127.0.0.1", port = port, user = p.user, password = p.password, dbname = p.dbname,
    dir = dir, data = data, log = dir .. "/postgres.log", pid = read_pid(data),
    archive_dir = archive_dir, tls = p.tls, replica_of = p,
  })
end

--- base_backup{server=handle, dir=} -> {data = the backup's data directory, dir}: a plain pg_basebackup
-- (its WAL streamed in), the base a restore starts from; the server's archive holds the WAL after it
function M.base_backup(opts)
  if type(opts) ~= "table" or type(opts.server) ~= "table" or type(opts.dir) ~= "string" then
    error("bad argument #1 to 'base_backup' (table with server and dir expected)", 2)
  end
  local dir = fs.absolute(opts.dir)
  make_dir(dir)
  local data = dir .. "/data"
  local passfile = basebackup(opts.server, dir, data, "opsh_base_backup")
  fs.remove(passfile)
  return {dir = dir, data = data}
end

--- restore{dir=, backup=base_backup's data dir | from=handle (a fresh base backup of it),
---   archive_dir=, target_time=nil|"<timestamptz>", immediate=false, user=, password=, dbname=, tls=}
--- -> handle of a new read-write server: the backup copied, the archive's WAL replayed to target_time
--- (recovery_target_action promote), to the backup's consistent point when immediate, else to the
--- archive's end; user's password set to password (whatever it was at that time)
function M.restore(opts)
  if type(opts) ~= "table" or type(opts.dir) ~= "string" or not (opts.backup or opts.from) then
    error("bad argument #1 to 'restore' (table with dir and backup or from expected)", 2)
  end
  local dir = fs.absolute(opts.dir)
  local data = dir .. "/data"
  if fs.exists(data) then raise("a data directory already exists in " .. dir) end
  make_dir(dir)
  if opts.backup then
    must({"cp", "-a", opts.backup, data}, "copying the base backup")
  else
    fs.remove(basebackup(opts.from, dir, data, "opsh_restore"))
  end
  for _, stale in ipairs({"standby.signal", "postmaster.pid", "postmaster.opts"}) do
    if fs.exists(data .. "/" .. stale) then fs.remove(data .. "/" .. stale) end
  end
  -- its own archive: WAL of the new timeline must not reach the source's archive
  local archive_dir = dir .. "/wal_archive"
  make_dir(archive_dir)
  -- no hot standby: a parameter the source raised since the backup (max_connections) would pause the replay
  local settings = {{"primary_conninfo", ""}, {"hot_standby", "off"},
    {"archive_command", "test ! -f " .. archive_dir .. "/%f && cp %p " .. archive_dir .. "/%f"}}
  if opts.archive_dir then
    settings[#settings + 1] = {"restore_command", "cp " .. opts.archive_dir .. "/%f %p"}
  end
  if opts.immediate then
    settings[#settings + 1] = {"recovery_target", "immediate"}
  elseif opts.target_time then
    settings[#settings + 1] = {"recovery_target_time", opts.target_time}
  end
  if opts.immediate or opts.target_time then
    settings[#settings + 1] = {"recovery_target_action", "promote"}
  end
  append_conf(data, settings)
  fs.write(data .. "/recovery.signal", "")
  -- the role's password of that time may be an older one: loopback trust until it is set to opts.password
  local hba = fs.read(data .. "/pg_hba.conf")
  fs.write(data .. "/pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n" .. hba)
  give(dir)
  local port = start_server(dir, data, opts.port)
  local h = make_handle({
    host = "127.0.0.1", port = port, user = opts.user, password = opts.password, dbname = opts.dbname,
    dir = dir, data = data, log = dir .. "/postgres.log", pid = read_pid(data), archive_dir = archive_dir,
    tls = opts.tls,
  })
  -- pg_ctl -w returns once connections are accepted, which may be before the promotion
  local ok, err = pcall(function()
    local deadline = core.hrtime() + 60
    while true do
      -- refused ("not accepting connections") until the replay ends: hot_standby is off
      local up, recovering = pcall(with_conn, h, h.dbname, function(conn)
        return conn:query("SELECT pg_is_in_recovery() AS r")[1].r
      end)
      if up and not recovering then break end
      if not fs.exists(data .. "/postmaster.pid") then
        raise("the restored server stopped: " .. (fs.read(h.log, {missing_ok = true}) or ""):sub(-1500), {log = h.log})
      end
      if core.hrtime() > deadline then raise("the restored server did not leave recovery in 60 s", {log = h.log}) end
      core.sleep(0.1)
    end
    fs.write(data .. "/pg_hba.conf", hba)
    give(data .. "/pg_hba.conf")
    with_conn(h, h.dbname, function(conn)
      if opts.password then
        conn:exec(conn:query("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text) AS s", h.user,
          core.reveal(opts.password))[1].s)
      end
      conn:query("SELECT pg_reload_conf()")
    end)
  end)
  if not ok then
    pcall(h.stop)
    error(err, 0)
  end
  return h
end

--- restart(rec) -> the new postmaster pid: pg_ctl restart (fast) of the server whose {dir, data, log}
-- rec gives, on the same port (postmaster.opts keeps the options it was started with)
function M.restart(rec)
  local ok, out = pg_run(rec.dir, "pg_ctl", "-D", rec.data, "-l", rec.log, "-m", "fast", "-w", "-t", "60", "restart")
  if not ok then raise("pg_ctl restart failed: " .. out:gsub("%s+$", ""), {log = rec.log}) end
  return read_pid(rec.data)
end

return M
