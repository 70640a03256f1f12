-- opsh.pg's production safety: TLS verified by default, host names resolved off the loop, COPY
-- files through libuv, secrets scrubbed from errors, dry-run enforced by read-only sessions.
-- Against a real PostgreSQL 15 (opsh.twin.postgres) on 127.0.0.1, fake servers written in
-- Python's standard library, and child opsh processes where the loop itself is under test.
local opsh = require("opsh")
local core = require("opsh._core")
local pg = require("opsh.pg")
local dryrun = require("opsh.dryrun")
local launcher = require("opsh.twin.postgres")
local fs = require("opsh.fs")
local proc = require("opsh.proc")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

-- A fake PostgreSQL server: answers "N" (no TLS) to SSLRequest/GSSENCRequest, asks for a clear
-- text password after a startup packet, and prints every byte the client sent (hex) when the
-- client goes away.
local FAKE_PG = [[
import socket, struct
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
conn, _ = s.accept()
conn.settimeout(10)
got = b''
def take(n):
    global got
    buf = b''
    while len(buf) < n:
        d = conn.recv(n - len(buf))
        if not d: raise EOFError
        buf += d
    got += buf
    return buf
try:
    while True:
        n = struct.unpack('!I', take(4))[0]
        body = take(n - 4)
        if struct.unpack('!I', body[:4])[0] in (80877103, 80877104):
            conn.sendall(b'N')
            continue
        break
    conn.sendall(b'R' + struct.pack('!II', 8, 3))
    take(1)
    n = struct.unpack('!I', take(4))[0]
    take(n - 4)
except (EOFError, OSError):
    pass
conn.close()
print(got.hex(), flush=True)
]]

-- A DNS server on <addr>:53 (UDP) that answers A queries with 127.0.0.1 (AAAA with nothing) and
-- names beginning with "missing" with NXDOMAIN, but holds every answer until something connects
-- to its control port (printed first).
local FAKE_DNS = [[
import socket, struct, select, sys
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((sys.argv[1], 53))
ctl = socket.socket(); ctl.bind(('127.0.0.1', 0)); ctl.listen(4)
print(ctl.getsockname()[1], flush=True)
go, held = False, []
def answer(q, addr):
    qid = struct.unpack('!H', q[:2])[0]
    i = 12
    while q[i] != 0: i += q[i] + 1
    qtype = struct.unpack('!H', q[i + 1:i + 3])[0]
    an = b''
    missing = q[13:20] == b'missing'
    if qtype == 1 and not missing:
        an = b'\xc0\x0c' + struct.pack('!HHIH', 1, 1, 60, 4) + bytes([127, 0, 0, 1])
    flags = 0x8183 if missing else 0x8180
    udp.sendto(struct.pack('!HHHHHH', qid, flags, 1, 1 if an else 0, 0, 0) + q[12:i + 5] + an, addr)
while True:
    r, _, _ = select.select([udp, ctl], [], [], 60)
    if not r: break
    if ctl in r:
        c, _ = ctl.accept(); c.close(); go = True
        for q, a in held: answer(q, a)
        held = []
    if udp in r:
        q, a = udp.recvfrom(512)
        print('query', flush=True)
        if go: answer(q, a)
        else: held.append((q, a))
]]

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- every string in err (one level deep) and its one-line form
local function texts(err)
  local out = {tostring(err)}
  for k, v in pairs(err) do out[#out + 1] = tostring(k) .. "=" .. tostring(v) end
  return table.concat(out, "\n")
end

describe("opsh.pg safety", function()
  local tmp, certs, server, exe

  local function params(extra)
    return server.connect_params(extra)
  end

  -- a child opsh running `code`; the server's password reaches it as PGPASSWORD
  local function child(code, env)
    env = env or {}
    env.PGPASSWORD = server.password
    return proc.run({argv = {exe, "-e", code}, env_add = env, check = false, timeout = 30})
  end

  setup(function()
    tmp = fs.tmpdir("opsh-pg-safety-")
    fs.chmod(tmp, "0755")
    local ca = S.ca(tmp, "ca")
    local crt = S.cert(tmp, "server", ca, {subject = "/CN=localhost",
      ext = "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:db.opsh.test\nextendedKeyUsage=serverAuth"})
    certs = {ca = ca.cert, cert = crt.cert, key = crt.key}
    server = launcher.start({dir = tmp .. "/primary", tls = certs,
      seed_sql = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); CREATE ROLE dr_role LOGIN;"})
    exe = S.sh("readlink /proc/$PPID/exe")
  end)

  teardown(function()
    if server then server.stop() end
    if tmp then fs.rmtree(tmp) end
  end)

  describe("TLS", function()
    it("refuses a server without TLS by default and never sends it the password", function()
      local fake = proc.spawn({argv = {"python3", "-c", FAKE_PG}, stdout = "pipe"})
      local lines = fake:lines()
      local port = tonumber(lines())
      local err = S.catch(pg.connect, {host = "127.0.0.1", port = port, user = "u", dbname = "d",
        password = opsh.secret("Fake-Server-Gets-N0thing"), connect_timeout = 5})
      local sent = lines() or ""
      fake:wait()
      assert.are.equal("pg_connect", err.kind)
      assert.matches("does not support SSL", err.message)
      assert.matches("verify%-full", err.message)
      -- the client sent one SSLRequest and nothing else: no startup packet, no password
      assert.are.equal("0000000804d2162f", sent)
      assert.is_nil(sent:find(hex("Fake-Server-Gets-N0thing"), 1, true))
    end)

    it("verifies against the system CA bundle when no sslrootcert is given", function()
      -- the test CA is in no system bundle: the default refuses the server
      local err = S.catch(pg.connect, {host = "127.0.0.1", port = server.port, user = server.user,
        dbname = server.dbname, password = server.password, connect_timeout = 5})
      assert.are.equal("pg_connect", err.kind)
      assert.matches("certificate verify failed", err.message)
      -- a bundle that holds it (SSL_CERT_FILE, as OpenSSL reads it) is used without sslrootcert
      local r = child(string.format([[
        local c = require("opsh.pg").connect{host = "127.0.0.1", port = %d, user = "opsh", dbname = "opsh"}
        print(c:info().ssl)]], server.port), {SSL_CERT_FILE = certs.ca})
      assert.are.equal("true\n", r.stdout, r.stderr)
    end)

    it("warns once per target when a weaker sslmode is asked for by name", function()
      local r = child(string.format([[
        local pg = require("opsh.pg")
        for _ = 1, 3 do pg.connect{host = "127.0.0.1", port = %d, user = "opsh", dbname = "opsh",
          sslmode = "require"}:close() end
        pg.connect{host = "127.0.0.1", port = %d, user = "opsh", dbname = "opsh", sslmode = "disable"}:close()
        print("connected")]], server.port, server.port))
      assert.are.equal("connected\n", r.stdout, r.stderr)
      local _, nrequire = r.stderr:gsub("sslmode=require", "")
      local _, ndisable = r.stderr:gsub("sslmode=disable", "")
      assert.are.equal(1, nrequire, r.stderr)
      assert.are.equal(1, ndisable, r.stderr)
      assert.matches("WARN", r.stderr)
      -- an unknown mode is a usage error naming the choices
      local err = S.catch(pg.connect, params({sslmode = "verify_full"}))
      assert.are.equal("usage", err.kind)
      assert.matches("verify%-full", err.message)
    end)

    it("connects over the Unix socket, which has no TLS, without a warning", function()
      local sock = server.dir .. "/run"
      local c <close> = pg.connect(params({host = sock}))
      assert.are.equal(1, c:query("SELECT 1 AS one")[1].one)
      assert.is_false(c:info().ssl)
      local r = child(string.format([[
        local c = require("opsh.pg").connect{host = %q, port = %d, user = "opsh", dbname = "opsh"}
        print(c:info().ssl)]], sock, server.port))
      assert.are.equal("false\n", r.stdout, r.stderr)
      assert.are.equal("", r.stderr)
    end)
  end)

  describe("the loop keeps running", function()
    it("resolves a host name off the loop thread while other tasks run", function()
      if S.sh("id -u") ~= "0" or not fs.exists("/usr/bin/unshare") then
        pending("needs root and unshare for a mount namespace with its own resolv.conf")
        return
      end
      local addr = string.format("127.%d.%d.%d", math.random(2, 250), math.random(0, 255), math.random(1, 254))
      local dns = proc.spawn({argv = {"python3", "-u", "-c", FAKE_DNS, addr}, stdout = "pipe"})
      local dns_lines = dns:lines()
      local ctl = tonumber(dns_lines())
      fs.write(tmp .. "/resolv.conf", "nameserver " .. addr .. "\noptions timeout:3 attempts:1\n")
      fs.write(tmp .. "/nsswitch.conf", "hosts: dns\n")
      -- The answers are held until a ticker task ran three times after `armed`: if the name were
      -- resolved on the loop thread, the ticker could not run and the lookup would time out.
      -- Before that, a connect_timeout ends a lookup that gets no answer, while the ticker runs.
      local code = string.format([[
        local opsh = require("opsh")
        local pg = require("opsh.pg")
        local ticks, armed = 0, false
        local ticker = opsh.spawn(function()
          while true do
            ticks = ticks + 1
            if armed and ticks == 3 then require("opsh.net").port_open("127.0.0.1", %d) end
            opsh.sleep(0.01)
          end
        end)
        local target = {host = "db.opsh.test", port = %d, user = "opsh", dbname = "opsh", sslrootcert = %q}
        target.connect_timeout = 0.3
        local ok, err = pcall(pg.connect, target)
        print(ok, err.kind, err.timeout, err.host, ticks >= 3)
        target.connect_timeout = 20
        ticks, armed = 0, true
        local c = pg.connect(target)
        ticker:cancel()
        local info = c:info()
        print(ticks >= 3, info.host, info.hostaddr, info.ssl, c:query("SELECT 1 AS one")[1].one)
        target.host = "missing.opsh.test"
        ok, err = pcall(pg.connect, target)
        print(ok, err.kind, err.host, err.message)]],
        ctl, server.port, certs.ca)
      local r = proc.run({argv = {"unshare", "-m", "sh", "-c",
        'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf && exec "$3" -e "$4"',
        "sh", tmp .. "/resolv.conf", tmp .. "/nsswitch.conf", exe, code},
        env_add = {PGPASSWORD = server.password}, check = false, timeout = 30})
      dns:kill()
      dns:wait()
      assert.are.equal("false\tpg_connect\ttrue\tdb.opsh.test\ttrue\n"
        .. "true\tdb.opsh.test\t127.0.0.1\ttrue\t1\n"
        .. 'false\tpg_connect\tmissing.opsh.test\tcould not translate host name "missing.opsh.test" to address: '
        .. "unknown node or service\n", r.stdout, r.stderr)
    end)

    it("tries every host and address in turn", function()
      -- localhost (from /etc/hosts) on a port nothing listens on, then the server
      local c <close> = pg.connect(params({host = "localhost,localhost", port = "1," .. server.port}))
      assert.are.equal(server.port, c:info().port)
      assert.are.equal("localhost", c:info().host)
      assert.are.equal("127.0.0.1", c:info().hostaddr)
    end)

    it("streams COPY to and from a FIFO without blocking the loop", function()
      local fifo_out, fifo_in = tmp .. "/copy-out.fifo", tmp .. "/copy-in.fifo"
      S.sh("mkfifo " .. fifo_out .. " " .. fifo_in)
      -- each other end opens only after a ticker ran three times once the COPY began: opening a
      -- FIFO on the loop thread would wait for it forever
      local code = string.format([[
        local opsh = require("opsh")
        local proc = require("opsh.proc")
        local phase, ticks, peers = nil, 0, {}
        local peer_argv = {
          ["in"] = {"sh", "-c", 'printf "1\tone\n2\ttwo\n" > "$0"', %q},
          out = {"sh", "-c", 'cat "$0" > "$0.txt"', %q},
        }
        local ticker = opsh.spawn(function()
          while true do
            if phase then
              ticks = ticks + 1
              if ticks == 3 then peers[#peers + 1] = proc.spawn{argv = peer_argv[phase]} end
            end
            opsh.sleep(0.01)
          end
        end)
        local function begin(p) phase, ticks = p, 0 end
        local c = require("opsh.pg").connect{host = "127.0.0.1", port = %d, user = "opsh", dbname = "opsh",
          sslrootcert = %q}
        c:exec("CREATE TEMP TABLE t (id int, name text)")
        begin("in")
        local got = c:copy_in("COPY t FROM STDIN", {file = %q}).affected
        local in_ticks = ticks
        begin("out")
        local sent = c:copy_out("COPY t TO STDOUT", {file = %q}).affected
        local out_ticks = ticks
        for _, p in ipairs(peers) do p:wait() end
        ticker:cancel()
        print(in_ticks >= 3 and out_ticks >= 3, got, sent)]], fifo_in, fifo_out, server.port, certs.ca, fifo_in,
        fifo_out)
      local r = child(code)
      assert.are.equal("true\t2\t2\n", r.stdout, r.stderr)
      assert.are.equal("1\tone\n2\ttwo\n", fs.read(fifo_out .. ".txt"))
    end)
  end)

  describe("secrets", function()
    it("scrubs secret parameters and the connection password from errors and notices", function()
      local c <close> = pg.connect(params())
      local pw = "S3cret-Param-4711"
      local err = S.catch(c.query, c, "SELECT $1::int", opsh.secret(pw))
      assert.are.equal("22P02", err.sqlstate)
      assert.matches("<redacted>", err.message)
      assert.is_nil(texts(err):find(pw, 1, true))
      c:exec("CREATE TEMP TABLE u (v text UNIQUE)")
      c:query("INSERT INTO u VALUES ($1)", opsh.secret(pw))
      err = S.catch(c.query, c, "INSERT INTO u VALUES ($1)", opsh.secret(pw))
      assert.are.equal("23505", err.sqlstate)
      assert.matches("<redacted>", err.detail)
      assert.is_nil(texts(err):find(pw, 1, true))
      -- the connection's own password, passed as a plain parameter by mistake
      local conn_pw = core.reveal(server.password)
      err = S.catch(c.query, c, "SELECT $1::int", conn_pw)
      assert.is_nil(texts(err):find(conn_pw, 1, true))
      c:exec("CREATE FUNCTION pg_temp.note(t text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'got %', t; "
        .. "RETURN 1; END $$")
      local r = c:query("SELECT pg_temp.note($1)", opsh.secret(pw))
      assert.are.same({"got <redacted>"}, r.notices)
    end)
  end)

  describe("parameters", function()
    it("names the parameter when PostgreSQL text refuses its NUL byte", function()
      local c <close> = pg.connect(params())
      local err = S.catch(c.query, c, "SELECT $1::int AS i, $2::text AS t", 1, "a\0b")
      assert.are.equal("22021", err.sqlstate)
      assert.matches("parameter %$2 holds a NUL byte", err.message)
      assert.matches("bytea", err.message)
      assert.are.equal("a\0b", c:query("SELECT $1::bytea AS b", "a\0b")[1].b)
    end)

    it("refuses a parameter of 1 GiB or more before sending it", function()
      local c <close> = pg.connect(params())
      local big = string.rep(string.rep("x", 1 << 20), 1 << 10)   -- 1 GiB, copied in 1 MiB pieces
      local err = S.catch(c.query, c, "SELECT length($1) AS n", big)
      big = nil   -- luacheck: ignore 311
      collectgarbage()
      assert.are.equal("usage", err.kind)
      assert.matches("parameter %$1", err.message)
      assert.matches("1 GiB", err.message)
      assert.are.equal(1, c:query("SELECT 1 AS one")[1].one)
    end)
  end)

  describe("dry-run", function()
    it("runs reads, records refused writes as would-be statements and lets the procedure carry on", function()
      local admin <close> = pg.connect(params())
      admin:exec("DELETE FROM items; INSERT INTO items VALUES (1, 'one')")
      local victim <close> = pg.connect(params())
      local victim_pid = victim:info().backend_pid
      local before <close> = pg.connect(params())   -- opened before the dry-run began
      local pw = opsh.secret("Dry-Run-S3cret-99")
      local results = {}
      local records = dryrun.with(function()
        local c <close> = pg.connect(params())
        assert.are.equal("on", c:query("SHOW default_transaction_read_only")[1].default_transaction_read_only)
        results.update = c:query("UPDATE items\n   SET name = $1\n WHERE id = $2", pw, 1)
        results.read = c:query("SELECT name FROM items WHERE id = $1", 1)[1].name
        c:transaction(function(tx)
          results.insert = tx:query("INSERT INTO items VALUES (2, 'two')")
          results.in_tx = tx:query("SELECT count(*)::int AS n FROM items")[1].n
        end)
        results.terminate = c:query("SELECT pg_terminate_backend($1)", victim_pid)
        results.vacuum = c:exec("VACUUM items")
        results.notify = c:exec("DO $$ BEGIN NOTIFY deploys, 'from a DO block'; END $$")
        results.role = c:exec("ALTER ROLE dr_role PASSWORD 'changed'")
        results.createdb = c:exec("CREATE DATABASE dry_run_db")
        results.defeat = c:query("SELECT set_config('default_transaction_read_only', 'off', false)")
        results.copy = c:copy_in("COPY items FROM STDIN", {source = function() error("the source was read") end})
        results.before = before:query("DELETE FROM items")
      end)
      -- nothing changed
      assert.are.same({{id = 1, name = "one"}}, {table.unpack(admin:query("SELECT id, name FROM items"))})
      assert.are.equal(1, admin:query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1",
        victim_pid)[1].n)
      assert.are.equal(pg.null, admin:query("SELECT rolpassword FROM pg_authid WHERE rolname = 'dr_role'")[1].rolpassword)
      assert.are.equal(0, #admin:query("SELECT 1 FROM pg_database WHERE datname = 'dry_run_db'"))
      -- a session opened before is read-write again afterwards
      assert.are.equal("off", before:query("SHOW default_transaction_read_only")[1].default_transaction_read_only)
      -- reads ran, the procedure carried on inside its transaction
      assert.are.equal("one", results.read)
      assert.are.equal(1, results.in_tx)
      for _, name in ipairs({"update", "insert", "terminate", "vacuum", "notify", "role", "createdb", "defeat",
          "copy", "before"}) do
        local r = results[name]
        assert.is_true(r.dry_run, name)
        assert.are.equal("DRY RUN", r.command, name)
        assert.are.equal(0, #r, name)
        assert.is_nil(r.affected, name)
        assert.are.equal("table", type(r.record), name)
      end
      assert.matches("pg_terminate_backend", results.terminate.reason)
      assert.matches("25006", results.role.reason)
      assert.matches("NOTIFY", results.notify.reason)
      assert.are.equal(10, #records)
      local u = records[1]
      assert.are.equal("pg", u.kind)
      assert.are.equal("UPDATE items SET name = $1 WHERE id = $2", u.action)
      assert.are.equal("127.0.0.1/opsh", u.target)
      assert.are.equal("UPDATE items\n   SET name = $1\n WHERE id = $2", u.request.sql)
      assert.are.same({"<redacted>", 1}, u.request.params)
      assert.are.equal(results.update.record.seq, u.seq)
      for _, rec in ipairs(records) do
        assert.is_nil(require("opsh.json").encode(rec):find("Dry-Run-S3cret-99", 1, true))
      end
    end)
  end)

  describe("audit", function()
    local audit = require("opsh.audit")
    local log
    before_each(function()
      log = tmp .. "/audit.log"
      audit.reset()
      audit.configure({file = log})
    end)
    after_each(function() audit.reset() end)

    it("writes one line per statement that changed the server, none for reads, never a password", function()
      local c <close> = pg.connect(params())
      c:query("SELECT count(*) FROM items")
      c:query("SELECT name FROM items WHERE id = $1", 1)
      c:exec("SET statement_timeout = 1000")
      c:transaction(function(tx) tx:query("SELECT 1") end)
      assert.are.same({}, audit.lines(log))
      local before = audit.changes()
      c:exec("INSERT INTO items VALUES (40, 'forty') ON CONFLICT (id) DO NOTHING")
      c:query("SELECT pg_notify('deploys', 'x')")
      c:exec("ALTER ROLE dr_role PASSWORD 'Audit-S3cret-77'")
      c:exec("DELETE FROM items WHERE id = 40")
      local lines = audit.lines(log)
      assert.are.equal(4, #lines)
      assert.are.equal(4, audit.changes() - before)
      assert.are.equal("pg", lines[1].kind)
      assert.are.equal("INSERT INTO items VALUES (40, 'forty') ON CONFLICT (id) DO NOTHING", lines[1].action)
      assert.are.equal("127.0.0.1/opsh", lines[1].target)
      assert.matches("^INSERT", lines[1].result)
      assert.matches("pg_notify", lines[2].action)
      assert.are.equal("ALTER ROLE dr_role PASSWORD '<redacted>'", lines[3].action)
      assert.is_nil(fs.read(log):find("Audit-S3cret-77", 1, true))
    end)

    it("keeps a literal password out of a dry-run record", function()
      local records = dryrun.with(function()
        local c <close> = pg.connect(params())
        c:exec("ALTER ROLE dr_role PASSWORD 'Dry-S3cret-55'")
      end)
      assert.are.equal(1, #records)
      assert.is_nil(require("opsh.json").encode(records):find("Dry-S3cret-55", 1, true))
    end)
  end)
end)
