-- rotate-redis-key: the runbook's Redis Key Rotation in the zero-downtime order. The runbook regenerates the
-- primary key while the consumers still use it, so their new connections fail until they restart. Both
-- access keys are valid at once, so: find the key the consumers use (Key Vault's secret compared with the
-- cache's keys), regenerate the OTHER one, publish it in Key Vault, restart the consumers onto it, and only
-- then regenerate the key they no longer use.
local SECRET = "redis-primary-key"
local OTHER = {Primary = "Secondary", Secondary = "Primary"}

-- a task opening a new connection every 100 ms with the key Key Vault holds at that moment, as a consumer
-- would; stop() -> attempts, failures
local function probe(env, vault)
  local opsh = require("opsh")
  local redis = require("opsh.redis")
  local running, attempts, failures = true, 0, 0
  local task = opsh.spawn(function()
    while running do
      attempts = attempts + 1
      local ok = pcall(function()
        local r <close> = redis.connect({host = env.redis.host, port = env.redis.port, tls = env.redis.tls,
          ca = env.redis.ca, password = (vault:get(SECRET)), timeout = 5})
        r:call("PING")
      end)
      if not ok then failures = failures + 1 end
      opsh.sleep(0.1)
    end
  end)
  return function()
    if running then
      running = false
      task:wait()
    end
    return attempts, failures
  end
end

return {
  description = "Rotate the Redis cache's access keys without downtime: the unused key first, consumers "
    .. "switched, then the other (runbook: Redis Key Rotation)",
  categories = {"security"},
  flags = {"destructive"},
  args = {
    deployments = {help = "comma-separated deployments that use the key (restarted onto the new key)",
      default = "gateway"},
    timeout = {help = "how long to wait for each rollout", type = "duration", default = "10m"},
    probe = {help = "open a connection every 100 ms with Key Vault's key during the rotation; report failures",
      type = "boolean"},
  },
  examples = {"opsh --env production run rotate-redis-key",
    "opsh --env production run rotate-redis-key --deployments=gateway,web --probe"},
  run = function(ctx, args)
    local opsh = require("opsh")
    local azure = require("opsh.azure")
    local dryrun = require("opsh.dryrun").active()
    local env = ctx.env
    local name = env.redis and env.redis.name
    if not name then opsh.raise("usage", "the environment has no redis.name") end
    local deployments = {}
    for d in tostring(args.deployments):gmatch("[^,%s]+") do deployments[#deployments + 1] = d end
    if #deployments == 0 then opsh.raise("usage", "--deployments names no deployment") end

    ctx.lock("redis:" .. name, {wait = 60})
    local vault = azure.keyvault(env)
    local in_use = ctx.step("find the key the consumers use", function()
      local used = vault:get(SECRET)
      local keys = azure.redis.keys{env = env}
      if used == keys.primaryKey then return "Primary" end
      if used == keys.secondaryKey then return "Secondary" end
      opsh.raise("conflict", string.format("Key Vault's %s is neither key of %s: the consumers' key is unknown, "
        .. "refusing to regenerate either", SECRET, name))
    end, {target = name})
    local spare = OTHER[in_use]
    local stop = args.probe and not dryrun and probe(env, vault) or nil
    local _ <close> = setmetatable({}, {__close = function() if stop then stop() end end})

    local fresh = ctx.step("regenerate the " .. spare .. " key (not in use)", function()
      local after = azure.redis.regenerate_key{env = env, key = spare}
      return after and after[spare:lower() .. "Key"]
    end, {destructive = true, target = name})
    ctx.step("publish the " .. spare .. " key in Key Vault (" .. SECRET .. ")", function()
      local old = vault:get(SECRET)
      vault:set(SECRET, fresh or opsh.secret("planned"), {content_type = "text/plain"})
      return old
    end, {target = SECRET, undo = function(old) vault:set(SECRET, old, {content_type = "text/plain"}) end})
    local k = require("opsh.k8s").client{namespace = env.namespace}
    for _, d in ipairs(deployments) do
      ctx.step("restart " .. d .. " onto the new key", function()
        k:rollout_restart(d)
        if not dryrun then k:rollout_status(d, {timeout = args.timeout}) end
      end, {target = d})
    end
    ctx.step("regenerate the " .. in_use .. " key (no longer in use)", function()
      azure.redis.regenerate_key{env = env, key = in_use}
    end, {destructive = true, target = name})
    local attempts, failures
    if stop then attempts, failures = stop() end
    ctx.out({{cache = name, in_use = dryrun and in_use or spare, was = in_use,
      restarted = table.concat(deployments, ","), probes = attempts, failed = failures}},
      {columns = {"cache", "in_use", "was", "restarted", "probes", "failed"}})
  end,
}
