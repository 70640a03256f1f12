-- pg-backup: an on-demand backup of the environment's PostgreSQL flexible server, and the list of backups.
return {
  description = "Take an on-demand PostgreSQL backup and list the server's backups\n"
    .. "Replaces the runbook's `az postgres flexible-server backup create` / `backup list` (Backup and "
    .. "Recovery > On-Demand Backup). Waits for the backup to complete and shows it in the list. With --name "
    .. "of a backup that exists nothing is sent (idempotent); --list only lists.",
  categories = {"backup"},
  flags = {"mutating"},
  args = {
    name = {help = "backup name (letters, digits, - _ .); default ondemand-<UTC time>"},
    server = {help = "server name (default: the environment's postgres.server)"},
    list = {help = "only list the backups", type = "boolean", default = false},
  },
  examples = {
    "opsh --env production run pg-backup",
    "opsh --env production run pg-backup --name before-migration-42",
    "opsh --env production run pg-backup --list",
  },
  run = function(ctx, args)
    local azure = require("opsh.azure")
    local pg = azure.postgres
    local server = args.server or ctx.env.postgres.server
    local name = args.name or ("ondemand-" .. os.date("!%Y%m%dT%H%M%S"))
    if not name:match("^[%w%-_.]+$") then
      require("opsh").raise("usage", "--name may hold letters, digits, '-', '_' and '.' only")
    end
    local function list()
      return pg.backups{server = server}
    end
    if not args.list then
      local existing = ctx.step("look for the backup", function()
        for _, b in ipairs(list()) do
          if tostring(b.name):lower() == name:lower() then return b end
        end
        return nil
      end, {target = server})
      ctx.step("take on-demand backup " .. name, function()
        if existing then
          ctx.log.info("backup " .. name .. " exists; nothing to do")
          return
        end
        return pg.backup{server = server, name = name}
      end, {target = server})
    end
    local rows = {}
    for _, b in ipairs(list()) do
      local p = b.properties or {}
      rows[#rows + 1] = {name = b.name, type = p.backupType, completed = p.completedTime, source = p.source}
    end
    table.sort(rows, function(a, b) return tostring(a.completed) > tostring(b.completed) end)
    ctx.out(rows, {columns = {"name", "type", "completed", "source"}})
  end,
}
