-- pg-restore: point-in-time restore or geo-restore of the PostgreSQL server to a new server.
return {
  description = "Restore the PostgreSQL server to a new server (point in time or geo-restore)\n"
    .. "Replaces the runbook's `az postgres flexible-server restore` / `geo-restore` (Backup and Recovery > "
    .. "Restore from Backup). Never touches the source server: the target must not exist, or must already "
    .. "be a restore of the same source (then nothing is sent). Waits for the new server and checks that it "
    .. "is Ready and has an address.",
  categories = {"backup"},
  flags = {"mutating"},
  args = {
    target = {help = "name of the new server", required = true},
    time = {help = "point in time, ISO-8601 UTC (2026-12-05T10:00:00Z); default now"},
    geo = {help = "geo-restore into --location from the geo-redundant backup", type = "boolean", default = false},
    location = {help = "region of the new server (required with --geo; default the source's)"},
    server = {help = "source server (default: the environment's postgres.server)"},
  },
  examples = {
    "opsh --env production run pg-restore --target psql-legal-restored --time 2026-12-05T10:00:00Z",
    "opsh --env production run pg-restore --target psql-legal-geo --geo --location westus2",
  },
  run = function(ctx, args)
    local opsh = require("opsh")
    local pg = require("opsh.azure").postgres
    local source = args.server or ctx.env.postgres.server
    if not args.target:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$") or #args.target > 63 then
      opsh.raise("usage", "--target must be 3-63 lower-case letters, digits and '-', not starting or ending with '-'")
    end
    if args.target == source then opsh.raise("usage", "--target must be a new server, not the source " .. source) end
    if args.geo and not args.location then opsh.raise("usage", "--geo needs --location (the region to restore into)") end
    if args.time and not args.time:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ?$") then
      opsh.raise("usage", "--time must be an ISO-8601 UTC time such as 2026-12-05T10:00:00Z")
    end

    local function get(name)
      local ok, r = pcall(pg.get, {server = name})
      if ok then return r end
      if type(r) == "table" and r.status == 404 then return nil end
      error(r, 0)
    end

    local src = ctx.step("read the source server", function() return get(source) end, {target = source})
    if not src then opsh.raise("azure", "source server " .. source .. " not found") end
    local existing = ctx.step("look for the target server", function() return get(args.target) end,
      {target = args.target})
    if existing then
      local from = ((existing.properties or {}).restoredFrom or {}).sourceServerResourceId
      if type(from) ~= "string" or from:lower() ~= tostring(src.id):lower() then
        opsh.raise("conflict", "server " .. args.target .. " exists and is not a restore of " .. source
          .. "; choose another --target")
      end
      ctx.log.info(args.target .. " is already a restore of " .. source .. "; nothing to do")
    end

    local server = ctx.step(args.geo and "geo-restore to a new server" or "point-in-time restore to a new server",
      function()
        if existing then return existing end
        local opts = {server = source, target = args.target, time = args.time, location = args.location}
        if args.geo then
          opts.time = opts.time or os.date("!%Y-%m-%dT%H:%M:%SZ")   -- as az sends: the latest geo-backup
          return pg.geo_restore(opts)
        end
        return pg.restore(opts)
      end, {target = args.target})

    if ctx.dry_run and not existing then return end
    local fresh = ctx.step("check the new server answers", function()
      local s = get(args.target)
      local p = s and s.properties or {}
      if not s or p.state ~= "Ready" or type(p.fullyQualifiedDomainName) ~= "string" then
        opsh.raise("azure", string.format("%s is not ready (state %s)", args.target, tostring(p.state)))
      end
      return s
    end, {target = args.target})
    server = fresh or server
    local p = server.properties or {}
    local from = p.restoredFrom or {}
    ctx.out({{server = server.name, state = p.state, location = server.location,
      fqdn = p.fullyQualifiedDomainName, mode = from.createMode, point_in_time = from.pointInTimeUTC}},
      {columns = {"server", "state", "location", "fqdn", "mode", "point_in_time"}})
  end,
}
