-- rotate-db-password: the runbook's Database Password Rotation. --admin: the server's admin password
-- (new password set through ARM, verified by a login, stored in Key Vault, consumers rolled; the
-- window between the server change and the end of the rollout is measured). --app ROLE: alternating
-- users ROLE_a / ROLE_b (the role not in use gets a new password, is published in Key Vault, the
-- consumers roll onto it, then the other's password is retired): no window.
local DEFAULT_DEPLOYMENTS = "gateway,document-service"

local function admin_mode(ctx, args, kv, k)
  local crypto = require("opsh.crypto")
  local time = require("opsh.time")
  local dryrun = require("opsh.dryrun")
  local rotate = require("opsh.ops.rotate")
  local pgarm = require("opsh.azure").postgres
  local env = ctx.env
  local server, user = env.postgres.server, env.postgres.admin_user
  -- the one mode with an outage window: asked here, so --app (none) runs without a question
  if not ctx.dry_run then
    ctx.confirm(string.format("change the admin password of %s? new connections with the old one fail until %s "
      .. "have rolled", server, table.concat(args.deployments, ", ")))
  end
  local old = ctx.step("read the current password from Key Vault", function()
    return kv:get("database-password")
  end, {target = "keyvault:database-password"})
  local new = crypto.random_password()
  local t0
  ctx.step("set the new admin password on the server", function()
    t0 = time.monotonic()
    pgarm.set_admin_password{env = env, password = new}
  end, {target = server, undo = function()
    pgarm.set_admin_password{env = env, password = old}
    ctx.log.warn("restored the previous admin password of " .. server .. " (from Key Vault)")
  end})
  if not dryrun.active() then
    ctx.step("verify a login with the new password", function() return rotate.verify(env, user, new) end,
      {target = server})
  end
  ctx.step("store it in Key Vault", function() kv:set("database-password", new) end,
    {target = "keyvault:database-password", undo = function() kv:set("database-password", old) end})
  ctx.step("restart the consumers", function() rotate.restart(k, args.deployments) end,
    {target = table.concat(args.deployments, ",")})
  local window
  if not dryrun.active() then
    ctx.step("wait for the consumers' rollout", function() rotate.wait(k, args.deployments, args.timeout) end,
      {target = table.concat(args.deployments, ",")})
    window = time.monotonic() - t0
    ctx.log.warn(string.format("admin password window: %.1f s between the server change and the consumers' "
      .. "rollout complete (new connections with the old password failed meanwhile)", window))
  end
  ctx.out({{mode = "admin", server = server, user = user, deployments = table.concat(args.deployments, ","),
    window_seconds = window and math.floor(window * 10 + 0.5) / 10 or "-"}},
    {columns = {"mode", "server", "user", "deployments", "window_seconds"}})
end

local function app_mode(ctx, args, kv, k)
  local opsh = require("opsh")
  local crypto = require("opsh.crypto")
  local dryrun = require("opsh.dryrun")
  local rotate = require("opsh.ops.rotate")
  local env = ctx.env
  local group = args.app
  rotate.ident(group)
  local a, b = group .. "_a", group .. "_b"
  local admin <close> = rotate.admin(env)
  if not rotate.role_exists(admin, group) then
    opsh.raise("usage", "role '" .. group .. "' does not exist on " .. env.postgres.server
      .. ": --app names the group role holding the application's grants")
  end
  for _, r in ipairs({a, b}) do
    ctx.step("login role " .. r .. " (member of " .. group .. ")", function()
      rotate.ensure_login_role(admin, r, group)
    end, {target = env.postgres.server .. "/" .. r})
  end
  local current = ctx.step("find the role in use (Key Vault database-app-user)", function()
    local v = kv:get("database-app-user", {missing = "nil"})
    if v == nil then return nil end
    if crypto.constant_time_equal(v, a) then return a end
    if crypto.constant_time_equal(v, b) then return b end
    opsh.raise("config", "Key Vault database-app-user names neither " .. a .. " nor " .. b)
  end, {target = "keyvault:database-app-user"})
  local nextr = current == a and b or a
  local new = crypto.random_password()
  local published = false
  ctx.step("set a new password on " .. nextr, function() rotate.set_password(admin, nextr, new) end,
    {target = env.postgres.server .. "/" .. nextr, undo = function()
      -- once published, a consumer may already use it: both roles stay valid (the previous is not retired)
      if published then
        ctx.log.warn(nextr .. " keeps its new password (it was published); " .. (current or "no role")
          .. " was not retired")
      else
        local c <close> = rotate.admin(env)   -- the run's admin connection is closed by the time undo runs
        rotate.set_password(c, nextr, nil)
      end
    end})
  if not dryrun.active() then
    ctx.step("verify a login as " .. nextr, function() return rotate.verify(env, nextr, new) end,
      {target = env.postgres.server .. "/" .. nextr})
  end
  local before = current and {kv:get("database-app-password", {missing = "nil"})} or {}
  -- the password carries its user as a tag: a consumer reading that one secret gets a matching pair
  ctx.step("publish " .. nextr .. " in Key Vault", function()
    kv:set("database-app-password", new, {tags = {user = nextr}})
    kv:set("database-app-user", nextr)
    published = true
  end, {target = "keyvault:database-app-user,database-app-password", undo = function()
    if current and before[1] then
      kv:set("database-app-password", before[1], {tags = {user = current}})
      kv:set("database-app-user", current)
    end
  end})
  ctx.step("restart the consumers", function() rotate.restart(k, args.deployments) end,
    {target = table.concat(args.deployments, ",")})
  if not dryrun.active() then
    ctx.step("wait for the consumers' rollout", function() rotate.wait(k, args.deployments, args.timeout) end,
      {target = table.concat(args.deployments, ",")})
  end
  if current then
    ctx.step("retire " .. current .. "'s password", function() rotate.set_password(admin, current, nil) end,
      {target = env.postgres.server .. "/" .. current})
  end
  ctx.out({{mode = "app", in_use = nextr, retired = current or "-",
    deployments = table.concat(args.deployments, ",")}}, {columns = {"mode", "in_use", "retired", "deployments"}})
end

return {
  description = "Rotate the database password: --admin (runbook: Database Password Rotation) or --app ROLE "
    .. "(alternating users ROLE_a/ROLE_b, no window)",
  categories = {"security"},
  flags = {"mutating"},
  args = {
    admin = {help = "rotate the server's admin password (the consumers fail new connections until they roll)",
      type = "boolean", default = false},
    app = {help = "rotate the application credentials of this group role (login roles ROLE_a / ROLE_b)"},
    deployments = {help = "the consumers to restart", type = "list", default = DEFAULT_DEPLOYMENTS},
    timeout = {help = "seconds to wait for each rollout", type = "integer", default = 600},
  },
  examples = {"opsh --env production run rotate-db-password --app legal_app",
    "opsh --env production run rotate-db-password --admin"},
  run = function(ctx, args)
    local opsh = require("opsh")
    if args.admin == (args.app ~= nil) then opsh.raise("usage", "give exactly one of --admin and --app ROLE") end
    local env = ctx.env
    ctx.lock("postgres:" .. env.postgres.server, {wait = 60})
    local kv = require("opsh.azure").keyvault(env)
    local k = require("opsh.k8s").client{namespace = env.namespace}
    if args.admin then admin_mode(ctx, args, kv, k) else app_mode(ctx, args, kv, k) end
  end,
}
