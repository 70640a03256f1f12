-- weekly-maintenance: the runbook's Sunday tasks, each also runnable alone (--part). Safer than the bash:
-- every part reads first and acts only on what needs it (a second run changes nothing), pods are deleted by
-- name after a listing (never a blind field-selector delete), node images are upgraded only for pools behind
-- the latest image, one pool at a time, and the log export writes a dated file that is never overwritten.
local PARTS = {"acr", "pods", "logs", "node-image", "retention"}

-- Beyond the runbook's "keep the last 10": a manifest goes only when it is also older than --older-than
-- (the runbook's stated intent, "older than 30 days"), not locked (its own or a tag's ACR attributes), and
-- not referred to by anything in the cluster -- a pod, a workload's template or a ReplicaSet kept for
-- `rollout undo` -- so nothing running, or one rollback away, loses its image.
local function span(seconds)
  for _, u in ipairs({{86400, "d"}, {3600, "h"}, {60, "m"}}) do
    if seconds >= u[1] and seconds % u[1] == 0 then return (seconds // u[1]) .. u[2] end
  end
  return seconds .. "s"
end

local function acr_cleanup(ctx, args, rows, k)
  local azure = require("opsh.azure")
  if type(azure.acr) ~= "function" then
    rows[#rows + 1] = {part = "acr", result = "skipped", detail = "this build has no ACR client (opsh.azure.acr)"}
    return
  end
  local time = require("opsh.time")
  local images = require("opsh.ops.images")
  local registry = azure.acr(ctx.env)
  local refs, unserved = images.referenced(k)
  if #unserved > 0 then ctx.log.info("the cluster serves no " .. table.concat(unserved, ", ")) end
  local now = time.now()
  local deleted, locked, used, recent = 0, 0, 0, 0
  for _, repo in ipairs(registry:repositories()) do
    local manifests = registry:manifests(repo)   -- newest first
    local locked_tag = {}
    if #manifests > args.keep then
      for _, t in ipairs(registry:tags(repo)) do
        if t.locked then locked_tag[t.digest] = t.name end
      end
    end
    for i = args.keep + 1, #manifests do
      local m = manifests[i]
      local ref = repo .. "@" .. m.digest:sub(1, 19)
      local user = images.user(refs, repo, m.digest, m.tags)
      local ok, updated = pcall(time.parse, m.updated)
      if m.locked or locked_tag[m.digest] then
        locked = locked + 1
        ctx.log.info(string.format("keeping %s: locked (%s)", ref, m.locked and "its attributes"
          or ("tag " .. locked_tag[m.digest])))
      elseif user then
        used = used + 1
        ctx.log.info(string.format("keeping %s: used by %s", ref, user))
      elseif not ok or now - updated < args.older_than then
        recent = recent + 1
      else
        ctx.step("delete " .. ref, function()
          registry:delete_manifest(repo, m.digest)
        end, {target = repo, destructive = true})
        deleted = deleted + 1
      end
    end
  end
  rows[#rows + 1] = {part = "acr", result = deleted > 0 and "cleaned" or "no change",
    detail = string.format("%d manifests beyond the newest %d per repository and older than %s; kept %d locked, "
      .. "%d in use, %d newer", deleted, args.keep, span(args.older_than), locked, used, recent)}
end

local function pods_cleanup(ctx, _, rows, k)
  local ns = ctx.env.namespace
  local names = {}
  for _, phase in ipairs({"Failed", "Succeeded"}) do
    for _, p in ipairs(k:list("pods", {namespace = ns, field_selector = "status.phase=" .. phase}).items or {}) do
      names[#names + 1] = p.metadata.name
    end
  end
  for _, name in ipairs(names) do
    ctx.step("delete pod " .. name, function() k:delete("pods", name, {namespace = ns, missing_ok = true}) end,
      {target = "pod/" .. name})
  end
  rows[#rows + 1] = {part = "pods", result = #names > 0 and "cleaned" or "no change",
    detail = string.format("%d Failed/Succeeded pods", #names)}
end

local function export_logs(ctx, args, rows, k)
  local fs = require("opsh.fs")
  local ns = ctx.env.namespace
  local file = string.format("%s/%s-%s.log", args.logs_dir, ns, os.date("!%Y%m%d"))
  if fs.exists(file) then
    rows[#rows + 1] = {part = "logs", result = "no change", detail = file .. " exists (not overwritten)"}
    return
  end
  local pods = k:list("pods", {namespace = ns, field_selector = "status.phase=Running"}).items or {}
  local texts = require("opsh").parallel(pods, function(p)
    local ok, text = pcall(k.log, k, p.metadata.name, {namespace = ns, all_containers = true, timestamps = true})
    return "==> " .. p.metadata.name .. " <==\n" .. (ok and text or ("(no logs: " .. tostring(text.message or text) .. ")\n"))
  end)
  if require("opsh.dryrun").active() then
    rows[#rows + 1] = {part = "logs", result = "planned", detail = string.format("would write %d pods' logs to %s", #pods, file)}
    return
  end
  ctx.step("write " .. file, function()
    fs.mkdir(args.logs_dir, {parents = true})
    fs.write_atomic(file, table.concat(texts))
  end, {target = file})
  local azure = require("opsh.azure")
  local blob = "not uploaded (this build has no Blob client, opsh.azure.blob)"
  if type(azure.blob) == "function" then
    ctx.step("upload to Blob", function()
      local account = azure.blob(ctx.env)
      account:create_container("logs")
      account:put("logs", file:match("[^/]+$"), {file = file})
    end, {target = "logs/" .. file:match("[^/]+$")})
    blob = "uploaded to container logs"
  end
  rows[#rows + 1] = {part = "logs", result = "exported", detail = string.format("%d pods -> %s; %s", #pods, file, blob)}
end

local function node_image(ctx, _, rows)
  local azure = require("opsh.azure")
  local aks = azure.aks
  local arm = azure.arm(ctx.env)
  local done = {}
  for _, pool in ipairs(aks.pools{env = ctx.env}) do
    local profile = arm:get(pool.id .. "/upgradeProfiles/default", {api_version = aks.API})
    local latest = profile.properties and profile.properties.latestNodeImageVersion
    local have = pool.properties.nodeImageVersion
    if latest and have ~= latest then
      -- the pool, as scale-nodepool and cost-report name it: an upgrade and a scale never overlap
      ctx.lock("aks:" .. ctx.env.aks.cluster .. "/" .. pool.name, {wait = 60})
      ctx.step(string.format("node image %s: %s -> %s", pool.name, tostring(have), latest), function()
        aks.upgrade_node_image{env = ctx.env, pool = pool.name}
      end, {target = pool.name, destructive = true})
      done[#done + 1] = pool.name
    end
  end
  rows[#rows + 1] = {part = "node-image", result = #done > 0 and "upgraded" or "no change",
    detail = #done > 0 and table.concat(done, ", ") or "every pool on the latest image"}
end

local function retention(ctx, args, rows)
  local monitor = require("opsh.azure").monitor
  local have = (monitor.appinsights{env = ctx.env}.properties or {}).RetentionInDays
  if have ~= args.retention_days then
    ctx.step(string.format("App Insights retention %s -> %d days", tostring(have), args.retention_days), function()
      monitor.set_retention{env = ctx.env, days = args.retention_days}
    end, {target = ctx.env.appinsights and ctx.env.appinsights.app})
  end
  rows[#rows + 1] = {part = "retention", result = have ~= args.retention_days and "set" or "no change",
    detail = string.format("%s days (was %s)", args.retention_days, tostring(have))}
end

local RUN = {acr = acr_cleanup, pods = pods_cleanup, logs = export_logs, ["node-image"] = node_image, retention = retention}

return {
  description = "Weekly maintenance: ACR cleanup, finished pods, log export, node images, App Insights retention "
    .. "(runbook: Weekly Maintenance Tasks)",
  categories = {"maintenance", "daily"},
  flags = {"destructive"},
  args = {
    part = {help = "run only this part", choices = {"all", "acr", "pods", "logs", "node-image", "retention"}, default = "all"},
    keep = {help = "manifests kept per ACR repository (newest first)", type = "integer", default = 10},
    older_than = {help = "ACR manifests beyond --keep go only when last updated longer ago than this",
      type = "duration", default = "30d"},
    logs_dir = {help = "where the dated log file goes", default = "logs"},
    retention_days = {help = "App Insights retention", type = "integer", default = 90},
  },
  examples = {"opsh --env production --yes run weekly-maintenance", "opsh --env production run weekly-maintenance --part=pods"},
  run = function(ctx, args)
    if args.keep < 1 then require("opsh").raise("usage", "--keep must be at least 1") end
    local k = require("opsh.k8s").client{namespace = ctx.env.namespace}
    ctx.lock("aks:" .. ctx.env.aks.cluster, {wait = 60})
    local rows = {}
    for _, part in ipairs(PARTS) do
      if args.part == "all" or args.part == part then RUN[part](ctx, args, rows, k) end
    end
    ctx.out(rows, {columns = {"part", "result", "detail"}})
  end,
}
