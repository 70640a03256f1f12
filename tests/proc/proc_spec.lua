local opsh = require("opsh")
local proc = require("opsh.proc")
local core = require("opsh._core")
local fs = require("opsh.fs")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local alive, catch = S.alive, S.catch

-- Waits (up to ~5 s) until pid is gone; returns whether it went.
local function gone(pid)
  return not S.poll(function() return alive(pid) end, function(a) return not a end, 5)
end

describe("opsh.proc", function()
  local dir
  setup(function() dir = fs.tmpdir("opsh-proc-spec-") end)
  teardown(function() fs.rmtree(dir) end)

  describe("run", function()
    it("captures stdout and stderr and reports the exit", function()
      local r = proc.run{argv = {"sh", "-c", "echo out; echo err >&2"}}
      assert.are.equal(0, r.code)
      assert.is_nil(r.signal)
      assert.are.equal("out\n", r.stdout)
      assert.are.equal("err\n", r.stderr)
      assert.is_number(r.elapsed)
      assert.is_false(r.timed_out)
      assert.is_false(r.truncated)
      assert.is_true(r.pid > 0)
    end)

    it("passes argv as is, without a shell", function()
      local r = proc.run{argv = {"printf", "%s|", "a b", "$HOME", "*", 42}}
      assert.are.equal("a b|$HOME|*|42|", r.stdout)
    end)

    it("sends stdin from a string and from a file", function()
      assert.are.equal("hello\nworld", proc.run{argv = {"cat"}, stdin = "hello\nworld"}.stdout)
      local big = string.rep("0123456789abcdef", 1024 * 1024 / 16 * 3)   -- 3 MiB: more than a pipe holds
      local r = proc.run{argv = {"wc", "-c"}, stdin = big}
      assert.are.equal(#big, tonumber(r.stdout))
      local path = dir .. "/input.txt"
      fs.write(path, "from a file\n")
      assert.are.equal("from a file\n", proc.run{argv = {"cat"}, stdin_file = path}.stdout)
      assert.are.equal("", proc.run{argv = {"cat"}}.stdout, "stdin is /dev/null by default")
    end)

    it("raises a structured error for a non-zero exit, with the stderr tail", function()
      local err = catch(proc.run, {argv = {"sh", "-c", "echo first >&2; echo 'it broke' >&2; exit 3"}})
      assert.are.equal("proc", err.kind)
      assert.are.equal(3, err.exit_code)
      assert.are.equal("sh", err.argv0)
      assert.are.same({"first", "it broke"}, err.stderr)
      assert.are.equal("'sh' exited with code 3: it broke", tostring(err))
      local r = proc.run{argv = {"sh", "-c", "exit 3"}, check = false}
      assert.are.equal(3, r.code)
    end)

    it("keeps only the last lines of stderr in the error", function()
      local err = catch(proc.run, {argv = {"sh", "-c", "for i in $(seq 1 50); do echo line$i >&2; done; exit 1"}})
      assert.are.equal(10, #err.stderr)
      assert.are.equal("line50", err.stderr[10])
      assert.are.equal("line41", err.stderr[1])
    end)

    it("reports a command that cannot be found", function()
      local err = catch(proc.run, {argv = {"opsh-no-such-command-xyz", "arg"}})
      assert.are.equal("proc", err.kind)
      assert.are.equal("cannot run 'opsh-no-such-command-xyz': no such file or directory", err.message)
      err = catch(proc.run, {argv = {"/etc/passwd"}})
      assert.are.equal("cannot run '/etc/passwd': permission denied", err.message)
    end)

    it("reports a signal death", function()
      local err = catch(proc.run, {argv = {"sh", "-c", "kill -9 $$"}})
      assert.are.equal("proc", err.kind)
      assert.are.equal(9, err.signal)
      assert.is_nil(err.exit_code)
      assert.matches("killed by SIGKILL", err.message)
    end)

    it("replaces the environment with env and merges with env_add", function()
      local r = proc.run{argv = {"/usr/bin/env"}, env = {FOO = "bar", N = 7}}
      local lines = {}
      for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
      table.sort(lines)
      assert.are.same({"FOO=bar", "N=7"}, lines)

      local home = os.getenv("HOME")
      r = proc.run{argv = {"sh", "-c", 'echo "$OPSH_T1|$HOME|${PATH:+path}"'}, env_add = {OPSH_T1 = "x y"}}
      assert.are.equal("x y|" .. (home or "") .. "|path\n", r.stdout)
      r = proc.run{argv = {"sh", "-c", 'echo "${HOME-unset}"'}, env_add = {HOME = false}}
      assert.are.equal("unset\n", r.stdout)
    end)

    it("passes secrets in env only, and never shows them", function()
      local pw = opsh.secret("s3cr3t-value")
      local r = proc.run{argv = {"sh", "-c", 'test "$PGPASSWORD" = s3cr3t-value && echo same'},
        env_add = {PGPASSWORD = pw}}
      assert.are.equal("same\n", r.stdout)
      local err = catch(proc.run, {argv = {"sh", "-c", "exit 1"}, env_add = {PGPASSWORD = pw}})
      assert.is_nil(tostring(err):find("s3cr3t", 1, true))
      err = catch(proc.run, {argv = {"psql", "--password", pw}})
      assert.are.equal("usage", err.kind)
      assert.matches("argv%[3%] is an opsh.secret", err.message)
      assert.is_nil(err.message:find("s3cr3t", 1, true))
      err = catch(proc.shell, pw)
      assert.are.equal("usage", err.kind)
      err = catch(proc.run, {argv = {"true"}, env = {BAD = {}}})
      assert.are.equal("usage", err.kind)
    end)

    it("runs in cwd, and says when cwd is missing", function()
      local r = proc.run{argv = {"pwd"}, cwd = dir}
      assert.are.equal(dir .. "\n", r.stdout)
      local err = catch(proc.run, {argv = {"pwd"}, cwd = dir .. "/nope"})
      assert.are.equal("proc", err.kind)
      assert.are.equal("cannot run 'pwd' in '" .. dir .. "/nope': no such file or directory", err.message)
    end)

    it("streams stdout and stderr line by line to functions", function()
      local n, bad = 0, 0
      local r = proc.run{argv = {"sh", "-c", "yes | head -n 100000"}, stdout = function(line)
        n = n + 1
        if line ~= "y" then bad = bad + 1 end
      end}
      assert.are.equal(100000, n)
      assert.are.equal(0, bad)
      assert.is_nil(r.stdout)
      local out, errs = {}, {}
      proc.run{argv = {"sh", "-c", "printf 'a\\r\\nb\\n' ; printf 'e1\\ne2' >&2; printf 'c'"},
        stdout = function(l) out[#out + 1] = l end, stderr = function(l) errs[#errs + 1] = l end}
      assert.are.same({"a", "b", "c"}, out)
      assert.are.same({"e1", "e2"}, errs)
      local err = catch(proc.run, {argv = {"sh", "-c", "echo oops >&2; exit 2"}, stderr = function() end})
      assert.are.same({"oops"}, err.stderr)
    end)

    it("stops the child when a line handler raises", function()
      local pidfile = dir .. "/handler.pid"
      local err = catch(proc.run, {argv = {"sh", "-c", "echo $$ > " .. pidfile .. "; exec yes"},
        stdout = function() error(opsh.error("test", "enough")) end})
      assert.are.equal("test", err.kind)
      assert.is_true(gone(tonumber(fs.read(pidfile))))
    end)

    it("merges stderr into stdout on request, and discards output with null", function()
      local r = proc.run{argv = {"sh", "-c", "echo a; echo b >&2; echo c"}, stderr = "stdout"}
      assert.are.equal("a\nb\nc\n", r.stdout)
      assert.is_nil(r.stderr)
      r = proc.run{argv = {"sh", "-c", "echo a; echo b >&2"}, stdout = "null", stderr = "null"}
      assert.is_nil(r.stdout)
      assert.is_nil(r.stderr)
    end)

    it("writes output to files", function()
      local log = dir .. "/out.log"
      proc.run{argv = {"echo", "one"}, stdout_file = log}
      proc.run{argv = {"sh", "-c", "echo two >&2"}, stderr_file = log}
      assert.are.equal("one\ntwo\n", fs.read(log))
    end)

    it("times out with TERM", function()
      local err = catch(proc.run, {argv = {"sleep", "10"}, timeout = 0.2})
      assert.are.equal("timeout", err.kind)
      assert.are.equal(15, err.signal)
      assert.are.equal(0.2, err.timeout)
      assert.matches("timed out after 0.2 s and was stopped with SIGTERM", err.message)
      local r = proc.run{argv = {"sleep", "10"}, timeout = 0.1, check = false}
      assert.is_true(r.timed_out)
      assert.are.equal(15, r.signal)
    end)

    it("escalates to KILL when the child ignores TERM", function()
      -- the shell's own children keep the pipes: they are closed once the shell is killed
      local err = catch(proc.run, {argv = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"},
        timeout = 0.3, kill_grace = 0.3})
      assert.are.equal("timeout", err.kind)
      assert.are.equal(9, err.signal)
    end)

    it("limits captured output", function()
      local err = catch(proc.run, {argv = {"yes"}, max_output = 100000})
      assert.are.equal("proc", err.kind)
      assert.are.equal(100000, err.max_output)
      assert.matches("wrote more than 100000 bytes to stdout", err.message)
      local r = proc.run{argv = {"head", "-c", "300000", "/dev/zero"}, max_output = 1000, truncate = true}
      assert.are.equal(1000, #r.stdout)
      assert.is_true(r.truncated)
      assert.are.equal(0, r.code)
    end)

    it("rejects bad options with the argument position", function()
      local err = catch(proc.run, {argv = {}})
      assert.are.equal("usage", err.kind)
      assert.matches("bad argument #1 to 'proc.run'", err.message)
      err = catch(proc.run, {argv = {"true"}, timout = 3})
      assert.matches("unknown option 'timout'", err.message)
      err = catch(proc.run, {argv = {"true"}, stdout = "pipe"})
      assert.are.equal("usage", err.kind)
      err = catch(proc.run, {argv = {"true"}, stdin = "x", stdin_file = "/dev/null"})
      assert.are.equal("usage", err.kind)
      err = catch(proc.run, {argv = {"true", {}}})
      assert.matches("argv%[2%] must be a string", err.message)
    end)

    it("runs a shell only when asked", function()
      assert.are.equal("3\n", proc.shell("echo $((1 + 2))").stdout)
      assert.are.equal("x\n", proc.shell("cat", {stdin = "x\n"}).stdout)
      assert.are.equal("$((1 + 2))\n", proc.run{argv = {"echo", "$((1 + 2))"}}.stdout)
    end)

    it("runs many at once", function()
      local items = {}
      for i = 1, 200 do items[i] = i end
      local t0 = core.hrtime()
      local res = opsh.parallel(items, function(i)
        return proc.run{argv = {"sh", "-c", "sleep 0.2; echo " .. i}}.stdout
      end)
      local took = core.hrtime() - t0
      for i = 1, 200 do assert.are.equal(i .. "\n", res[i]) end
      print(string.format("\n  200 concurrent 'sleep 0.2' processes: %.2f s", took))
    end)

    it("kills the child and closes its pipes when the task is cancelled", function()
      local pidfile = dir .. "/cancel.pid"
      local t = opsh.spawn(function()
        proc.run{argv = {"sh", "-c", "echo $$ > " .. pidfile .. "; exec sleep 30"}}
      end)
      local pid = S.poll(function() return tonumber(fs.read(pidfile, {missing_ok = true}) or "") end,
        function(p) return p end, 2)
      assert.is_number(pid)
      assert.is_true(alive(pid))
      t:cancel()
      assert.is_true(gone(pid))
      -- a cancelled opsh.timeout stops its process the same way
      local ok, err = opsh.try(opsh.timeout, 0.1, proc.run, {argv = {"sleep", "30"}})
      assert.is_false(ok)
      assert.are.equal("timeout", err.kind)
    end)
  end)

  describe("spawn", function()
    it("talks to a child through stdin and reads its lines", function()
      local p <close> = proc.spawn{argv = {"cat"}, stdin_pipe = true, stdout = "pipe"}
      assert.is_true(p:pid() > 0)
      assert.is_true(p:running())
      p:write("one\ntwo\n")
      p:write("three")
      p:close_stdin()
      local got = {}
      for line in p:lines() do got[#got + 1] = line end
      assert.are.same({"one", "two", "three"}, got)
      local r = p:wait()
      assert.are.equal(0, r.code)
      assert.is_false(p:running())
      assert.matches("exited 0", tostring(p))
    end)

    it("reads a long stream with back-pressure", function()
      local p <close> = proc.spawn{argv = {"sh", "-c", "yes | head -n 500000"}, stdout = "pipe"}
      local n = 0
      for _ in p:lines() do n = n + 1 end
      assert.are.equal(500000, n)
      assert.are.equal(0, p:wait().code)
    end)

    it("captures by default and reports through wait", function()
      local p <close> = proc.spawn{argv = {"sh", "-c", "echo hi; echo no >&2; exit 4"}}
      local r = p:wait()
      assert.are.equal(4, r.code)
      assert.are.equal("hi\n", r.stdout)
      assert.are.equal("no\n", r.stderr)
      local err = catch(p.wait, p, {check = true})
      assert.are.equal("proc", err.kind)
      assert.are.equal(4, err.exit_code)
      local e2 = catch(p.lines, p)
      assert.are.equal("usage", e2.kind)
    end)

    it("sends signals and stops with TERM then KILL", function()
      local p <close> = proc.spawn{argv = {"sleep", "30"}}
      assert.is_true(p:kill("TERM"))
      local r = p:wait()
      assert.are.equal(15, r.signal)
      assert.is_false(p:kill("KILL"))
      local q <close> = proc.spawn{argv = {"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"},
        stdout = "null", stderr = "null"}
      opsh.sleep(0.1)
      r = q:stop(0.2)
      assert.are.equal(9, r.signal)
      local err = catch(p.kill, p, "NOPE")
      assert.matches("unknown signal 'NOPE'", tostring(err))
    end)

    it("sends TERM to a running child when the handle is closed", function()
      local pid
      do
        local p <close> = proc.spawn{argv = {"sleep", "30"}}
        pid = p:pid()
        assert.is_true(alive(pid))
      end
      assert.is_true(gone(pid))
      local p = proc.spawn{argv = {"sleep", "30"}}
      p:close()
      p:close()
      local err = catch(p.pid, p)
      assert.are.equal("proc", err.kind)
      assert.matches("closed", err.message)
      assert.is_false(p:running())
    end)

    it("fails the tasks waiting on a handle that gets closed, and refuses a second waiter", function()
      local p = proc.spawn{argv = {"sleep", "30"}}
      local t = opsh.spawn(function() return p:wait() end)
      opsh.sleep(0.02)
      local busy = catch(p.wait, p)
      assert.are.equal("usage", busy.kind)
      assert.matches("busy", busy.message)
      p:close()
      local ok, err = pcall(t.wait, t)
      assert.is_false(ok)
      assert.matches("closed", err.message)
    end)

    it("leaves a detached daemon running in its own session", function()
      local log = dir .. "/daemon.log"
      local pid
      do
        local p <close> = proc.spawn{argv = {"sh", "-c", "echo started; exec sleep 30"}, detach = true,
          stdout_file = log}
        pid = p:pid()
      end
      opsh.sleep(0.2)
      assert.is_true(alive(pid))
      local stat = fs.read("/proc/" .. pid .. "/stat")
      local sid = tonumber(stat:match("%) %a %d+ %d+ (%d+)"))
      assert.are.equal(pid, sid)
      assert.are.equal("started\n", fs.read(log))
      proc.run{argv = {"kill", tostring(pid)}}
      assert.is_true(gone(pid))
      local err = catch(proc.spawn, {argv = {"true"}, detach = true, stdout = "capture"})
      assert.are.equal("usage", err.kind)
    end)

    it("times out a spawned child", function()
      local p <close> = proc.spawn{argv = {"sleep", "30"}, timeout = 0.1}
      local r = p:wait()
      assert.is_true(r.timed_out)
      local err = catch(p.wait, p, {check = true})
      assert.are.equal("timeout", err.kind)
    end)
  end)
end)

describe("opsh.proc safety", function()
  local dryrun = require("opsh.dryrun")
  local exe = require("opsh.runtime").exe()
  local dir
  setup(function() dir = fs.tmpdir("opsh-proc-safety-") end)
  teardown(function() fs.rmtree(dir) end)

  -- the pid a child wrote to path, once it did
  local function pid_in(path)
    local pid = S.poll(function() return tonumber(fs.read(path, {missing_ok = true}) or "") end,
      function(p) return p end, 5)
    assert.is_number(pid)
    return pid
  end

  -- an opsh process running chunk, with the pid of the TERM-ignoring child it started
  local function opsh_with_stubborn_child(name, chunk)
    local pidfile = dir .. "/" .. name .. ".pid"
    local stubborn = string.format("trap '' TERM; echo $$ > %s; while :; do sleep 0.05; done", pidfile)
    local o = proc.spawn{argv = {exe, "-e", string.format(chunk, stubborn)}, stdout = "null"}
    return o, pid_in(pidfile)
  end

  describe("at exit", function()
    it("kills a child that ignores TERM when opsh is interrupted", function()
      local o <close>, pid = opsh_with_stubborn_child("sigint", [[
        require("opsh.proc").run{argv = {"sh", "-c", %q}, kill_grace = 0.3}]])
      assert.is_true(alive(pid))
      o:kill("INT")
      local r = o:wait()
      assert.are.equal(130, r.code)
      local went = gone(pid)
      if not went then proc.signal_pid(pid, "KILL") end
      assert.is_true(went)
    end)

    it("stops the children still running when a script calls os.exit", function()
      local o <close>, pid = opsh_with_stubborn_child("exit", [[
        local proc = require("opsh.proc")
        local p = proc.spawn{argv = {"sh", "-c", %q}, kill_grace = 0.2}
        repeat require("opsh").sleep(0.02) until io.open("/proc/" .. p:pid() .. "/cmdline")
        require("opsh").sleep(0.2)
        os.exit(3)]])
      assert.are.equal(3, o:wait().code)
      local went = gone(pid)
      if not went then proc.signal_pid(pid, "KILL") end
      assert.is_true(went)
    end)
  end)

  describe("stop", function()
    it("returns once the child is gone, though a grandchild still holds its stdout", function()
      local pidfile = dir .. "/grandchild.pid"
      -- "started" is written before the pid file, so once the file is there the output is in the pipe
      local p <close> = proc.spawn{argv = {"sh", "-c", "echo started; sleep 30 & echo $! > " .. pidfile .. "; wait"}}
      local grandchild = pid_in(pidfile)
      local r = opsh.timeout(5, p.stop, p, 0.3)
      assert.are.equal(15, r.signal)
      assert.are.equal("started\n", r.stdout)
      assert.is_true(alive(grandchild))
      -- a child that already exited by itself, its grandchild holding the pipe
      local q <close> = proc.spawn{argv = {"sh", "-c", "sleep 30 & echo $! > " .. pidfile .. ".2; echo done"}}
      local grandchild2 = pid_in(pidfile .. ".2")
      assert.is_false(S.poll(function() return q:running() end, function(running) return not running end, 5))
      r = opsh.timeout(5, q.stop, q, 0.3)
      assert.are.equal(0, r.code)
      assert.are.equal("done\n", r.stdout)
      proc.signal_pid(grandchild, "KILL")
      proc.signal_pid(grandchild2, "KILL")
    end)
  end)

  describe("secrets", function()
    it("keeps the secrets of env, env_add and stdin out of errors", function()
      local tok = opsh.secret("tok-9a8b7c6d")
      local err = catch(proc.run, {argv = {"sh", "-c", 'echo "token is $TOKEN" >&2; exit 1'}, env_add = {TOKEN = tok}})
      assert.are.equal("'sh' exited with code 1: token is <redacted>", err.message)
      assert.are.same({"token is <redacted>"}, err.stderr)
      err = catch(proc.run, {argv = {"sh", "-c", "cat >&2; exit 2"}, stdin = tok})
      assert.are.equal("'sh' exited with code 2: <redacted>", err.message)
      err = catch(proc.run, {argv = {"sh", "-c", 'echo "$TOKEN"'}, env = {TOKEN = tok},
        stdout = function(line) error("bad line: " .. line) end})
      assert.are.equal("bad line: <redacted>", tostring(err):match("bad line: .*"))
      local p <close> = proc.spawn{argv = {"sh", "-c", 'echo "$TOKEN" >&2; exit 4'}, env_add = {TOKEN = tok}}
      err = catch(p.wait, p, {check = true})
      assert.are.equal("'sh' exited with code 4: <redacted>", err.message)
    end)

    it("sends an opsh.secret on stdin", function()
      assert.are.equal("tok-9a8b7c6d", proc.run{argv = {"cat"}, stdin = opsh.secret("tok-9a8b7c6d")}.stdout)
    end)
  end)

  describe("dry-run", function()
    it("records a run instead of doing it, and returns an empty successful outcome", function()
      local marker = dir .. "/made by a dry run"
      local records, r = dryrun.with(proc.run, {argv = {"touch", marker}, cwd = dir,
        env_add = {TOKEN = opsh.secret("tok-1f2e3d4c"), HOME = false}, stdin = "abc"})
      assert.is_nil(fs.read(marker, {missing_ok = true}))
      assert.are.equal(1, #records)
      local rec = records[1]
      assert.are.same({code = 0, stdout = "", stderr = "", elapsed = 0, timed_out = false, truncated = false,
        dry_run = true, record = rec}, r)
      assert.are.equal("proc", rec.kind)
      assert.are.equal("run touch '" .. marker .. "'", rec.action)
      assert.are.equal("touch", rec.target)
      assert.are.same({argv = {"touch", marker}, cwd = dir, env_add = {"TOKEN"}, env_unset = {"HOME"},
        stdin = "<3 bytes>"}, rec.request)
      records, r = dryrun.with(proc.shell, "rm -rf /tmp/x", {stdout = "null"})
      assert.are.equal("run /bin/sh -c 'rm -rf /tmp/x'", records[1].action)
      assert.is_nil(r.stdout)
    end)

    it("runs a call that says read = true", function()
      local records, r = dryrun.with(proc.run, {argv = {"echo", "hi"}, read = true})
      assert.are.same({}, records)
      assert.are.equal("hi\n", r.stdout)
      assert.is_nil(r.dry_run)
    end)

    it("gives spawn a handle of a process that never ran", function()
      local records, p = dryrun.with(proc.spawn, {argv = {"sleep", "30"}, stdout = "pipe"})
      assert.are.equal("spawn sleep 30", records[1].action)
      assert.is_true(p.dry_run)
      assert.is_nil(p:pid())
      assert.is_false(p:running())
      assert.is_nil(p:lines()())
      assert.are.equal(0, p:wait().code)
      assert.are.equal(0, p:stop().code)
      p:close()
    end)
  end)
end)

describe("opsh.proc by pid", function()
  local proc = require("opsh.proc")
  it("signals a process by pid, tells whether it is alive and reads its command line", function()
    local p <close> = proc.spawn({argv = {"sleep", "30"}})
    local pid = p:pid()
    assert.is_true(proc.alive(pid))
    assert.are.same({"sleep", "30"}, proc.cmdline(pid))
    assert.is_true(proc.signal_pid(pid, "TERM"))
    local r = p:wait()
    assert.are.equal(15, r.signal)
    assert.is_false(proc.alive(pid))
    assert.is_nil(proc.cmdline(pid))
    local ok, reason = proc.signal_pid(pid, "TERM")
    assert.is_false(ok)
    assert.matches("No such process", reason)
  end)
end)
