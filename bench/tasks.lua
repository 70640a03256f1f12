-- 10,000 tasks each sleeping 10 ms: total wall time and memory per task.
-- Target (issue 2): total < 0.5 s, < 2 KB per task.  Run: opsh bench/tasks.lua [N]
local opsh = require("opsh")
local core = require("opsh._core")

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local n = tonumber(arg and arg[1]) or 10000
collectgarbage("collect")
local lua_before, rss_before = collectgarbage("count"), rss_kib()
local started = core.hrtime()
local tasks = {}
for i = 1, n do tasks[i] = opsh.spawn(opsh.sleep, 0.01) end
opsh.sleep(0.001)   -- every task is now suspended in its sleep
local lua_peak, rss_peak = collectgarbage("count"), rss_kib()
for i = 1, n do tasks[i]:wait() end
local elapsed = core.hrtime() - started
print(string.format("%d tasks sleeping 10 ms: %.3f s total (target < 0.5 s)", n, elapsed))
print(string.format("memory per suspended task: %.0f bytes Lua heap, %.0f bytes RSS (target < 2048)",
  (lua_peak - lua_before) * 1024 / n, (rss_peak - rss_before) * 1024 / n))
