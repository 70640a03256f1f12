-- Helpers of the backup procedures: libpq settings for pg_dump/pg_restore (the password in the child's
-- environment, never argv), the environment's Blob account, a streaming SHA-256 through sha256sum, objects
-- made restorable, and Secrets sealed with a key held in Key Vault.
local opsh = require("opsh")
local proc = require("opsh.proc")
local connections = require("opsh.connections")
local core = require("opsh._core")

local M = {}

--- libpq_env(env, database) -> env_add table for pg_dump / pg_restore / psql
function M.libpq_env(envt, database)
  local p = envt.postgres
  local out = {
    PGHOST = p.host or (p.server .. ".postgres.database.azure.com"),
    PGPORT = tostring(p.port or 5432),
    PGUSER = p.admin_user,
    PGDATABASE = database or p.database or "postgres",
    PGSSLMODE = p.sslmode or "verify-full",
    PGAPPNAME = "opsh",
  }
  if p.sslrootcert then out.PGSSLROOTCERT = p.sslrootcert end
  if p.password_secret then out.PGPASSWORD = connections.secret(envt, p.password_secret) end
  return out
end

--- blob_account(env) -> the environment's storage account (azure.blob when the client has it, else
-- the account key the environment names: the twin's, or the secret `storage-account-key`)
function M.blob_account(envt)
  local azure = require("opsh.azure")
  local ok, acct = pcall(function() return azure.blob and azure.blob(envt) end)
  if ok and acct then return acct end
  local s = envt.storage
  if not (s and s.endpoint) then opsh.raise("config", "environment '" .. tostring(envt.name) .. "' names no storage.endpoint") end
  local key = envt.twin and envt.twin.storage_key or connections.secret(envt, "storage-account-key")
  local opts = {endpoint = s.endpoint, account = s.account, key = key}
  if envt.endpoints and envt.endpoints.ca then opts.ca = envt.endpoints.ca end
  return require("opsh.azure.blob").account(opts)
end

--- ensure_container(account, name) -> true when it created it: a read first, so a run that finds the
-- container sends nothing (and reports no change)
function M.ensure_container(account, name)
  local res = account:request("GET", "/" .. name, {query = {restype = "container"}, missing_ok = true}, 0)
  if res ~= nil then return false end
  return account:create_container(name)
end

--- hasher() -> {write = fn(chunk), finish = fn() -> hex}: SHA-256 of a stream, computed by sha256sum
-- as the bytes pass (nothing is buffered or written to disk)
function M.hasher()
  local p = proc.spawn{argv = {"sha256sum"}, stdin_pipe = true, read = true}
  local h = {}
  function h.write(chunk) if not p.dry_run then p:write(chunk) end end
  function h.finish()
    if p.dry_run then return nil end
    p:close_stdin()
    local r = p:wait{check = true}
    return (r.stdout or ""):match("^(%x+)")
  end
  function h.close() pcall(p.close, p) end
  return h
end

--- pg_tool(name) -> true when the tool is on PATH
function M.have(tool)
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local st = require("opsh.fs").stat(dir .. "/" .. tool)
    if st and st.type ~= "dir" then return true end
  end
  return false
end

local SERVER_SET = {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
  "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}

--- restorable(object) -> the object with what the server sets removed (status, uid, resourceVersion,
-- managedFields, the last-applied annotation, a Service's cluster IPs), so that applying it recreates it
-- elsewhere. Changes the object in place.
function M.restorable(o)
  o.status = nil
  local m = o.metadata or {}
  for _, f in ipairs(SERVER_SET) do m[f] = nil end
  if type(m.annotations) == "table" then
    m.annotations["kubectl.kubernetes.io/last-applied-configuration"] = nil
    if next(m.annotations) == nil then m.annotations = nil end
  end
  if o.kind == "Service" and type(o.spec) == "table" then
    o.spec.clusterIP, o.spec.clusterIPs = nil, nil
  end
  return o
end

-- ---- Secrets sealed with a key from Key Vault ----

M.KEY_CONTENT_TYPE = "application/vnd.opsh.aes256-key+base64"

--- backup_key(vault, name) -> key (opsh.secret, 32 bytes), version, created: the AES-256 key held in
-- the Key Vault secret `name` (base64), created there when missing. In a dry run a missing key is planned,
-- and a throwaway key (never stored) stands in so the rest of the plan is real.
function M.backup_key(vault, name)
  local crypto = require("opsh.crypto")
  local value, info = vault:get(name, {missing = "nil"})
  local created = false
  if not value then
    local set = vault:set(name, crypto.random_password(32), {content_type = M.KEY_CONTENT_TYPE,
      tags = {purpose = "opsh k8s-backup"}})
    if set.dry_run then return opsh.secret(crypto.random_bytes(32)), "(dry run)", true end
    value, info = vault:get(name)
    created = true
  end
  local ok, key = pcall(crypto.base64_decode, value)
  if not ok or #core.reveal(key) ~= 32 then
    opsh.raise("conflict", string.format("Key Vault secret %s does not hold a base64 AES-256 key (32 bytes); "
      .. "name another with --key-secret", name))
  end
  return key, info.version, created
end

--- open_sealed{account =, container =, name =, vault =} -> the plaintext of a sealed backup blob (an
-- opsh.secret): the key is the Key Vault secret and version the blob's metadata names, the blob's name
-- the data it is bound to (a sealed blob renamed or swapped does not open)
function M.open_sealed(o)
  local props = o.account:properties(o.container, o.name)
  if not props then opsh.raise("not_found", string.format("no blob %s/%s", o.container, o.name)) end
  local meta = props.metadata or {}
  if meta.cipher ~= "AES-256-GCM" or not meta.key_secret then
    opsh.raise("usage", string.format("%s/%s is not a sealed backup (no cipher/key_secret metadata)", o.container, o.name))
  end
  local value = o.vault:get(meta.key_secret, {version = meta.key_version})
  return require("opsh.crypto").open(require("opsh.crypto").base64_decode(value),
    o.account:get(o.container, o.name), o.container .. "/" .. o.name)
end

return M
