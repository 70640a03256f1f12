-- opsh.azure.postgres: Azure Database for PostgreSQL flexible servers (Microsoft.DBforPostgreSQL) —
-- what the runbook does with `az postgres flexible-server`: show, list, SKU, storage (grown only:
-- a decrease is refused before anything is sent), the admin password (an opsh.secret, never on a
-- command line), server parameters, backups, point-in-time and geo restore, replicas and their
-- promotion. The server is the environment's (`postgres.server`, `postgres.resource_group`) unless given.
local core = require("opsh._core")
local R = require("opsh.azure.resource")

local M = {}

M.API = "2024-08-01"
local TYPE = "Microsoft.DBforPostgreSQL/flexibleServers"
local TIERS = {Burstable = true, GeneralPurpose = true, MemoryOptimized = true}

local function server_of(opts, fname, default_key)
  local envt, arm = R.ctx(opts)
  local pg = envt.postgres or {}
  local name = R.pick(opts, "server", pg[default_key or "server"], fname, "the server")
  local rg = R.pick(opts, "resource_group", pg.resource_group or envt.resource_group, fname, "the resource group")
  return arm, arm:id(rg, TYPE, name), name, envt
end

local SERVER = R.set("server", "resource_group")
local function with(...) local s = R.set(...) s.server, s.resource_group = true, true return s end

local function patch(arm, id, body, opts, label)
  return arm:patch(id, {api_version = M.API, body = body, wait = opts.wait, label = label})
end

--- get{server =} -> the server (sku, properties.state, storage, version, replica, backup, ...)
function M.get(opts)
  opts = R.args(opts, "postgres.get", SERVER)
  local arm, id = server_of(opts, "postgres.get")
  return arm:get(id, {api_version = M.API})
end

--- list{resource_group =} -> the servers of the resource group, or of the subscription
function M.list(opts) return R.list(opts, "postgres.list", TYPE, M.API) end

--- update_sku{sku = "Standard_D8ds_v5", tier = "GeneralPurpose"} -> the server once resized
function M.update_sku(opts)
  opts = R.args(opts, "postgres.update_sku", with("sku", "tier", "wait"))
  local sku = R.pick(opts, "sku", nil, "postgres.update_sku", "sku (the SKU name)")
  local tier = R.pick(opts, "tier", nil, "postgres.update_sku", "tier")
  if not TIERS[tier] then R.usage("postgres.update_sku", "tier must be Burstable, GeneralPurpose or MemoryOptimized") end
  local arm, id, name = server_of(opts, "postgres.update_sku")
  return patch(arm, id, {sku = {name = sku, tier = tier}}, opts, "postgres sku " .. name)
end

--- grow_storage{size_gb =} -> the server with its storage at size_gb. Flexible server storage cannot
-- shrink: a size below the current one is refused before anything is sent; the same size sends nothing.
function M.grow_storage(opts)
  opts = R.args(opts, "postgres.grow_storage", with("size_gb", "wait"))
  local size = R.integer(opts, "size_gb", "postgres.grow_storage", 1)
  if not size then R.usage("postgres.grow_storage", "size_gb is required") end
  local arm, id, name = server_of(opts, "postgres.grow_storage")
  local current = arm:get(id, {api_version = M.API})
  local have = current.properties and current.properties.storage and current.properties.storage.storageSizeGB
  if type(have) == "number" then
    if size < have then
      error(core.error("usage", string.format("azure.postgres.grow_storage: %s has %d GB; storage cannot be "
        .. "decreased (asked for %d GB): nothing was sent", name, have, size),
        {current_gb = have, requested_gb = size}), 0)
    end
    if size == have then return current end
  end
  return patch(arm, id, {properties = {storage = {storageSizeGB = size}}}, opts, "postgres storage " .. name)
end

--- set_admin_password{password = opsh.secret} -> the server. The password goes only into the
-- request body (scrubbed from errors, logs and the dry-run record); a plain string is refused.
function M.set_admin_password(opts)
  opts = R.args(opts, "postgres.set_admin_password", with("password", "wait"))
  if not core.is_secret(opts.password) then
    R.usage("postgres.set_admin_password", "password must be an opsh.secret (ctx.secret(name), "
      .. "crypto.random_password()), not " .. type(opts.password))
  end
  local arm, id, name = server_of(opts, "postgres.set_admin_password")
  return patch(arm, id, {properties = {administratorLoginPassword = opts.password}}, opts,
    "postgres admin password " .. name)
end

--- parameter{name = "max_connections"} -> the configuration (properties.value, defaultValue,
-- isConfigPendingRestart, ...)
function M.parameter(opts)
  opts = R.args(opts, "postgres.parameter", with("name"))
  local pname = R.pick(opts, "name", nil, "postgres.parameter", "the parameter name")
  local arm, id = server_of(opts, "postgres.parameter")
  return arm:get(id .. "/configurations/" .. pname, {api_version = M.API})
end

--- set_parameter{name =, value =} -> the configuration once set (source user-override). A static
-- parameter then says isConfigPendingRestart.
function M.set_parameter(opts)
  opts = R.args(opts, "postgres.set_parameter", with("name", "value", "wait"))
  local pname = R.pick(opts, "name", nil, "postgres.set_parameter", "the parameter name")
  if opts.value == nil then R.usage("postgres.set_parameter", "value is required") end
  local arm, id, name = server_of(opts, "postgres.set_parameter")
  return arm:patch(id .. "/configurations/" .. pname, {api_version = M.API, wait = opts.wait,
    body = {properties = {value = tostring(opts.value), source = "user-override"}},
    label = string.format("postgres %s %s", name, pname)})
end

--- backups{} -> the server's backups (name, properties.backupType, completedTime, source)
function M.backups(opts)
  opts = R.args(opts, "postgres.backups", SERVER)
  local arm, id = server_of(opts, "postgres.backups")
  return arm:all(id .. "/backups", {api_version = M.API})
end

--- backup{name = "ondemand-<UTC time>"} -> the on-demand backup once taken
function M.backup(opts)
  opts = R.args(opts, "postgres.backup", with("name", "wait"))
  local bname = opts.name or ("ondemand-" .. os.date("!%Y%m%dT%H%M%S"))
  if type(bname) ~= "string" or not bname:match("^[%w%-._]+$") then
    R.usage("postgres.backup", "name may hold letters, digits, '-', '_' and '.' only")
  end
  local arm, id, name = server_of(opts, "postgres.backup")
  return arm:put(id .. "/backups/" .. bname, {api_version = M.API, wait = opts.wait,
    label = string.format("postgres backup %s %s", name, bname)})
end

local function iso_time(t, fname)
  if type(t) == "number" then return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end
  if type(t) == "string" and t:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d") then return t end
  R.usage(fname, "time must be epoch seconds or an ISO-8601 UTC time (2026-12-05T10:00:00Z)")
end

local function restore(opts, fname, mode)
  local target = R.pick(opts, "target", nil, fname, "target (the new server's name)")
  local arm, id, name = server_of(opts, fname)
  local source = arm:get(id, {api_version = M.API})
  local envt = R.ctx(opts)
  local rg = opts.target_resource_group or (envt.postgres and envt.postgres.resource_group) or envt.resource_group
  local props = {createMode = mode, sourceServerResourceId = source.id or id}
  if opts.time ~= nil or mode == "PointInTimeRestore" then
    props.pointInTimeUTC = iso_time(opts.time == nil and os.time() or opts.time, fname)
  end
  local body = {location = opts.location or source.location, properties = props}
  return arm:put(arm:id(rg, TYPE, target), {api_version = M.API, body = body, wait = opts.wait,
    label = string.format("%s %s -> %s", fname, name, target)})
end

--- restore{target =, time = epoch or ISO-8601 (default now)} -> the new server restored to that
-- point in time from the source server (az postgres flexible-server restore)
function M.restore(opts)
  opts = R.args(opts, "postgres.restore", with("target", "time", "location", "target_resource_group", "wait"))
  return restore(opts, "postgres.restore", "PointInTimeRestore")
end

--- geo_restore{target =, location =} -> a new server in another region from the geo-redundant backup
function M.geo_restore(opts)
  opts = R.args(opts, "postgres.geo_restore", with("target", "time", "location", "target_resource_group", "wait"))
  R.pick(opts, "location", nil, "postgres.geo_restore", "location (the region to restore into)")
  return restore(opts, "postgres.geo_restore", "GeoRestore")
end

--- replicas{} -> the read replicas of the (primary) server
function M.replicas(opts)
  opts = R.args(opts, "postgres.replicas", SERVER)
  local arm, id = server_of(opts, "postgres.replicas")
  return arm:all(id .. "/replicas", {api_version = M.API})
end

--- promote{server = the environment's postgres.replica, mode = "standalone" | "switchover",
-- option = "planned" | "forced"} -> the promoted server. Without resource_group, the replica's ID is
-- the one the primary (postgres.server) lists, whatever its resource group.
function M.promote(opts)
  opts = R.args(opts, "postgres.promote", with("mode", "option", "wait"))
  local mode, option = opts.mode or "standalone", opts.option or "planned"
  if mode ~= "standalone" and mode ~= "switchover" then R.usage("postgres.promote", "mode must be standalone or switchover") end
  if option ~= "planned" and option ~= "forced" then R.usage("postgres.promote", "option must be planned or forced") end
  local arm, id, name = server_of(opts, "postgres.promote", "replica")
  if opts.resource_group == nil then
    -- a geo-replica lives in its own region's resource group: its ID as the primary lists it
    local envt = R.ctx(opts)
    local primary = envt.postgres and envt.postgres.server
    if primary and primary ~= name then
      local _, pid = server_of({env = opts.env, server = primary}, "postgres.promote")
      for _, r in ipairs(arm:all(pid .. "/replicas", {api_version = M.API})) do
        if r.name == name and type(r.id) == "string" then id = r.id end
      end
    end
  end
  return patch(arm, id, {properties = {replica = {role = mode == "standalone" and "None" or "Primary",
    promoteMode = mode, promoteOption = option}}}, opts, "postgres promote " .. name)
end

return M
