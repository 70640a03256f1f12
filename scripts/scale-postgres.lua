-- scale-postgres: the runbook's PostgreSQL SKU change and storage increase. A SKU change restarts the server
-- (the runbook's "brief connection interruption"): the step is destructive and asks first. A storage
-- decrease is refused before anything is sent; a server already as asked sends nothing.
local TIERS = {GP = "GeneralPurpose", MO = "MemoryOptimized", B = "Burstable"}

return {
  description = "Change the PostgreSQL server's SKU (interrupts connections) or grow its storage (runbook: Scale Database)",
  categories = {"scaling"},
  flags = {"destructive"},
  args = {
    sku = {help = "SKU, as the runbook writes it (GP_Standard_D8s_v3) or as ARM does (Standard_D8s_v3 with --tier)"},
    tier = {help = "tier (default: from the GP_/MO_/B_ prefix, else the server's)",
      choices = {"Burstable", "GeneralPurpose", "MemoryOptimized"}},
    storage_gb = {help = "new storage size in GB (only an increase)", type = "integer"},
  },
  examples = {"opsh --env production run scale-postgres --sku=GP_Standard_D8s_v3",
    "opsh --env production run scale-postgres --storage-gb=256"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local pg = require("opsh.azure").postgres
    local env = ctx.env
    if not (args.sku or args.storage_gb) then opsh.raise("usage", "give --sku and/or --storage-gb") end
    local server = env.postgres.server
    local before = ctx.step("read the server", function()
      local s = pg.get{env = env}
      return {sku = s.sku.name, tier = s.sku.tier, storage = s.properties.storage.storageSizeGB,
        state = s.properties.state}
    end, {target = server})
    if args.storage_gb and args.storage_gb < before.storage then
      opsh.raise("usage", string.format("%s has %d GB; storage cannot be decreased (asked for %d GB): nothing was sent",
        server, before.storage, args.storage_gb))
    end
    local sku, tier = args.sku, args.tier
    if sku then
      local prefix, rest = sku:match("^(%u%u?)_(.+)$")
      if prefix and TIERS[prefix] then sku, tier = rest, tier or TIERS[prefix] end
      tier = tier or before.tier
    end
    ctx.lock("postgres:" .. server, {wait = 60})
    if sku and (sku ~= before.sku or tier ~= before.tier) then
      ctx.log.warn(string.format("changing %s from %s (%s) to %s (%s) restarts it: connections are interrupted for "
        .. "5-10 seconds", server, before.sku, before.tier, sku, tier))
      ctx.step(string.format("SKU %s -> %s (restarts the server)", before.sku, sku), function()
        pg.update_sku{env = env, sku = sku, tier = tier}
      end, {destructive = true, target = server,
        undo = function() pg.update_sku{env = env, sku = before.sku, tier = before.tier} end})
    end
    if args.storage_gb and args.storage_gb > before.storage then
      ctx.step(string.format("storage %d GB -> %d GB", before.storage, args.storage_gb), function()
        pg.grow_storage{env = env, size_gb = args.storage_gb}
      end, {target = server})   -- no undo: storage cannot shrink
    end
    local s = require("opsh.dryrun").active() and nil or pg.get{env = env}
    ctx.out({{server = server, sku = s and s.sku.name or before.sku, tier = s and s.sku.tier or before.tier,
      storage_gb = s and s.properties.storage.storageSizeGB or before.storage,
      was = string.format("%s %s %d GB", before.sku, before.tier, before.storage)}},
      {columns = {"server", "sku", "tier", "storage_gb", "was"}})
  end,
}
