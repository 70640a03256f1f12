-- opsh.pg against a real PostgreSQL 15 started here (opsh.twin.postgres) on 127.0.0.1.
local opsh = require("opsh")
local core = require("opsh._core")
local pg = require("opsh.pg")
local launcher = require("opsh.twin.postgres")
local fs = require("opsh.fs")
local proc = require("opsh.proc")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

describe("opsh.pg", function()
  local tmp, certs, server

  local function params(extra)
    return server.connect_params(extra)
  end

  setup(function()
    tmp = fs.tmpdir("opsh-pg-spec-")
    fs.chmod(tmp, "0755")   -- the postgres user (when root) walks through it
    certs = S.server_certs(tmp)
    server = launcher.start({
      dir = tmp .. "/primary", tls = {cert = certs.cert, key = certs.key, ca = certs.ca},
      wal_archive = true,
      seed_sql = [[
        CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, doc jsonb);
        CREATE TABLE numbers (n int8);
      ]],
    })
  end)

  teardown(function()
    if server then server.stop() end
    if tmp then fs.rmtree(tmp) end
  end)

  it("passes $n parameters and types the results by column type", function()
    local c <close> = pg.connect(params())
    local r = c:query([[SELECT $1::int AS i, $2::text AS t, $3::bool AS b, $4::float8 AS f, $5::int AS nothing,
        $6::jsonb AS doc, $7::int8 AS small, 9007199254740993::int8 AS big, -9007199254740992::int8 AS edge,
        12345678901234567890.5::numeric AS n, '1.5'::float4 AS f4,
        '2024-05-01 12:00:00.25+02'::timestamptz AS tstz, '2024-05-01 12:00:00'::timestamp AS ts,
        '2024-05-01'::date AS d, NULL::text AS null_col, $8::text AS null_param]],
      42, "it's \"quoted\"; DROP TABLE items", true, 2.5, nil, {a = {1, 2}, b = "x"}, 2^40 | 0, pg.null)
    assert.are.equal(1, #r)
    local row = r[1]
    assert.are.equal(42, row.i)
    assert.is_true(math.type(row.i) == "integer")
    assert.are.equal("it's \"quoted\"; DROP TABLE items", row.t)
    assert.is_true(row.b)
    assert.are.equal(2.5, row.f)
    assert.are.equal(pg.null, row.nothing)
    assert.are.same({1, 2}, row.doc.a)
    assert.are.equal("x", row.doc.b)
    assert.are.equal(2^40 | 0, row.small)
    assert.are.equal("9007199254740993", row.big)
    assert.are.equal(-9007199254740992, row.edge)
    assert.are.equal("12345678901234567890.5", row.n)
    assert.are.equal(1.5, row.f4)
    assert.are.equal("2024-05-01T10:00:00.25Z", row.tstz)
    assert.are.equal("2024-05-01T12:00:00", row.ts)
    assert.are.equal("2024-05-01", row.d)
    assert.are.equal(pg.null, row.null_col)
    assert.are.equal(pg.null, row.null_param)
    assert.are.equal("SELECT 1", r.command)
    assert.are.equal(1, r.affected)
    assert.are.equal("i", r.columns[1].name)
    assert.are.equal(23, r.columns[1].type)
    assert.are.equal("int4", r.columns[1].type_name)
    assert.are.equal("jsonb", r.columns[6].type_name)
    -- the table still exists: the quoted string was a value, never SQL
    assert.are.equal(0, c:query("SELECT count(*)::int AS n FROM items")[1].n)
  end)

  it("reports the command and affected rows, and keeps bytes with NULs intact", function()
    local c <close> = pg.connect(params())
    local r = c:query("INSERT INTO items (id, name) VALUES ($1, $2), ($3, $4), ($5, $6)", 1, "a", 2, "b", 3, "c")
    assert.are.equal("INSERT 0 3", r.command)
    assert.are.equal(3, r.affected)
    r = c:query("UPDATE items SET name = upper(name) WHERE id >= $1", 2)
    assert.are.equal(2, r.affected)
    assert.are.equal("s3cr3t", c:query("SELECT $1::text AS s", opsh.secret("s3cr3t"))[1].s)
    local blob = "a\0b\255\0"
    assert.are.equal(blob, c:query("SELECT $1::bytea AS b", blob)[1].b)
    r = c:exec("DELETE FROM items; INSERT INTO items (id, name) VALUES (10, 'x')")
    assert.are.equal("INSERT 0 1", r.command)
    r = c:exec("DO $$ BEGIN RAISE NOTICE 'cleanup of % rows', 3; END $$")
    assert.are.same({"cleanup of 3 rows"}, r.notices)
    assert.is_nil(c:query("SELECT 1").notices)
    local ok, err = pcall(c.exec, c, "SELECT $1", 1)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    c:exec("DELETE FROM items")
  end)

  it("raises a syntax error with its SQLSTATE and position, and the connection stays usable", function()
    local c <close> = pg.connect(params())
    local ok, err = pcall(c.query, c, "SELECT 1 FROM items WHER id = 1")
    assert.is_false(ok)
    assert.are.equal("pg", err.kind)
    assert.are.equal("42601", err.sqlstate)
    assert.are.equal("ERROR", err.severity)
    assert.are.equal(26, err.position)
    assert.matches("syntax error at or near \"id\"", err.message)
    assert.matches("42601", tostring(err))
    ok, err = pcall(c.query, c, "INSERT INTO items (id, name) VALUES (1, NULL)")
    assert.are.equal("23502", err.sqlstate)
    assert.are.equal("items", err.table)
    assert.are.equal("name", err.column)
    assert.are.equal(7, c:query("SELECT 7 AS n")[1].n)
  end)

  it("commits a transaction, rolls back and re-raises on error, and nests with savepoints", function()
    local c <close> = pg.connect(params())
    local v = c:transaction(function(tx)
      tx:query("INSERT INTO items (id, name) VALUES (100, 'kept')")
      return "done"
    end)
    assert.are.equal("done", v)
    local ok, err = pcall(c.transaction, c, function(tx)
      tx:query("INSERT INTO items (id, name) VALUES (101, 'lost')")
      opsh.raise("check", "verification failed")
    end)
    assert.is_false(ok)
    assert.are.equal("check", err.kind)
    ok, err = pcall(c.transaction, c, function(tx)
      tx:query("INSERT INTO items (id, name) VALUES (102, 'lost')")
      tx:query("INSERT INTO items (id, name) VALUES (100, 'duplicate')")
    end)
    assert.are.equal("23505", err.sqlstate)
    c:transaction(function(tx)
      tx:query("INSERT INTO items (id, name) VALUES (103, 'outer')")
      local ok2 = pcall(tx.transaction, tx, function(inner)
        inner:query("INSERT INTO items (id, name) VALUES (104, 'inner')")
        error("inner fails")
      end)
      assert.is_false(ok2)
    end)
    local rows = c:query("SELECT id FROM items WHERE id >= 100 ORDER BY id")
    assert.are.same({100, 103}, {rows[1].id, rows[2].id})
    assert.are.equal(2, #rows)
    assert.are.equal("idle", c:info().transaction)
    c:exec("DELETE FROM items")
  end)

  it("waits for a free pooled connection and raises a structured error after the deadline", function()
    local pool = pg.pool(params({size = 2, acquire_timeout = 0.2}))
    local a, b = pool:acquire(), pool:acquire()
    local ok, err = pcall(pool.acquire, pool)
    assert.is_false(ok)
    assert.are.equal("pg_pool", err.kind)
    assert.are.equal(2, err.size)
    -- a waiter gets the connection another task releases
    local releaser = opsh.spawn(function() opsh.sleep(0.05); pool:release(a) end)
    local c = pool:acquire()
    releaser:wait()
    assert.are.equal(a, c)
    assert.are.equal(1, c:query("SELECT 1 AS one")[1].one)
    -- a broken connection is discarded, not handed out again
    c:close()
    pool:release(c)
    pool:release(b)
    local n = pool:with(function(conn) return conn:query("SELECT 5 AS n")[1].n end)
    assert.are.equal(5, n)
    local s = pool:stats()
    assert.are.equal(0, s.busy)
    assert.is_true(s.open <= 2)
    pool:close()
    -- a closed pool says so, with the fields every pg_pool error has
    err = S.catch(pool.acquire, pool)
    assert.are.equal("pg_pool", err.kind)
    assert.matches("closed", err.message)
    assert.are.equal(2, err.size)
    assert.are.equal(0.2, err.timeout)
  end)

  it("delivers notifications between two connections", function()
    local listener <close> = pg.connect(params())
    local sender <close> = pg.connect(params())
    listener:listen("deploys")
    local got = {}
    local t = opsh.spawn(function()
      for n in listener:notifications({timeout = 5}) do
        got[#got + 1] = n
        if #got == 2 then break end
      end
    end)
    sender:notify("deploys", "web v2")
    sender:query("NOTIFY deploys, 'gateway v3'")
    t:wait()
    assert.are.equal(2, #got)
    assert.are.equal("deploys", got[1].channel)
    assert.are.equal("web v2", got[1].payload)
    assert.are.equal("gateway v3", got[2].payload)
    assert.are.equal(sender:info().backend_pid, got[1].pid)
    -- nothing more: the iterator ends when the time is up
    local more = {}
    for n in listener:notifications({timeout = 0.05}) do more[#more + 1] = n end
    assert.are.equal(0, #more)
  end)

  it("streams COPY TO STDOUT to a file and a callback, and restores with COPY FROM STDIN", function()
    local c <close> = pg.connect(params())
    c:query("INSERT INTO numbers SELECT g FROM generate_series(1, 20000) g")
    local file = tmp .. "/numbers.copy"
    local res = c:copy_out("COPY numbers TO STDOUT", {file = file})
    assert.are.equal(20000, res.affected)
    local text = fs.read(file)
    local lines = select(2, text:gsub("\n", ""))
    assert.are.equal(20000, lines)
    assert.are.equal(#text, res.bytes)
    local chunks, bytes = 0, 0
    res = c:copy_out("COPY (SELECT n FROM numbers WHERE n <= 100) TO STDOUT WITH (FORMAT csv)", {
      on_data = function(data) chunks = chunks + 1; bytes = bytes + #data end})
    assert.are.equal(100, res.affected)
    assert.is_true(chunks >= 1)
    assert.are.equal(bytes, res.bytes)
    c:exec("CREATE TABLE numbers_restored (n int8)")
    res = c:copy_in("COPY numbers_restored FROM STDIN", {file = file})
    assert.are.equal(20000, res.affected)
    assert.are.equal(200010000, tonumber(c:query("SELECT sum(n) AS s FROM numbers_restored")[1].s))
    -- bad data: the COPY fails with the server's error and the connection stays usable
    local ok, err = pcall(c.copy_in, c, "COPY numbers_restored FROM STDIN", {source = coroutine.wrap(function()
      coroutine.yield("1\n2\n")
      coroutine.yield("not a number\n")
    end)})
    assert.is_false(ok)
    assert.are.equal("22P02", err.sqlstate)
    -- an error in the callback aborts the COPY and leaves the connection usable
    ok, err = pcall(c.copy_out, c, "COPY numbers TO STDOUT", {on_data = function() error("sink full") end})
    assert.is_false(ok)
    assert.matches("sink full", tostring(err))
    assert.are.equal(20000, c:query("SELECT count(*)::int AS n FROM numbers_restored")[1].n)
    -- the wrong direction is refused and the COPY ended on the server
    ok, err = pcall(c.copy_out, c, "COPY numbers_restored FROM STDIN", {on_data = print})
    assert.are.equal("usage", err.kind)
    ok, err = pcall(c.copy_in, c, "COPY numbers TO STDOUT", {source = function() end})
    assert.are.equal("usage", err.kind)
    assert.are.equal(20000, c:query("SELECT count(*)::int AS n FROM numbers_restored")[1].n)
    -- COPY through query() is refused instead of leaving the connection in COPY mode
    ok, err = pcall(c.query, c, "COPY numbers TO STDOUT")
    assert.are.equal("usage", err.kind)
    assert.are.equal(1, c:query("SELECT 1 AS one")[1].one)
    c:exec("DROP TABLE numbers_restored; DELETE FROM numbers")
  end)

  it("cancels a running query when the task is cancelled and keeps the connection usable", function()
    local c <close> = pg.connect(params())
    local ok, err = opsh.try(opsh.timeout, 0.2, function() return c:query("SELECT pg_sleep(10)") end)
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.are.equal(3, c:query("SELECT 3 AS n")[1].n)
    -- the server did cancel it (rather than the connection waiting 10 s for it)
    assert.matches("canceling statement due to user request", fs.read(server.log))
    -- a cancelled task inside a transaction leaves no transaction behind
    ok = opsh.try(opsh.timeout, 0.2, function()
      c:transaction(function(tx)
        tx:query("INSERT INTO items (id, name) VALUES (500, 'never')")
        tx:query("SELECT pg_sleep(10)")
      end)
    end)
    assert.is_false(ok)
    assert.are.equal(0, c:query("SELECT count(*)::int AS n FROM items WHERE id = 500")[1].n)
    assert.are.equal("idle", c:info().transaction)
  end)

  it("applies statement_timeout and refuses a second concurrent query on one connection", function()
    local c <close> = pg.connect(params({statement_timeout = 0.1}))
    local ok, err = pcall(c.query, c, "SELECT pg_sleep(5)")
    assert.is_false(ok)
    assert.are.equal("57014", err.sqlstate)
    c:set_statement_timeout(0)
    local slow = opsh.spawn(function() return c:query("SELECT pg_sleep(0.2), 1 AS one")[1].one end)
    opsh.sleep(0.02)
    ok, err = pcall(c.query, c, "SELECT 2")
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("busy", err.message)
    assert.are.equal(1, slow:wait())
  end)

  it("closes idempotently, through <close>, and raises on a closed connection", function()
    local c = pg.connect(params())
    do
      local scoped <close> = pg.connect(params())
      assert.are.equal("idle", scoped:info().state)
    end
    c:close()
    c:close()
    assert.are.equal("closed", c:info().state)
    local ok, err = pcall(c.query, c, "SELECT 1")
    assert.is_false(ok)
    assert.are.equal("pg", err.kind)
    assert.matches("closed", err.message)
  end)

  it("verifies the server certificate against the right CA and rejects another CA", function()
    local c <close> = pg.connect(params({sslmode = "verify-full", sslrootcert = certs.ca}))
    assert.is_true(c:info().ssl)
    local ok, err = pcall(pg.connect, params({sslmode = "verify-full", sslrootcert = certs.other_ca}))
    assert.is_false(ok)
    assert.are.equal("pg_connect", err.kind)
    assert.matches("certificate verify failed", err.message)
    assert.are.equal(server.port, err.port)
  end)

  it("reports a wrong password as a structured error that never contains it", function()
    for _, pw in ipairs({"Wr0ng-Passw0rd-4711", opsh.secret("Wr0ng-Passw0rd-4711")}) do
      local ok, err = pcall(pg.connect, params({password = pw}))
      assert.is_false(ok)
      assert.are.equal("pg_connect", err.kind)
      assert.matches("password authentication failed", err.message)
      assert.are.equal("127.0.0.1", err.host)
      assert.are.equal(server.port, err.port)
      assert.are.equal("opsh", err.user)
      for k, v in pairs(err) do
        assert.is_nil(tostring(v):find("Wr0ng-Passw0rd-4711", 1, true), "password in field " .. k)
      end
      assert.is_nil(tostring(err):find("Wr0ng", 1, true))
    end
    -- a password in a URI stays out of the error as well
    local uri = string.format("postgresql://opsh:Wr0ng-Passw0rd-4711@127.0.0.1:%d/opsh?sslrootcert=%s", server.port,
      certs.ca)
    local ok, err = pcall(pg.connect, uri)
    assert.is_false(ok)
    assert.is_nil(tostring(err):find("Wr0ng", 1, true))
  end)

  it("connects with a URI, a conninfo string and overrides", function()
    local pw = core.reveal(server.password)
    -- no sslmode: verify-full, against the sslrootcert in the URI
    local uri = string.format("postgresql://opsh@127.0.0.1:%d/opsh?sslrootcert=%s", server.port, certs.ca)
    local c <close> = pg.connect(uri, {password = server.password, application_name = "spec"})
    assert.is_true(c:info().ssl)
    assert.are.equal("spec", c:query("SELECT current_setting('application_name') AS a")[1].a)
    local d <close> = pg.connect(string.format("host=127.0.0.1 port=%d user=opsh dbname=opsh password=%s sslrootcert=%s",
      server.port, pw, certs.ca))
    assert.is_true(d:info().ssl)
    assert.are.equal("UTC", d:query("SELECT current_setting('TimeZone') AS tz")[1].tz)
    local ok, err = pcall(pg.connect, {host = "127.0.0.1", bogus = 1})
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("bad argument #1 to 'pg.connect' %(unknown option 'bogus'%)", err.message)
  end)

  it("gives up connecting after connect_timeout when the server never answers", function()
    -- a listener that lets the TCP connection in (backlog) and never says a word; it exits
    -- on its own after 20 s if the kill below is never reached
    local silent = proc.spawn{argv = {"python3", "-c", "import socket, time\n"
      .. "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
      .. "print(s.getsockname()[1], flush=True)\n"
      .. "time.sleep(20)"}, stdout = "pipe"}
    local port = tonumber(silent:lines()())
    local ok, err = pcall(pg.connect, {host = "127.0.0.1", port = port, user = "x", connect_timeout = 0.2})
    silent:stop()
    assert.is_false(ok)
    assert.are.equal("pg_connect", err.kind)
    assert.is_true(err.timeout)
    assert.are.equal(port, err.port)
    assert.matches("timed out after 0.2 s", err.message)
  end)

  it("tries the next host when one refuses, watching the new socket", function()
    local c <close> = pg.connect(params({host = "127.0.0.1,127.0.0.1", port = "1," .. server.port}))
    assert.are.equal(server.port, c:info().port)
    assert.are.equal(1, c:query("SELECT 1 AS one")[1].one)
  end)

  it("discards a pooled connection the server terminated and opens a new one", function()
    local pool = pg.pool(params({size = 1, acquire_timeout = 5}))
    local pid = pool:with(function(conn) return conn:info().backend_pid end)
    local admin <close> = pg.connect(params())
    assert.is_true(admin:query("SELECT pg_terminate_backend($1) AS t", pid)[1].t)
    S.poll(function() return #admin:query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid) end,
      function(n) return n == 0 end)   -- the backend exits soon after the signal
    local pid2, one = pool:with(function(conn)
      return conn:info().backend_pid, conn:query("SELECT 1 AS one")[1].one
    end)
    assert.are_not.equal(pid, pid2)
    assert.are.equal(1, one)
    pool:close()
  end)

  it("closes a connection whose connecting task was cancelled, and one left to the collector", function()
    local t = opsh.spawn(function() return pg.connect(params()) end)
    opsh.yield()
    t:cancel()
    assert.are.equal("cancelled", t:status())
    do local _ = pg.connect(params()) end
    collectgarbage()
    collectgarbage()
    local admin <close> = pg.connect(params())
    local n = S.poll(function()
      return admin:query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")[1].n
    end, function(v) return v == 1 end)
    assert.are.equal(1, n)
  end)

  it("runs queries on 50 connections at once", function()
    local ids = {}
    for i = 1, 50 do ids[i] = i end
    local active, peak, arrived = 0, 0, 0
    local res = opsh.parallel(ids, function(i)
      local c <close> = pg.connect(params())
      active = active + 1
      peak = math.max(peak, active)
      local sum = 0
      for j = 1, 20 do sum = sum + c:query("SELECT $1::int * $2::int AS p", i, j)[1].p end
      -- a barrier: every task holds its connection, mid-query, until all 50 have one
      arrived = arrived + 1
      S.wait_until(function() return arrived == 50 end, "all 50 connections", 30)
      c:query("SELECT pg_sleep(0.01)")
      active = active - 1
      return sum
    end)
    for i = 1, 50 do assert.are.equal(i * 210, res[i]) end
    assert.are.equal(50, peak)
  end)

  it("starts a streaming replica that follows the primary and refuses writes", function()
    local replica = launcher.start_replica({primary = server, dir = tmp .. "/replica"})
    local ok, err = pcall(function()
      local p <close> = pg.connect(params())
      p:query("INSERT INTO items (id, name) VALUES ($1, $2)", 900, "replicated")
      local r <close> = pg.connect(replica.connect_params())
      assert.is_true(r:query("SELECT pg_is_in_recovery() AS r")[1].r)
      local seen = S.poll(function() return r:query("SELECT name FROM items WHERE id = 900")[1] end,
        function(row) return row end)
      assert.are.equal("replicated", seen and seen.name)
      local ok2, e = pcall(r.query, r, "INSERT INTO items (id, name) VALUES (901, 'x')")
      assert.is_false(ok2)
      assert.are.equal("25006", e.sqlstate)
      local streaming = p:query("SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'")
      assert.are.equal(1, streaming[1].n)
    end)
    replica.stop()
    assert.is_false(fs.exists(replica.data .. "/postmaster.pid"))
    if not ok then error(err, 0) end
  end)
end)
