-- scale-redis: the runbook's Redis SKU change ("causes downtime, use during maintenance window"), refused
-- outside the environment's maintenance window (maintenance.window, UTC, "Sun 02:00-06:00" or
-- "02:00-06:00" daily) unless --force, and destructive (asks first).
local DAYS = {sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7}

--- in_window(spec, t) -> true when time t (UTC) is inside the window spec; nil, why when the spec is bad
local function in_window(spec, t)
  local day, h1, m1, h2, m2 = spec:match("^%s*(%a*)%s*(%d%d?):(%d%d)%s*%-%s*(%d%d?):(%d%d)%s*$")
  if not h1 then return nil, "maintenance.window must look like 'Sun 02:00-06:00' or '02:00-06:00' (UTC)" end
  local d = os.date("!*t", t)
  if day ~= "" then
    local want = DAYS[day:sub(1, 3):lower()]
    if not want then return nil, "unknown day '" .. day .. "' in maintenance.window" end
    if d.wday ~= want then return false end
  end
  local now, from, to = d.hour * 60 + d.min, tonumber(h1) * 60 + tonumber(m1), tonumber(h2) * 60 + tonumber(m2)
  if from <= to then return now >= from and now < to end
  return now >= from or now < to
end

return {
  description = "Change the Redis cache's SKU, only inside the maintenance window (runbook: Scale Redis Cache)",
  categories = {"scaling"},
  flags = {"destructive"},
  args = {
    sku = {help = "SKU", choices = {"Basic", "Standard", "Premium"}, required = true},
    capacity = {help = "size within the SKU (P2: --sku=Premium --capacity=2)", type = "integer", required = true},
    force = {help = "scale outside the environment's maintenance window", type = "boolean"},
  },
  examples = {"opsh --env production run scale-redis --sku=Premium --capacity=2"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local redis = require("opsh.azure").redis
    local env = ctx.env
    local name = env.redis and env.redis.name
    if not name then opsh.raise("usage", "the environment has no redis.name") end
    local before = ctx.step("read the cache", function()
      local sku = redis.get{env = env}.properties.sku
      return {sku = sku.name, capacity = sku.capacity}
    end, {target = name})
    if before.sku ~= args.sku or before.capacity ~= args.capacity then
      local window = env.maintenance and env.maintenance.window
      local inside, why = false, "the environment names no maintenance window (maintenance.window)"
      if window then
        inside, why = in_window(window, os.time())
        if inside == nil then opsh.raise("config", why) end
        why = "now (" .. os.date("!%a %H:%M", os.time()) .. " UTC) is outside the maintenance window " .. window
      end
      if not inside and not args.force then
        opsh.raise("usage", "refusing to change " .. name .. "'s SKU (it causes downtime): " .. why
          .. "; use --force to do it anyway")
      end
      ctx.lock("redis:" .. name, {wait = 60})
      ctx.step(string.format("SKU %s %d -> %s %d (downtime)", before.sku, before.capacity, args.sku, args.capacity),
        function() redis.update_sku{env = env, sku = args.sku, capacity = args.capacity} end,
        {destructive = true, target = name,
          undo = function() redis.update_sku{env = env, sku = before.sku, capacity = before.capacity} end})
    end
    local sku = require("opsh.dryrun").active() and before or redis.get{env = env}.properties.sku
    ctx.out({{cache = name, sku = sku.sku or sku.name, capacity = sku.capacity,
      was = before.sku .. " " .. before.capacity}}, {columns = {"cache", "sku", "capacity", "was"}})
  end,
}
