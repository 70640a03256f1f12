-- bench/azure_throttle.lua: ARM's throttling budget, opsh against the twin's real one.
--   OPSH_PATH=$PWD build/opsh bench/azure_throttle.lua [reads=500] [burst=50] [rate=10]
-- A twin with only its API (ARM) is started in a temp dir, its read budget set to `burst` tokens
-- refilled at `rate` per second; 500 GETs of an agent pool go through opsh.parallel (limit 50),
-- once with the client's budget (paced by x-ms-ratelimit-remaining-subscription-reads and the
-- refill it learns) and once with the budget ignored (429 + Retry-After only). The budget allows
-- (reads - burst) / rate seconds. Without the budget each call may retry its 429s up to 100 times, so
-- the run ends and its time and 429 count can be compared.
local opsh = require("opsh")
local fs = require("opsh.fs")
local twin = require("opsh.twin")
local azure = require("opsh.azure")
local core = require("opsh._core")

local N = tonumber(arg and arg[1]) or 500
local BURST = tonumber(arg and arg[2]) or 50
local RATE = tonumber(arg and arg[3]) or 10

local dir = fs.tmpdir("opsh-bench-azure")
local ok, err = pcall(function()
  twin.up({dir = dir, without = {"postgres", "redis", "azurite", "registry"}})
  local env = twin.environment(dir)
  local store = twin.client(dir)
  local items = {}
  for i = 1, N do items[i] = i end
  local function run(label, paced, n)
    n = n or 0
    store:put("arm.knobs", "knobs", {budget = {reads = BURST + n, reads_per_second = RATE}})
    opsh.sleep(BURST / RATE + 1)        -- the twin's bucket full again
    azure.reset()
    local arm = azure.arm(env, {budget = paced, http_retries = not paced and 100 or nil})
    azure.credential(env):token("arm")  -- the token is not what is measured
    local t0 = core.hrtime()
    local okp, perr = pcall(opsh.parallel, items, function() return azure.aks.pool{env = env, pool = "usernodepool"} end,
      {limit = 50})
    if not okp then
      print(label .. ": " .. core.describe(perr))
      print(require("opsh.json").encode(arm.budget:stats()))
      return
    end
    local elapsed = core.hrtime() - t0
    local allowed = (N - (BURST + n)) / RATE
    local st = arm.budget:stats()
    print(string.format("%-16s %d GETs in %6.2f s; budget allows %6.2f s (%+.1f %%); 429 received: %d",
      label, N, elapsed, allowed, (elapsed / allowed - 1) * 100, st.throttled))
  end
  run("budget", true, 0)
  run("budget ignored", false, 1)
end)
twin.down({dir = dir})
fs.rmtree(dir)
if not ok then error(err, 0) end
