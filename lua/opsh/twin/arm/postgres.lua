-- opsh.twin.arm.postgres: Microsoft.DBforPostgreSQL flexible servers, their configurations, backups and
-- replicas. Where the twin has the server, the change is real: the admin password is an ALTER ROLE on
-- the twin's PostgreSQL (and the new password is what the twin's secrets give), promoting the replica
-- is pg_promote() on the twin's replica while the old primary is made read-only, a restore (point in
-- time or geo) starts a new PostgreSQL server from the base backup and the WAL archive (docs/twin-azure.md).
local core = require("opsh._core")
local json = require("opsh.json")
local log = require("opsh.log")
local lro = require("opsh.twin.arm.lro")
local platform = require("opsh.twin.platform")
local router = require("opsh.twin.arm.router")
local seed = require("opsh.twin.arm.seed")

local M = {}

local C = router.COLLECTION
-- captures: the server's key, its resource group's path, the resource group, the server name
local SERVER = "^((/subscriptions/[^/]+/resourcegroups/([^/]+))/providers/microsoft%.dbforpostgresql/flexibleservers/([^/]+))"
local PROVIDER = "Microsoft.DBforPostgreSQL"

-- the twin component standing for an ARM server: the production server is the twin's primary, its
-- replica the twin's streaming replica
local function component_of(server_name)
  for _, region in ipairs(platform.regions) do
    if region.postgres and region.postgres.server == server_name then
      return region.postgres.replica_of and "replica" or "postgres"
    end
  end
end

local function connect(twin, name)
  local rec = twin.store:get("components", name)
  if not rec or rec.absent or not rec.port then return nil end
  local pg = require("opsh.pg")
  return pg.connect({host = rec.host, port = rec.port, user = rec.user, dbname = rec.dbname,
    password = core.secret(rec.password), sslmode = "verify-full", sslrootcert = twin.ca.ca, connect_timeout = 10}), rec
end

-- ALTER ROLE on the twin server; the new password recorded where the twin's secrets come from
local function set_password(twin, comp, user, password)
  local conn, rec = connect(twin, comp == "replica" and "replica" or "postgres")
  if not conn then return false end
  local ok, err = pcall(function()
    local sql = conn:query("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text) AS s", user, password)[1].s
    conn:exec(sql)
  end)
  conn:close()
  if not ok then error(err, 0) end
  if rec.user == user then
    for _, name in ipairs({"postgres", "replica"}) do
      local r = twin.store:get("components", name)
      -- the replica replays the primary's catalog: the role's password changed there too
      if r and not r.absent and r.user == user and (name == comp or comp == "postgres") then
        twin.store:patch("components", name, {password = core.reveal(password)})
      end
    end
    -- the replica's walreceiver logs in to the primary with it at its next reconnection
    local r = twin.store:get("components", "replica")
    if comp == "postgres" and r and not r.absent and r.dir then
      require("opsh.twin.postgres").write_passfile(r.dir, {host = rec.host, port = rec.port, user = user, password = password})
    end
  end
  return true
end

-- the replica becomes a primary (pg_promote) and the old primary stops taking writes
local function promote(twin)
  local conn = connect(twin, "replica")
  if not conn then return false end
  local ok, err = pcall(function()
    if conn:query("SELECT pg_is_in_recovery() AS r")[1].r then
      conn:query("SELECT pg_promote(true, 60)")
    end
  end)
  conn:close()
  if not ok then error(err, 0) end
  local old = connect(twin, "postgres")
  if old then
    local ok2, err2 = pcall(function()
      old:exec("ALTER SYSTEM SET default_transaction_read_only = on")
      old:query("SELECT pg_reload_conf()")
    end)
    old:close()
    if not ok2 then log.warn("twin ARM: the old primary could not be made read-only", {error = tostring(err2)}) end
  end
  twin.update_state(function(s) s.platform.primary = "replica" end)
  return true
end

-- the archive must hold every commit up to now: a commit stamped now (so that a target time up to
-- now has a commit after it to stop at), then the WAL segment switched and archived
local function flush_archive(twin, comp, rec)
  local conn = connect(twin, comp)
  if not conn then return end
  local ok, res = pcall(function()
    if conn:query("SELECT pg_is_in_recovery() AS r")[1].r then return nil end
    conn:exec("SET default_transaction_read_only = off")
    conn:query("SELECT txid_current()")
    return conn:query("SELECT pg_walfile_name(pg_switch_wal()) AS f")[1].f
  end)
  conn:close()
  if not ok then error(res, 0) end
  if not res or not rec.archive_dir then return end
  local fs = require("opsh.fs")
  local deadline = core.hrtime() + 30
  while not fs.exists(rec.archive_dir .. "/" .. res) do
    if core.hrtime() > deadline then error(core.error("twin", "WAL segment " .. res .. " was not archived in 30 s"), 0) end
    core.sleep(0.1)
  end
end

-- A restore made real: a new PostgreSQL server (own port and data directory, recorded in the twin's
-- `components` as restore:<name> so that `twin down` stops it) from the source component's base backup
-- with the archived WAL replayed to point (recovery_target_time; the backup's consistent point when
-- point is before the backup ended; the archive's end when point is nil). A source without a base
-- backup (the replica) is copied as it is now. -> the component record, and what was done
local function restore_real(twin, comp, name, point)
  local rec = twin.store:get("components", comp)
  if not rec or rec.absent or not rec.port then return nil end
  local launcher = require("opsh.twin.postgres")
  local primary = require("opsh.twin.component.postgres").primary
  flush_archive(twin, comp, rec)
  local opts = {dir = primary.restores_dir(twin.store:get("components", "postgres") or rec) .. "/" .. name,
    user = rec.user, password = core.secret(rec.password), dbname = rec.dbname,
    tls = {cert = twin.ca.cert, key = twin.ca.key, ca = twin.ca.ca}}
  local how
  if rec.base_backup then
    opts.backup, opts.archive_dir = rec.base_backup.data, rec.archive_dir
    if point then
      local conn = assert(connect(twin, comp))
      local ok, res = pcall(conn.query, conn, "SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', "
        .. "'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t, $1::timestamptz < $2::timestamptz AS early", point, rec.base_backup.time)
      conn:close()
      if not ok then router.fail(400, "InvalidParameterValue", "pointInTimeUTC " .. point .. " is not a time.") end
      if res[1].early then
        opts.immediate, how = true, "base backup (" .. rec.base_backup.time .. "): the time is before it"
      else
        opts.target_time, how = res[1].t, "WAL replayed to " .. res[1].t
      end
    else
      how = "WAL replayed to the archive's end"
    end
  else
    opts.from, how = rec, "a copy of the server as it is now"
  end
  local h = launcher.restore(opts)
  local r = {pid = h.pid, program = "postgres", stop_signal = "INT", host = h.host, port = h.port, user = h.user,
    password = rec.password, dbname = h.dbname, dir = h.dir, data = h.data, log = h.log, role = "restore",
    server = name, restored = how}
  twin.store:put("components", "restore:" .. name, r)
  return r
end

-- the restored server stopped and its directory removed (DELETE of a restored server)
local function drop_restored(twin, name)
  local rec = twin.store:get("components", "restore:" .. name)
  if not rec then return end
  require("opsh.twin.proctab").stop("restore:" .. name, rec)
  local fs = require("opsh.fs")
  if rec.dir and fs.exists(rec.dir) then fs.rmtree(rec.dir) end
  twin.store:delete("components", "restore:" .. name)
end

local function get_server(twin, key)
  local s = twin.store:get(C, key)
  if not s then router.fail(404, "ResourceNotFound", "The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/"
    .. key:match("[^/]+$") .. "' under resource group was not found.") end
  return s
end

local function patch_server(twin, ctx, key, body)
  local server = get_server(twin, key)
  local props = body.properties or {}
  local password = props.administratorLoginPassword
  local promote_to
  if body.sku and body.sku ~= json.null then
    if not (body.sku.name and body.sku.tier) then router.fail(400, "InvalidParameter", "sku needs both name and tier.") end
    local tier = body.sku.tier
    if tier ~= "Burstable" and tier ~= "GeneralPurpose" and tier ~= "MemoryOptimized" then
      router.fail(400, "InvalidParameterValue", "sku.tier must be Burstable, GeneralPurpose or MemoryOptimized.")
    end
  end
  local storage = props.storage and props.storage ~= json.null and props.storage.storageSizeGB
  if storage and storage ~= json.null then
    if math.type(storage) ~= "integer" then router.fail(400, "InvalidParameter", "storageSizeGB must be a whole number.") end
    if storage < server.properties.storage.storageSizeGB then
      router.fail(400, "StorageSizeDecreaseNotSupported", string.format("Decreasing the storage size (from %d GB to %d GB) "
        .. "is not supported.", server.properties.storage.storageSizeGB, storage))
    end
  end
  local replica = props.replica ~= json.null and props.replica or nil
  if props.replicationRole == "None" or (replica and (replica.promoteMode or replica.role == "None" or replica.role == "Primary")) then
    if not tostring(server.properties.replicationRole or ""):lower():find("replica", 1, true) then
      router.fail(400, "InvalidParameterValue", "Server " .. server.name .. " is not a replica server.")
    end
    promote_to = (replica and replica.promoteMode == "switchover") and "Primary" or "None"
  end
  server.properties.state = "Updating"
  twin.store:put(C, key, server)
  local headers = lro.start(ctx, {provider = PROVIDER, location = server.location,
    work = function()
      local s = twin.store:get(C, key)
      local comp = component_of(s.name)
      if password and password ~= json.null and comp then
        set_password(twin, comp, s.properties.administratorLogin, core.secret(password))
      end
      if promote_to and comp == "replica" then promote(twin) end
      if body.sku and body.sku ~= json.null then s.sku = {name = body.sku.name, tier = body.sku.tier} end
      if storage and storage ~= json.null then s.properties.storage.storageSizeGB = storage end
      if props.backup and props.backup ~= json.null then
        for k, v in pairs(props.backup) do if v ~= json.null then s.properties.backup[k] = v end end
      end
      if props.highAvailability and props.highAvailability ~= json.null then
        s.properties.highAvailability.mode = props.highAvailability.mode or s.properties.highAvailability.mode
      end
      if body.tags and body.tags ~= json.null then s.tags = body.tags end
      if promote_to then
        s.properties.replicationRole = promote_to
        s.properties.replica = {role = promote_to, capacity = 5}
        s.properties.replicaCapacity = 5
        s.properties.sourceServerResourceId = nil
      end
      s.properties.state = "Ready"
      twin.store:put(C, key, s)
      return s
    end})
  return {status = 202, headers = headers}
end

-- PUT: a new server (point-in-time restore, geo-restore, replica) or an update of an existing one
local function put_server(twin, ctx, key, rg, name, body)
  local existing = twin.store:get(C, key)
  local props = body.properties or {}
  if existing then return patch_server(twin, ctx, key, body) end
  local mode = props.createMode or "Default"
  local source
  if mode == "PointInTimeRestore" or mode == "GeoRestore" or mode == "Replica" then
    if type(props.sourceServerResourceId) ~= "string" then
      router.fail(400, "InvalidParameter", "sourceServerResourceId is required for createMode " .. mode .. ".")
    end
    source = twin.store:get(C, props.sourceServerResourceId:lower())
    if not source then router.fail(404, "ResourceNotFound", "The source server " .. props.sourceServerResourceId .. " was not found.") end
    if mode ~= "Replica" then
      if type(props.pointInTimeUTC) ~= "string" then
        router.fail(400, "InvalidParameter", "pointInTimeUTC is required for createMode " .. mode .. ".")
      end
    end
  elseif mode ~= "Default" and mode ~= "Create" then
    router.fail(400, "InvalidParameterValue", "The twin does not serve createMode " .. tostring(mode) .. ".")
  end
  local region = {location = body.location or (source and source.location) or "westeurope"}
  local src = source or {sku = body.sku or {name = "Standard_D2ds_v5", tier = "GeneralPurpose"},
    properties = {administratorLogin = props.administratorLogin or "adminuser", version = props.version or "15",
      storage = props.storage or {storageSizeGB = 128}}}
  local _, server = seed.pg_server({resource_group = rg, location = region.location},
    {server = name, sku = body.sku or src.sku, admin_user = src.properties.administratorLogin,
     storage_gb = (props.storage and props.storage.storageSizeGB) or src.properties.storage.storageSizeGB,
     version = src.properties.version}, {replica = mode == "Replica", source = mode == "Replica" and source.id or nil})
  server.id = "/subscriptions/" .. platform.subscription .. "/resourceGroups/"
    .. (ctx.path:match("/resource[Gg]roups/([^/]+)") or rg) .. "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" .. name
  server.location = region.location
  server.tags = body.tags
  server.properties.state = "Provisioning"
  if mode == "PointInTimeRestore" or mode == "GeoRestore" then
    server.properties.restoredFrom = {sourceServerResourceId = source.id, pointInTimeUTC = props.pointInTimeUTC,
      createMode = mode}
  end
  twin.store:put(C, key, server)
  local headers = lro.start(ctx, {provider = PROVIDER, location = server.location, work = function()
    local s = twin.store:get(C, key)
    local comp = source and (mode == "PointInTimeRestore" or mode == "GeoRestore") and component_of(source.name)
    local real = comp and restore_real(twin, comp, name, mode == "PointInTimeRestore" and props.pointInTimeUTC or nil)
    if real then
      -- the twin's own: where the restored server answers
      s.properties.fullyQualifiedDomainName = real.host
      s.properties.twin = {host = real.host, port = real.port, restored = real.restored}
    end
    s.properties.state = "Ready"
    twin.store:put(C, key, s)
    -- a new server has the platform's configuration set
    local ops = {}
    for _, item in ipairs(twin.store:list(C)) do
      local cfg = source and item.key:match("^" .. source.id:lower():gsub("[%-%.]", "%%%0") .. "/configurations/([^/]+)$")
      if cfg then
        local o = item.object
        o.id = s.id .. "/configurations/" .. o.name
        ops[#ops + 1] = {op = "put", collection = C, key = key .. "/configurations/" .. cfg, object = o}
      end
    end
    if #ops > 0 then twin.store:txn(ops) end
    return s
  end})
  return {status = 202, headers = headers}
end

-- the streaming replica while it still is one: a hot standby stops replaying when the primary's
-- max_connections exceeds its own, so it follows the primary's (as Azure's replicas do)
local function standby(twin)
  local conn = connect(twin, "replica")
  if not conn then return nil end
  local ok, r = pcall(function() return conn:query("SELECT pg_is_in_recovery() AS r")[1].r end)
  if ok and r then return conn end
  conn:close()
end

-- the ARM parameters the twin applies to its server (shared_buffers and azure.* stay ARM state: the
-- twin's memory is not the SKU's)
local APPLIED = {max_connections = true, work_mem = true, log_min_duration_statement = true,
  idle_in_transaction_session_timeout = true}

-- ALTER SYSTEM on the twin server and a reload: a sighup parameter takes effect now, a postmaster one
-- at the next restart. -> whether a restart is pending, or nil when the twin has no such server
local function apply_config(twin, comp, name, value)
  if not (comp and APPLIED[name]) then return nil end
  local conn = connect(twin, comp)
  if not conn then return nil end
  local ok, res = pcall(function()
    conn:exec(conn:query("SELECT format('ALTER SYSTEM SET %I = %L', $1::text, $2::text) AS s", name, value)[1].s)
    conn:query("SELECT pg_reload_conf()")
    -- pending_restart is set once the postmaster has read the file again
    local deadline = core.hrtime() + 5
    repeat
      local row = conn:query("SELECT pending_restart, context, setting FROM pg_settings WHERE name = $1", name)[1]
      if row.pending_restart or row.context ~= "postmaster" then return row.pending_restart end
      if row.setting == value then return false end
      core.sleep(0.05)
    until core.hrtime() > deadline
    return false
  end)
  conn:close()
  if not ok then error(res, 0) end
  if comp == "postgres" and name == "max_connections" then
    local r = standby(twin)
    if r then
      pcall(function()
        r:exec(r:query("SELECT format('ALTER SYSTEM SET %I = %L', $1::text, $2::text) AS s", name, value)[1].s)
        r:query("SELECT pg_reload_conf()")
      end)
      r:close()
    end
  end
  return res
end

-- a real restart of the twin server (the replica first when the primary restarts); pid recorded again
local function restart_server(twin, comp)
  local rec = comp and twin.store:get("components", comp)
  if not rec or rec.absent or not rec.port then return false end
  local launcher = require("opsh.twin.postgres")
  if comp == "postgres" then
    local conn = standby(twin)
    if conn then
      local pending = conn:query("SELECT count(*) AS n FROM pg_settings WHERE pending_restart")[1].n > 0
      conn:close()
      if pending then
        local r = twin.store:get("components", "replica")
        twin.store:patch("components", "replica", {pid = launcher.restart(r)})
      end
    end
  end
  twin.store:patch("components", comp, {pid = launcher.restart(rec)})
  return true
end

local function set_config(twin, ctx, server_key, name, body)
  local key = server_key .. "/configurations/" .. name
  local cfg = twin.store:get(C, key)
  if not cfg then
    router.fail(400, "ConfigurationNotExists", string.format("The configuration '%s' does not exist for server '%s'.",
      name, server_key:match("[^/]+$")))
  end
  local value = body.properties and body.properties.value
  if value == nil or value == json.null then router.fail(400, "InvalidParameter", "properties.value is required.") end
  value = tostring(value)
  local p = cfg.properties
  if p.dataType == "Integer" then
    local lo, hi = p.allowedValues:match("^(%-?%d+)%-(%-?%d+)$")
    local n = math.tointeger(tonumber(value))
    if not n or (lo and (n < tonumber(lo) or n > tonumber(hi))) then
      router.fail(400, "InvalidParameterValue", string.format("The value '%s' for configuration '%s' is not valid. "
        .. "The allowed values are '%s'.", value, name, p.allowedValues))
    end
  end
  local headers = lro.start(ctx, {provider = PROVIDER, location = "westeurope", work = function()
    local c = twin.store:get(C, key)
    local server = twin.store:get(C, server_key)
    local pending = apply_config(twin, server and component_of(server.name), name, value)
    c.properties.value = value
    c.properties.source = body.properties.source or "user-override"
    if pending == nil then
      pending = not c.properties.isDynamicConfig and value ~= c.properties.defaultValue
    end
    c.properties.isConfigPendingRestart = pending
    twin.store:put(C, key, c)
    return c
  end})
  return {status = 202, headers = headers}
end

function M.routes(api)
  local twin, add = api.twin, api.add
  add("PATCH", SERVER .. "$", function(req, ctx, key) return patch_server(twin, ctx, key, req:json() or {}) end)
  add("PUT", SERVER .. "$", function(req, ctx, key, _, rg, name)
    return put_server(twin, ctx, key, rg, name, req:json() or {})
  end)
  add("DELETE", SERVER .. "$", function(_, ctx, key)
    local s = twin.store:get(C, key)
    if not s then return {status = 204} end
    if component_of(s.name) then
      router.fail(409, "OperationNotAllowed", "The twin keeps the platform's own servers; delete a restored one.")
    end
    s.properties.state = "Dropping"
    twin.store:put(C, key, s)
    return {status = 202, headers = lro.start(ctx, {provider = PROVIDER, location = s.location, work = function()
      drop_restored(twin, s.name)
      local ops = {}
      for _, item in ipairs(twin.store:list(C)) do
        if item.key == key or item.key:sub(1, #key + 1) == key .. "/" then
          ops[#ops + 1] = {op = "delete", collection = C, key = item.key}
        end
      end
      twin.store:txn(ops)
    end})}
  end)
  for _, method in ipairs({"PUT", "PATCH"}) do
    add(method, SERVER .. "/configurations/([^/]+)$", function(req, ctx, key, _, _, _, name)
      get_server(twin, key)
      return set_config(twin, ctx, key, name, req:json() or {})
    end)
  end
  add("PUT", SERVER .. "/backups/([^/]+)$", function(_, ctx, key, _, _, _, name)
    local s = get_server(twin, key)
    if not name:match("^[%w%-_%.]+$") then router.fail(400, "InvalidParameter", "invalid backup name " .. name) end
    return {status = 202, headers = lro.start(ctx, {provider = PROVIDER, location = s.location, work = function()
      local b = seed.pg_backup(s.id, name, os.time(), "Customer On-Demand")
      twin.store:put(C, key .. "/backups/" .. name:lower(), b)
      return b
    end})}
  end)
  add("GET", SERVER .. "/replicas$", function(req, ctx, key)
    get_server(twin, key)
    local out = {}
    for _, item in ipairs(twin.store:list(C)) do
      local o = item.object
      if item.key:match("/flexibleservers/[^/]+$") and type(o.properties) == "table"
        and type(o.properties.sourceServerResourceId) == "string" and o.properties.sourceServerResourceId:lower() == key
        and tostring(o.properties.replicationRole):find("Replica") then
        out[#out + 1] = o
      end
    end
    return router.page(req, ctx.base, out)
  end)
  add("POST", SERVER .. "/restart$", function(_, ctx, key)
    local s = get_server(twin, key)
    return {status = 202, headers = lro.start(ctx, {provider = PROVIDER, location = s.location, work = function()
      restart_server(twin, component_of(s.name))
      local c = twin.store:list(C)
      for _, item in ipairs(c) do
        if item.key:sub(1, #key + 16) == key .. "/configurations/" and item.object.properties.isConfigPendingRestart then
          item.object.properties.isConfigPendingRestart = false
          twin.store:put(C, item.key, item.object)
        end
      end
    end})}
  end)
  -- what az's restore and create validations ask before they PUT
  add("GET", "^/subscriptions/[^/]+/providers/microsoft%.dbforpostgresql/locations/([^/]+)/capabilities$", function(_, _, loc)
    return {value = json.array({{name = "FlexibleServerCapabilities", zone = "none",
      supportedHAMode = json.array({"SameZone", "ZoneRedundant"}), geoBackupSupported = true,
      zoneRedundantHaSupported = true, zoneRedundantHaAndGeoBackupSupported = true,
      supportedFlexibleServerEditions = M.editions(), supportedHyperscaleNodeEditions = json.array({}),
      status = "Available", location = loc}})}
  end)
  -- checkNameAvailability, subscription-wide and per location: taken when a server of that name exists
  local function name_availability(req)
    local b = req:json() or {}
    local taken = false
    for _, item in ipairs(twin.store:list(C)) do
      if item.key:match("/flexibleservers/([^/]+)$") == tostring(b.name):lower() then taken = true end
    end
    return {nameAvailable = not taken, name = b.name, type = b.type, reason = taken and "AlreadyExists" or json.null,
      message = taken and "Specified server name is already used." or json.null}
  end
  add("POST", "^/subscriptions/[^/]+/providers/microsoft%.dbforpostgresql/checknameavailability$", name_availability)
  add("POST", "^/subscriptions/[^/]+/providers/microsoft%.dbforpostgresql/locations/[^/]+/checknameavailability$", name_availability)
end

local TIERS = {
  {"Burstable", {"Standard_B1ms", "Standard_B2s", "Standard_B2ms", "Standard_B4ms"}},
  {"GeneralPurpose", {"Standard_D2s_v3", "Standard_D4s_v3", "Standard_D8s_v3", "Standard_D16s_v3", "Standard_D2ds_v4",
    "Standard_D4ds_v4", "Standard_D8ds_v4", "Standard_D2ds_v5", "Standard_D4ds_v5", "Standard_D8ds_v5", "Standard_D16ds_v5"}},
  {"MemoryOptimized", {"Standard_E2s_v3", "Standard_E4s_v3", "Standard_E8s_v3", "Standard_E2ds_v5", "Standard_E4ds_v5",
    "Standard_E8ds_v5"}},
}

--- editions() -> the location capabilities' supportedFlexibleServerEditions (what az validates SKUs,
-- tiers and storage sizes against)
function M.editions()
  local out = {}
  for _, t in ipairs(TIERS) do
    local vcores = {}
    for _, sku in ipairs(t[2]) do
      local n = tonumber(sku:match("_[BDE](%d+)")) or 2
      vcores[#vcores + 1] = {name = sku, vCores = n, supportedIops = n * 3200, supportedMemoryPerVcoreMb = 4096, status = "Available"}
    end
    local sizes = {}
    for _, gb in ipairs({32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}) do
      -- 2022-12-01 (az 2.45) spells it storageSizeMB, the current api-versions storageSizeMb
      sizes[#sizes + 1] = {name = tostring(gb * 1024), storageSizeMb = gb * 1024, storageSizeMB = gb * 1024,
        supportedIops = 120, status = "Available"}
    end
    local versions = {}
    for _, v in ipairs({"12", "13", "14", "15", "16"}) do
      versions[#versions + 1] = {name = v, supportedVcores = json.array(vcores), status = "Available"}
    end
    out[#out + 1] = {name = t[1], defaultSkuName = t[2][2], status = "Available",
      supportedStorageEditions = json.array({{name = "ManagedDisk", defaultStorageSizeMb = 131072,
        supportedStorageMb = json.array(sizes), supportedStorageMB = json.array(sizes), status = "Available"}}),
      supportedServerVersions = json.array(versions)}
  end
  return json.array(out)
end

M.component_of = component_of
return M
