-- twin components "postgres" and "replica": PostgreSQL 15 standing for the Flexible Server
-- (psql-legal-twin) and its geo-replica in the secondary region (a streaming replica made with
-- pg_basebackup -R, so a failover is a real pg_promote). TLS with the twin's certificate, WAL
-- archiving on, legaldb seeded.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local launcher = require("opsh.twin.postgres")
local seed = require("opsh.twin.seed")

-- Where the servers' directories go. As root the servers run as the `postgres` system user, which
-- cannot enter a private tree such as /root/.local/state: their directories then live under
-- /var/tmp/opsh-twin-<hash of the twin dir> instead (recorded in the state, removed by `down`).
local function base(dir)
  local f = io.open("/proc/self/status")
  local uid = f and f:read("a"):match("\nUid:%s+(%d+)")
  if f then f:close() end
  if uid ~= "0" then return dir end
  return "/var/tmp/opsh-twin-" .. crypto.sha256_hex(dir):sub(1, 16)
end

local function prepare(dir)
  local b = base(dir)
  if b ~= dir then require("opsh.fs").mkdir(b, {parents = true, mode = tonumber("711", 8)}) end
  return b
end

local function record(h, role)
  return {pid = h.pid, program = "postgres", stop_signal = "INT", host = h.host, port = h.port, user = h.user,
    password = core.reveal(h.password), dbname = h.dbname, dir = h.dir, data = h.data, log = h.log,
    archive_dir = h.archive_dir, role = role}
end

local function check(tw, rec)
  local pg = require("opsh.pg")
  local ok, res = pcall(function()
    local conn <close> = pg.connect({host = rec.host, port = rec.port, user = rec.user, dbname = rec.dbname,
      password = core.secret(rec.password), sslmode = "verify-full", sslrootcert = tw.ca.ca, connect_timeout = 5})
    return conn:query("SELECT pg_is_in_recovery() AS replica")[1].replica
  end)
  if not ok then return false, tostring(res) end
  return true, string.format("127.0.0.1:%d %s", rec.port, res and "read-only replica" or "read-write")
end

local primary = {name = "postgres", program = "postgres", stop_signal = "INT", phase = 3}

function primary.pidfile(dir) return base(dir) .. "/postgres/data/postmaster.pid" end
-- the /var/tmp base goes too once the servers' directories are gone (down leaves nothing there)
local function dirs(dir, name)
  local b = base(dir)
  return b == dir and {b .. "/" .. name} or {b .. "/" .. name, b}
end

-- restored servers (opsh.twin.arm.postgres) live in <base>/restores/<server>
function primary.data_dirs(dir)
  local out = dirs(dir, "postgres")
  table.insert(out, 2, base(dir) .. "/restores")
  return out
end

--- restores_dir(rec) -> where the restored servers of the twin whose primary is rec go
function primary.restores_dir(rec) return (rec.dir:gsub("/[^/]+$", "")) .. "/restores" end

function primary.start(tw)
  local h = launcher.start({dir = prepare(tw.dir) .. "/postgres", user = seed.admin_user, dbname = seed.database,
    password = crypto.random_password(24, {url = true}), wal_archive = true, seed_sql = seed.sql,
    tls = {cert = tw.ca.cert, key = tw.ca.key, ca = tw.ca.ca}})
  -- the base a point-in-time restore starts from (the WAL after it is archived in archive_dir), and
  -- the time from which the archive can replay (a later time: the backup ended before it)
  local ok, res = pcall(function()
    local b = launcher.base_backup({server = h, dir = h.dir .. "/base_backup"})
    local pg = require("opsh.pg")
    local conn <close> = pg.connect(h.connect_params())
    b.time = conn:query("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t")[1].t
    return b
  end)
  if not ok then
    h.stop()
    error(res, 0)
  end
  local rec = record(h, "primary")
  rec.base_backup = {data = res.data, time = res.time}
  return rec
end

primary.check = check

function primary.shell(tw, rec, out)
  out.PGHOST, out.PGPORT, out.PGUSER = rec.host, tostring(rec.port), rec.user
  out.PGPASSWORD, out.PGDATABASE = rec.password, rec.dbname
  out.PGSSLMODE, out.PGSSLROOTCERT = "verify-full", tw.ca.ca
end

function primary.environment(tw, rec, env)
  local p = env.postgres
  p.database, p.admin_user, p.host, p.port = rec.dbname, rec.user, rec.host, rec.port
  p.sslmode, p.sslrootcert = "verify-full", tw.ca.ca
  env.twin.postgres_password = core.secret(rec.password)
  env.twin.secrets[p.password_secret] = env.twin.postgres_password
end

local replica = {name = "replica", program = "postgres", stop_signal = "INT", phase = 4, needs = {"postgres"}}

function replica.pidfile(dir) return base(dir) .. "/replica/data/postmaster.pid" end
function replica.data_dirs(dir) return dirs(dir, "replica") end

function replica.start(tw)
  local p = tw.state.components.postgres
  local h = launcher.start_replica({dir = prepare(tw.dir) .. "/replica", name = "psql_legal_twin_replica",
    primary = {host = p.host, port = p.port, user = p.user, password = core.secret(p.password),
      dbname = p.dbname, archive_dir = p.archive_dir, tls = {cert = tw.ca.cert, key = tw.ca.key, ca = tw.ca.ca}}})
  return record(h, "replica")
end

replica.check = check

function replica.environment(tw, rec, env)
  env.twin.replica = {host = rec.host, port = rec.port}
  env.postgres.replica_host, env.postgres.replica_port = rec.host, rec.port
end

-- the replica, for `psql -h "$OPSH_PG_REPLICA_HOST" -p "$OPSH_PG_REPLICA_PORT"` (the rest as the primary's)
function replica.shell(tw, rec, out)
  out.OPSH_PG_REPLICA_HOST, out.OPSH_PG_REPLICA_PORT = rec.host, tostring(rec.port)
end

-- two components in one module: a list
return {primary, replica, primary = primary, replica = replica}
