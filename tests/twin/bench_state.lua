-- Benchmark of the twin's state (not a spec): `opsh tests/twin/bench_state.lua`.
-- Starts an API-only twin in a temporary directory, then measures mutations/s through the API from
-- one process (one task, and 8 tasks) and from 4 processes, the latency from a PUT to a watcher
-- receiving its event, and, in process, the store's own rate against a snapshot written per change.
local opsh = require("opsh")
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local twin = require("opsh.twin")

local N = tonumber(os.getenv("N") or "") or 400
local root = fs.tmpdir("opsh-twin-bench-")
local dir = root .. "/twin"
local _ <close> = setmetatable({}, {__close = function()
  pcall(twin.down, {dir = dir})
  fs.rmtree(root)
end})
twin.up({dir = dir, without = "postgres,redis,azurite,registry"})
local c = twin.client(dir)

local function rate(label, n, fn)
  local t0 = core.hrtime()
  fn()
  local dt = core.hrtime() - t0
  print(string.format("%-48s %8.0f /s  (%d in %.2f s)", label, n / dt, n, dt))
end

rate("PUT, 1 process, 1 task", N, function()
  for i = 1, N do c:put("bench", "a" .. i, {i = i}) end
end)
rate("PUT, 1 process, 8 tasks", N, function()
  opsh.parallel({1, 2, 3, 4, 5, 6, 7, 8}, function(w)
    for i = 1, N // 8 do c:put("bench", "b" .. w .. "-" .. i, {i = i}) end
  end)
end)
rate("update_state (one key), 1 process", N // 4, function()
  for _ = 1, N // 4 do twin.update_state(dir, function(s) s.ctr.one = (s.ctr.one or 0) + 1 end) end
end)
local code = [[
  local twin, dir, w, n, mode = require("opsh.twin"), ...
  local c = twin.client(dir)
  for i = 1, tonumber(n) do
    if mode == "put" then c:put("bench", "p" .. w .. "-" .. i, {i = i})
    else twin.update_state(dir, function(s) s.ctr.many = (s.ctr.many or 0) + 1 end) end
  end
]]
for _, mode in ipairs({"put", "update"}) do
  local per = mode == "put" and N // 4 or N // 16
  rate(string.format("%s, 4 processes (incl. their start)", mode == "put" and "PUT" or "update_state (one key)"),
    per * 4, function()
      local ps = {}
      for w = 1, 4 do ps[w] = proc.spawn({argv = {runtime.exe(), "-e", code, dir, tostring(w), tostring(per), mode}}) end
      for w = 1, 4 do ps[w]:wait({check = true}) end
    end)
end
assert(twin.client(dir):get("ctr", "many") == (N // 16) * 4, "lost updates")

-- event latency: PUT in one task, the watch stream in another
local sent, lat = {}, {}
local _, v0 = c:read()
local watcher = opsh.spawn(function()
  c:watch({collection = "lat", from = v0}, function(ev)
    lat[#lat + 1] = core.hrtime() - sent[ev.key]
    if #lat == 100 then return false end
  end)
end)
for i = 1, 100 do
  sent["k" .. i] = core.hrtime()
  c:put("lat", "k" .. i, {i = i})
  opsh.sleep(0.002)
end
watcher:wait(30)
table.sort(lat)
print(string.format("%-48s p50 %.2f ms, p90 %.2f ms, max %.2f ms", "event latency (PUT sent -> watcher got it)",
  lat[50] * 1000, lat[90] * 1000, lat[100] * 1000))

-- in process: the store's log + fsync against a snapshot rewritten (write_atomic) per change
local store_mod = require("opsh.twin.store")
for _, size in ipairs({100, 2000}) do
  local s = store_mod.open(root .. "/s" .. size)
  for i = 1, size do s:txn({{op = "put", collection = "pods", key = "p" .. i, object = {spec = {node = "n1", i = i}}}}) end
  rate(string.format("store put, in process, %d keys (log+fsync)", size), 200, function()
    for i = 1, 200 do s:put("pods", "p" .. (i % size + 1), {spec = {node = "n2", i = i}}) end
  end)
  rate(string.format("snapshot per change, %d keys (write_atomic)", size), 50, function()
    local data = s:raw()
    for _ = 1, 50 do fs.write_atomic(root .. "/snap" .. size .. ".json", json.encode(data)) end
  end)
  s:close()
end
