-- opsh.proc: concurrent children. 200 x `sleep 0.2` at once, then 1,000 x `true` with 50 at a
-- time, each against xargs -P doing the same in the same run.  Run: opsh bench/proc.lua
local opsh = require("opsh")
local proc = require("opsh.proc")
local core = require("opsh._core")

local function timed(fn)
  local t0 = core.hrtime()
  fn()
  return core.hrtime() - t0
end

local function xargs(n, parallel, cmd)
  return timed(function()
    proc.run{argv = {"sh", "-c", string.format("seq %d | xargs -P %d -I{} %s", n, parallel, cmd)}}
  end)
end

local function opsh_run(n, parallel, argv)
  local items = {}
  for i = 1, n do items[i] = i end
  return timed(function()
    opsh.parallel(items, function() proc.run{argv = argv} end, {limit = parallel})
  end)
end

local cases = {
  {"200 x sleep 0.2, all at once", 200, 200, {"sleep", "0.2"}, "sleep 0.2"},
  {"1000 x true, 50 at a time", 1000, 50, {"true"}, "true"},
}
for _, c in ipairs(cases) do
  local name, n, par, argv, cmd = table.unpack(c)
  local ours = opsh_run(n, par, argv)
  local peer = xargs(n, par, cmd)
  print(string.format("%-30s opsh %.3f s   xargs -P %.3f s   ratio (xargs/opsh) %.2f", name, ours, peer, peer / ours))
end
