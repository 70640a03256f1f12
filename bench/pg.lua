-- bench/pg.lua: opsh.pg against pgbench on the same throwaway server, in the same run.
--   ./build/opsh bench/pg.lua [round_trips=10000] [clients=50] [per_client=1000]
-- 1. `SELECT 1` round trips on one connection: conn:exec (simple protocol) and conn:query
--    (extended protocol, what scripts use) vs `pgbench -M simple -c 1 -t N -f select1.sql`
--    (and -M extended, the same protocol as conn:query, for reference).
-- 2. 50 connections each running 1k queries at once vs `pgbench -M simple -c 50 -j 2 -t 1000`.
-- Not run by the tests. Figures vary with the machine's load: compare the ratios.
local opsh = require("opsh")
local core = require("opsh._core")
local pg = require("opsh.pg")
local launcher = require("opsh.twin.postgres")

local N = tonumber(arg and arg[1]) or 10000
local CLIENTS = tonumber(arg and arg[2]) or 50
local PER_CLIENT = tonumber(arg and arg[3]) or 1000

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error(cmd .. "\n" .. out, 0) end
  return out
end

local tmp = sh("mktemp -d /tmp/opsh-pg-bench-XXXXXX"):gsub("%s+$", "")
sh("chmod 755 " .. tmp)
local server = launcher.start({dir = tmp .. "/server"})

local function pgbench(clients, transactions, protocol)
  local script = tmp .. "/select1.sql"
  local f = assert(io.open(script, "w"))
  f:write("SELECT 1;\n")
  f:close()
  local passfile = tmp .. "/pgpass"
  f = assert(io.open(passfile, "w"))
  f:write(string.format("127.0.0.1:%d:*:%s:%s\n", server.port, server.user, core.reveal(server.password)))
  f:close()
  sh("chmod 600 " .. passfile)
  local bin = sh("pg_config --bindir"):gsub("%s+$", "")
  local out = sh(string.format("PGPASSFILE=%s PGSSLMODE=disable %s/pgbench -n -M %s -f %s -c %d -j %d -t %d "
    .. "-h 127.0.0.1 -p %d -U %s %s", passfile, bin, protocol or "simple", script, clients, math.min(clients, 2), transactions,
    server.port, server.user, server.dbname))
  return tonumber(out:match("tps = ([%d%.]+) %(without initial connection time%)")), out
end

local function rate(n, fn)
  local t0 = core.hrtime()
  fn()
  return n / (core.hrtime() - t0)
end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

-- the machine is shared: alternate the contenders over ROUNDS and compare medians
local ROUNDS = tonumber(os.getenv("ROUNDS")) or 5

local ok, err = pcall(function()
  local params = server.connect_params({sslmode = "disable"})
  local c <close> = pg.connect(params)
  for _ = 1, 200 do c:query("SELECT 1") end   -- warm up
  local q, e, b, bx = {}, {}, {}, {}
  for r = 1, ROUNDS do
    q[r] = rate(N, function() for _ = 1, N do c:query("SELECT 1") end end)
    e[r] = rate(N, function() for _ = 1, N do c:exec("SELECT 1") end end)
    b[r] = pgbench(1, N)
    bx[r] = pgbench(1, N, "extended")
  end
  local q_rate, e_rate, bench_rate, bench_x = median(q), median(e), median(b), median(bx)
  print(string.format("SELECT 1 x %d, one connection (median of %d rounds):", N, ROUNDS))
  print(string.format("  opsh conn:query   %9.0f q/s   ratio %.2f", q_rate, q_rate / bench_rate))
  print(string.format("  opsh conn:exec    %9.0f q/s   ratio %.2f", e_rate, e_rate / bench_rate))
  print(string.format("  pgbench -M simple %9.0f q/s", bench_rate))
  print(string.format("  pgbench -M extended %7.0f q/s   (the protocol conn:query uses: query/this %.2f)",
    bench_x, q_rate / bench_x))

  local ids = {}
  for i = 1, CLIENTS do ids[i] = i end
  local total = CLIENTS * PER_CLIENT
  local m, bm = {}, {}
  for r = 1, ROUNDS do
    local conns = opsh.parallel(ids, function() return pg.connect(params) end)
    m[r] = rate(total, function()
      opsh.parallel(ids, function(i)
        local conn = conns[i]
        for _ = 1, PER_CLIENT do conn:query("SELECT 1") end
      end)
    end)
    for _, conn in ipairs(conns) do conn:close() end
    bm[r] = pgbench(CLIENTS, PER_CLIENT)
  end
  local many_rate, bench_many = median(m), median(bm)
  print(string.format("%d connections x %d queries at once (median of %d rounds):", CLIENTS, PER_CLIENT, ROUNDS))
  print(string.format("  opsh (one process) %9.0f q/s   ratio %.2f", many_rate, many_rate / bench_many))
  print(string.format("  pgbench -j 2       %9.0f q/s", bench_many))
end)
server.stop()
sh("rm -rf " .. tmp)
if not ok then error(err, 0) end
