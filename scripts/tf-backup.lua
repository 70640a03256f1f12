-- tf-backup: the Terraform state of a working directory copied to Blob, and the versioning check on
-- the storage account that holds states.
return {
  description = "Back up Terraform state to Blob and check blob versioning on the state account\n"
    .. "Replaces the runbook's `terraform state pull > file` + upload (Backup and Recovery). Runs "
    .. "`terraform state pull` in --dir (whatever backend it uses), checks it is a state, and uploads it "
    .. "with its serial, lineage and SHA-256 as metadata; an unchanged state (same lineage, serial and "
    .. "checksum as the latest backup) is not uploaded again. Checks that blob versioning is on for the "
    .. "storage account (a problem, exit 3, when off; --enable-versioning turns it on). Needs terraform on PATH.",
  categories = {"backup"},
  flags = {"mutating"},
  args = {
    dir = {help = "Terraform working directory", default = "."},
    container = {help = "blob container (default: the environment's storage.backup_container)"},
    prefix = {help = "blob name prefix", default = "terraform"},
    account = {help = "storage account whose versioning is checked (default: the environment's)"},
    enable_versioning = {help = "turn blob versioning on when it is off", type = "boolean", default = false},
  },
  examples = {"opsh --env production run tf-backup --dir infrastructure/terraform"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local proc = require("opsh.proc")
    local json = require("opsh.json")
    local fs = require("opsh.fs")
    local crypto = require("opsh.crypto")
    local azure = require("opsh.azure")
    local backup = require("opsh.ops.backup")
    if not backup.have("terraform") then
      opsh.raise("unavailable", "terraform is not installed (not on PATH): nothing to back up from here; "
        .. "install it or run tf-backup where the Terraform working directory is")
    end
    local st = fs.stat(args.dir)
    if not st or st.type ~= "dir" then opsh.raise("usage", "--dir: no such directory: " .. args.dir) end
    local envt = ctx.env
    local container = args.container or (envt.storage and envt.storage.backup_container) or "backups"
    local account_name = args.account or (envt.storage and envt.storage.account)

    local service = ctx.step("read blob versioning on " .. tostring(account_name), function()
      return azure.storage.blob_properties{account = account_name}
    end, {target = account_name})
    local versioning = ((service or {}).properties or {}).isVersioningEnabled == true
    if not versioning then
      if args.enable_versioning then
        ctx.step("turn blob versioning on", function()
          return azure.storage.set_blob_properties{account = account_name, versioning = true}
        end, {target = account_name, undo = function()
          azure.storage.set_blob_properties{account = account_name, versioning = false}
        end})
        versioning = true
      else
        ctx.problem("blob versioning is off on " .. tostring(account_name)
          .. ": an overwritten or corrupted state cannot be rolled back (--enable-versioning turns it on)")
      end
    end

    local state = ctx.step("terraform state pull", function()
      local r = proc.run{argv = {"terraform", "state", "pull"}, cwd = args.dir, read = true, check = false,
        env_add = {TF_IN_AUTOMATION = "1", TF_INPUT = "0"}, timeout = 300}
      if r.code ~= 0 then
        opsh.raise("proc", "terraform state pull failed (exit " .. tostring(r.code) .. "): "
          .. tostring((r.stderr or ""):gsub("%s+$", ""):match("[^\n]*$")))
      end
      return r.stdout
    end, {target = args.dir})
    local ok, doc = pcall(json.decode, state or "")
    if not ok or type(doc) ~= "table" or doc.lineage == nil or doc.serial == nil then
      opsh.raise("terraform", "no state in " .. args.dir .. " (terraform state pull gave no lineage/serial); "
        .. "has it been initialised and applied?")
    end
    local sum = crypto.sha256_hex(state)
    local base = args.prefix .. "/" .. tostring(doc.lineage)
    local name = string.format("%s/%06d-%s.tfstate", base, math.tointeger(doc.serial) or 0, sum:sub(1, 12))
    local account = backup.blob_account(envt)
    ctx.step("ensure container " .. container, function() backup.ensure_container(account, container) end, {target = container})
    local existing = ctx.step("look for this state", function() return account:properties(container, name) end,
      {target = name})
    ctx.step("upload the state", function()
      if existing then ctx.log.info("this state is backed up already: " .. name); return end
      return account:put(container, name, {data = state, content_type = "application/json",
        metadata = {lineage = tostring(doc.lineage), serial = tostring(doc.serial), sha256 = sum}})
    end, {target = name})
    ctx.out({{blob = name, serial = doc.serial, lineage = doc.lineage, sha256 = sum, bytes = #state,
      versioning = versioning and "on" or "OFF"}},
      {columns = {"blob", "serial", "lineage", "bytes", "versioning"}})
  end,
}
