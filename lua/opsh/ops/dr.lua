-- Helpers of dr-failover and dr-drill: how far the replica is behind (the RPO a promotion would give),
-- the connection string repointed at the promoted server, the workloads copied to the secondary
-- cluster, and the runbook's RPO/RTO targets.
local opsh = require("opsh")
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local rotate = require("opsh.ops.rotate")
local backup = require("opsh.ops.backup")

local M = {}

-- the runbook's "Recovery Point Objectives (RPO) / Recovery Time Objectives (RTO)" table, in seconds
M.TARGETS = {
  {component = "Application", rpo = 0, rto = 120, method = "Blue-green deployment"},
  {component = "Database", rpo = 300, rto = 1200, method = "Point-in-time restore"},
  {component = "Blob Storage", rpo = 900, rto = 1800, method = "GRS geo-replication"},
  {component = "Infrastructure", rpo = 0, rto = 1800, method = "Terraform re-apply"},
  {component = "Full DR Failover", rpo = 3600, rto = 7200, method = "Secondary region promotion"},
}

--- target(component) -> the TARGETS row of that component
function M.target(component)
  for _, t in ipairs(M.TARGETS) do if t.component == component then return t end end
end

local function message_of(err) return core.is_error(err) and err.message or tostring(err) end

--- replication(source_env, target_env) -> {primary_reachable, primary_error, in_recovery, behind_bytes,
-- unreplayed_bytes, lag_seconds, exact}: what promoting the target server now would lose. A promotion
-- replays all the WAL the replica has received, so what is lost is the WAL it has not received: with the
-- primary reachable, its bytes (0: nothing is lost, exact), and otherwise (or when they are not 0) the time
-- since the replica last heard from the primary, else since its last replayed transaction — an estimate
-- of how many seconds of commits are at risk. lag_seconds is nil when neither is known.
function M.replication(src, dst)
  local r = {}
  local primary_lsn
  local ok, err = pcall(function()
    local c <close> = rotate.admin(src)
    local row = c:query("SELECT pg_current_wal_lsn()::text AS lsn, pg_is_in_recovery() AS recovery")[1]
    if not row.recovery then primary_lsn = row.lsn end
  end)
  r.primary_reachable, r.primary_error = ok, not ok and message_of(err) or nil
  local c <close> = rotate.admin(dst)
  local row = c:query([[SELECT pg_is_in_recovery() AS recovery,
      COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS received,
      pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS unreplayed,
      (SELECT extract(epoch FROM now() - last_msg_receipt_time)::float8 FROM pg_stat_wal_receiver) AS since_contact,
      extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_replay]])[1]
  r.in_recovery = row.recovery
  if not row.recovery then return r end
  local function known(v) if v ~= nil and v ~= json.null then return v end end
  r.unreplayed_bytes = known(row.unreplayed)
  local estimate = known(row.since_contact) or known(row.since_replay)
  if primary_lsn and known(row.received) then
    r.behind_bytes = c:query("SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint AS b", primary_lsn, row.received)[1].b
    if r.behind_bytes <= 0 then
      r.behind_bytes, r.lag_seconds, r.exact = 0, 0, true
      return r
    end
  end
  r.lag_seconds, r.exact = estimate, false
  return r
end

--- writable(env [, wait_seconds]) -> true once the environment's server takes writes (not in recovery,
-- not read-only), else raises after wait_seconds (default 60)
function M.writable(envt, wait_seconds)
  local deadline = core.hrtime() + (wait_seconds or 60)
  local last
  while true do
    local ok, res = pcall(function()
      local c <close> = rotate.admin(envt)
      local row = c:query("SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS ro")[1]
      return not row.recovery and row.ro == "off", row
    end)
    if ok and res then return true end
    last = ok and "it is still read-only" or message_of(res)
    if core.hrtime() > deadline then
      opsh.raise("timeout", string.format("%s does not take writes after %d s: %s", envt.postgres.server,
        wait_seconds or 60, last))
    end
    opsh.sleep(1)
  end
end

--- host_port(env) -> host, port of the environment's postgres.server as its clients reach it
function M.host_port(envt)
  local p = envt.postgres
  return p.host or (p.server .. ".postgres.database.azure.com"), p.port or 5432
end

--- repointed_url(current, env) -> opsh.secret: the postgresql:// URL `current` (an opsh.secret or nil)
-- with the host and port of env's server, its user, password, database and options kept; without
-- current, a URL for env's admin user. Raises a usage error when current is not such a URL.
function M.repointed_url(current, envt)
  local host, port = M.host_port(envt)
  local p = envt.postgres
  if current == nil then
    return core.secret(string.format("postgresql://%s@%s:%d/%s?sslmode=%s", p.admin_user or "postgres", host, port,
      p.database or "postgres", p.sslmode or "verify-full"))
  end
  local text = core.is_secret(current) and core.reveal(current) or tostring(current)
  local scheme, rest = text:match("^(postgres[%a]*://)(.*)$")
  if not scheme then
    opsh.raise("usage", "the connection string in Key Vault is not a postgresql:// URL; it cannot be repointed "
      .. "(pass --url-secret '' to leave it alone)")
  end
  local userinfo = rest:match("^([^@/?]*@)") or ""
  local tail = rest:sub(#userinfo + 1):match("^[^/?]*(.*)$")
  return core.secret(scheme .. userinfo .. host .. ":" .. port .. tail)
end

--- url_host(secret_url) -> "host:port" of a postgresql:// URL (nothing secret), or nil
function M.url_host(url)
  if url == nil then return nil end
  local text = core.is_secret(url) and core.reveal(url) or tostring(url)
  local rest = text:match("^postgres[%a]*://(.*)$")
  if not rest then return nil end
  local userinfo = rest:match("^([^@/?]*@)") or ""
  return rest:sub(#userinfo + 1):match("^([^/?]*)")
end

-- what is copied to the secondary cluster: the workloads and their configuration, not its Services,
-- Ingresses and Secrets (the standby has its own addresses; secrets come from Key Vault)
M.KINDS = {"deployments", "statefulsets", "cronjobs", "configmaps", "horizontalpodautoscalers"}
M.DIGEST = "opsh.dev/failover-digest"
M.URL_VERSION = "opsh.dev/database-url-version"

local COPIED = {Deployment = true, StatefulSet = true, CronJob = true, ConfigMap = true, HorizontalPodAutoscaler = true}

--- workloads(objects, namespace, url_version) -> the objects to apply to the secondary: the kinds of
-- M.KINDS (kube-root-ca.crt and owned objects left out) made restorable, in `namespace`; a pod template
-- carries the connection string's Key Vault version (a new version rolls the pods onto it) and each
-- object the digest of what it holds (an object whose digest is there already is not sent again).
function M.workloads(objects, namespace, url_version)
  local out = {}
  for _, o in ipairs(objects) do
    local m = o.metadata or {}
    local owned = type(m.ownerReferences) == "table" and #m.ownerReferences > 0
    if COPIED[o.kind] and not owned and m.name ~= "kube-root-ca.crt" then
      o._source = nil
      o = backup.restorable(o)
      if type(o.metadata.annotations) == "table" then
        o.metadata.annotations["deployment.kubernetes.io/revision"] = nil
        if next(o.metadata.annotations) == nil then o.metadata.annotations = nil end
      end
      o.metadata.namespace = namespace
      local tpl = (o.kind == "Deployment" or o.kind == "StatefulSet") and type(o.spec) == "table" and o.spec.template
      if tpl and url_version then
        tpl.metadata = tpl.metadata or {}
        tpl.metadata.annotations = tpl.metadata.annotations or {}
        tpl.metadata.annotations[M.URL_VERSION] = url_version
      end
      o.metadata.annotations = o.metadata.annotations or {}
      o.metadata.annotations[M.DIGEST] = nil
      o.metadata.annotations[M.DIGEST] = crypto.sha256_hex(json.encode(o))
      out[#out + 1] = o
    end
  end
  table.sort(out, function(a, b) return a.kind .. "/" .. a.metadata.name < b.kind .. "/" .. b.metadata.name end)
  return out
end

--- duration(seconds) -> "1h 02m", "4m 10s", "12.3 s"
function M.duration(s)
  if s == nil then return "unknown" end
  if s < 60 then return string.format("%.1f s", s) end
  if s < 3600 then return string.format("%dm %02ds", s // 60, math.floor(s % 60)) end
  return string.format("%dh %02dm", s // 3600, math.floor(s % 3600 / 60))
end

return M
