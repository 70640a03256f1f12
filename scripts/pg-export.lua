-- pg-export: pg_dump streamed straight to Blob (no temporary file), its SHA-256 recorded on the blob.
return {
  description = "Export a PostgreSQL database with pg_dump straight to Blob storage\n"
    .. "Replaces the runbook's pg_dump to a local file + `az storage blob upload` (Backup and Recovery > "
    .. "Export Database). pg_dump's custom format is streamed block by block to the environment's storage "
    .. "account: no file on disk, the password only in pg_dump's environment. The SHA-256 of the stream is "
    .. "recorded in the blob's metadata (sha256) and printed; pg-import checks it.",
  categories = {"backup"},
  flags = {"mutating"},
  args = {
    database = {help = "database to export (default: the environment's postgres.database)"},
    container = {help = "blob container (default: the environment's storage.backup_container)"},
    name = {help = "blob name (default: <server>/<database>-<UTC time>.dump)"},
  },
  examples = {"opsh --env production run pg-export", "opsh --env production run pg-export --name pre-release.dump"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local proc = require("opsh.proc")
    local backup = require("opsh.ops.backup")
    local envt = ctx.env
    if not backup.have("pg_dump") then opsh.raise("unavailable", "pg_dump is not installed (postgresql-client)") end
    local database = args.database or envt.postgres.database or "postgres"
    local container = args.container or (envt.storage and envt.storage.backup_container) or "backups"
    local name = args.name or string.format("%s/%s-%s.dump", envt.postgres.server, database, os.date("!%Y%m%dT%H%M%SZ"))
    local account = backup.blob_account(envt)

    ctx.step("ensure container " .. container, function() backup.ensure_container(account, container) end,
      {target = container})
    local exists = ctx.step("look for the blob", function() return account:properties(container, name) end,
      {target = name})
    if exists and args.name then
      opsh.raise("conflict", string.format("blob %s/%s exists; choose another --name (an export never overwrites)",
        container, name))
    end
    local rec = ctx.step("stream pg_dump to " .. container .. "/" .. name, function()
      local dump <close> = proc.spawn{argv = {"pg_dump", "--format=custom", "--no-owner", "--no-privileges"},
        env_add = backup.libpq_env(envt, database), stdout = "pipe", stderr = "capture"}
      if dump.dry_run then return account:put(container, name, {process = dump}) end
      local hash = backup.hasher()
      local meta = {database = database, server = envt.postgres.server}
      local bytes = 0
      local ok, r = pcall(account.put, account, container, name, {content_type = "application/octet-stream",
        metadata = meta, source = function()
          local _, chunk = dump:read("stdout")
          if chunk == nil then
            local st = dump:wait()
            if st.code ~= 0 then
              opsh.raise("proc", "pg_dump failed (exit " .. tostring(st.code) .. "): "
                .. tostring((st.stderr or ""):gsub("%s+$", ""):match("[^\n]*$")) .. "; no blob committed")
            end
            meta.sha256 = hash.finish()
            return nil
          end
          bytes = bytes + #chunk
          hash.write(chunk)
          return chunk
        end})
      hash.close()
      if not ok then error(r, 0) end
      r.sha256, r.bytes = meta.sha256, bytes
      return r
    end, {target = name, undo = function() account:delete(container, name) end})
    if rec and not rec.dry_run then
      ctx.out({{container = container, blob = name, database = database, bytes = rec.bytes, sha256 = rec.sha256}},
        {columns = {"container", "blob", "database", "bytes", "sha256"}})
    end
  end,
}
