-- Helpers of rotate-db-password: a connection with given credentials (the verification and the
-- alternating roles), a role's password set from an opsh.secret (never in SQL text, a log line or an
-- audit record), and the consumers' rollout.
local opsh = require("opsh")
local pg = require("opsh.pg")
local connections = require("opsh.connections")

local M = {}

--- connect(env, user, password [, database]) -> a new opsh.pg connection (not the run's pool)
function M.connect(envt, user, password, database)
  local p = envt.postgres
  return pg.connect{host = p.host or (p.server .. ".postgres.database.azure.com"), port = p.port or 5432,
    user = user, password = password, dbname = database or p.database or "postgres",
    sslmode = p.sslmode or "verify-full", sslrootcert = p.sslrootcert, connect_timeout = 10,
    application_name = "opsh-rotate"}
end

--- admin(env) -> a connection as the admin user with the environment's current password
function M.admin(envt)
  return M.connect(envt, envt.postgres.admin_user, connections.secret(envt, envt.postgres.password_secret))
end

--- verify(env, user, password) -> true, or raises pg_connect
function M.verify(envt, user, password)
  local c <close> = M.connect(envt, user, password)
  c:query("SELECT 1")
  return true
end

local function ident(name)
  if not tostring(name):match("^[%a_][%w_]*$") then opsh.raise("usage", "not a plain role name: " .. tostring(name)) end
  return '"' .. name .. '"'
end
M.ident = ident

--- role_exists(conn, name) -> boolean
function M.role_exists(conn, name)
  return #conn:query("SELECT 1 FROM pg_roles WHERE rolname = $1", name) > 0
end

-- ALTER ROLE ... PASSWORD takes a literal only: the literal is made inside the server by a temporary
-- function whose argument is the opsh.secret parameter, so the SQL text (dry-run records, audit,
-- pg_stat_activity) never holds it and opsh scrubs it from any error the call raises.
local SET_PASSWORD = [[CREATE OR REPLACE FUNCTION pg_temp.opsh_set_password(r name, p text) RETURNS void
LANGUAGE plpgsql AS $f$ BEGIN
  IF p IS NULL THEN EXECUTE format('ALTER ROLE %I PASSWORD NULL', r);
  ELSE EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', r, p); END IF;
END $f$]]

--- set_password(conn, role, secret|nil) : nil retires the role's password (it can no longer log in)
function M.set_password(conn, role, secret)
  ident(role)
  if conn:exec(SET_PASSWORD).dry_run then return end   -- recorded; the call below would find no function
  conn:query("SELECT pg_temp.opsh_set_password($1, $2)", role, secret)
end

--- ensure_login_role(conn, role, member_of) -> true when it created it: LOGIN, no password yet, and a
-- member of `member_of` (the group role holding the grants)
function M.ensure_login_role(conn, role, member_of)
  if M.role_exists(conn, role) then
    if #conn:query("SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u "
        .. "ON u.oid = m.member WHERE g.rolname = $1 AND u.rolname = $2", member_of, role) == 0 then
      conn:exec(string.format("GRANT %s TO %s", ident(member_of), ident(role)))
    end
    return false
  end
  conn:exec(string.format("CREATE ROLE %s LOGIN INHERIT IN ROLE %s", ident(role), ident(member_of)))
  return true
end

--- restart(k8s_client, deployments) and wait(k8s_client, deployments, timeout): the consumers' rollout
function M.restart(k, deployments)
  for _, d in ipairs(deployments) do k:rollout_restart(d) end
end

function M.wait(k, deployments, timeout)
  for _, d in ipairs(deployments) do k:rollout_status(d, {timeout = timeout}) end
end

return M
