-- pg-import: a pg-export blob streamed from Blob into pg_restore, into a new database.
return {
  description = "Import a pg-export blob into a new PostgreSQL database\n"
    .. "The matching import of pg-export (Backup and Recovery > Export Database): the blob is streamed into "
    .. "pg_restore (no file on disk), its SHA-256 checked against the one pg-export recorded. The target "
    .. "database is created and must not exist: an import never writes into a database in use. When the "
    .. "restore or the checksum fails, the database it created is dropped.",
  categories = {"backup"},
  flags = {"mutating"},
  args = {
    blob = {help = "blob name (as pg-export printed it)", required = true},
    database = {help = "new database to restore into", required = true},
    container = {help = "blob container (default: the environment's storage.backup_container)"},
  },
  examples = {"opsh --env staging run pg-import --blob psql-legal-production/legaldb-20261205T101500Z.dump --database legaldb_copy"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local proc = require("opsh.proc")
    local backup = require("opsh.ops.backup")
    local envt = ctx.env
    if not args.database:match("^[a-z_][a-z0-9_]*$") or #args.database > 63 then
      opsh.raise("usage", "--database must be a lower-case identifier (letters, digits, _)")
    end
    if not backup.have("pg_restore") then opsh.raise("unavailable", "pg_restore is not installed (postgresql-client)") end
    local container = args.container or (envt.storage and envt.storage.backup_container) or "backups"
    local account = backup.blob_account(envt)
    local pool = ctx.pg{database = "postgres"}

    local props = ctx.step("read the blob's properties", function() return account:properties(container, args.blob) end,
      {target = args.blob})
    if not props then opsh.raise("not_found", string.format("blob %s/%s not found", container, args.blob)) end
    local expected = (props.metadata or {}).sha256
    local exists = ctx.step("look for database " .. args.database, function()
      return pool:with(function(c)
        return #c:query("SELECT 1 FROM pg_database WHERE datname = $1", args.database) > 0
      end)
    end, {target = args.database})
    if exists then
      opsh.raise("conflict", "database " .. args.database .. " exists; an import restores into a new database only")
    end
    ctx.step("create database " .. args.database, function()
      pool:with(function(c) c:exec('CREATE DATABASE "' .. args.database .. '"') end)
    end, {target = args.database, undo = function()
      pool:with(function(c) c:exec('DROP DATABASE IF EXISTS "' .. args.database .. '" WITH (FORCE)') end)
    end})
    local got = ctx.step("stream the blob into pg_restore", function()
      local restore <close> = proc.spawn{argv = {"pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
        "--dbname", args.database}, env_add = backup.libpq_env(envt, args.database), stdin_pipe = true,
        stderr = "capture"}
      if restore.dry_run then return nil end
      local hash = backup.hasher()
      local ok, err = pcall(account.get, account, container, args.blob, {on_data = function(chunk)
        hash.write(chunk)
        restore:write(chunk)
      end})
      restore:close_stdin()
      local st = restore:wait()
      local sum = ok and hash.finish() or nil
      hash.close()
      if not ok then error(err, 0) end
      if st.code ~= 0 then
        opsh.raise("proc", "pg_restore failed (exit " .. tostring(st.code) .. "): "
          .. tostring((st.stderr or ""):gsub("%s+$", ""):match("[^\n]*$")))
      end
      if expected and sum ~= expected then
        opsh.raise("checksum", string.format("the blob's SHA-256 is %s, pg-export recorded %s", sum, expected))
      end
      return sum
    end, {target = args.database})
    if not ctx.dry_run then
      ctx.out({{database = args.database, blob = args.blob, sha256 = got,
        verified = expected and "yes" or "no checksum recorded"}}, {columns = {"database", "blob", "sha256", "verified"}})
    end
  end,
}
