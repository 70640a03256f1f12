local opsh = require("opsh")
local fs = require("opsh.fs")
local proc = require("opsh.proc")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local catch = S.catch

-- descriptors of this process open on files under dir (other specs' sockets and pipes do not count)
local function open_fds_in(dir)
  local stat = io.open("/proc/self/stat")
  local pid = stat:read("l"):match("^(%d+)")
  stat:close()
  local ls = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local n = 0
  for line in ls:lines() do
    if line:find(dir, 1, true) then n = n + 1 end
  end
  ls:close()
  return n
end

describe("opsh.fs", function()
  local dir
  before_each(function() dir = fs.tmpdir("opsh-fs-spec-") end)
  after_each(function() fs.rmtree(dir) end)

  it("writes and reads files, binary included", function()
    local data = "line 1\nline 2\0with a NUL\255\n"
    fs.write(dir .. "/a.bin", data)
    assert.are.equal(data, fs.read(dir .. "/a.bin"))
    fs.write(dir .. "/a.bin", "short")
    assert.are.equal("short", fs.read(dir .. "/a.bin"), "write truncates")
    fs.write(dir .. "/empty", "")
    assert.are.equal("", fs.read(dir .. "/empty"))
    fs.append(dir .. "/log", "one\n")
    fs.append(dir .. "/log", "two\n")
    assert.are.equal("one\ntwo\n", fs.read(dir .. "/log"))
    local big = string.rep("0123456789", 500000)   -- 5 MB: several read chunks
    fs.write(dir .. "/big", big)
    assert.are.equal(big, fs.read(dir .. "/big"))
  end)

  it("applies an explicit mode exactly, whatever the umask", function()
    fs.write(dir .. "/secret", "x", {mode = "0600"})
    assert.are.equal(tonumber("600", 8), fs.stat(dir .. "/secret").mode)
    fs.write(dir .. "/secret", "y", {mode = "0640"})
    assert.are.equal(tonumber("640", 8), fs.stat(dir .. "/secret").mode)
    fs.write(dir .. "/wide", "x", {mode = "0666"})
    assert.are.equal(tonumber("666", 8), fs.stat(dir .. "/wide").mode)
    fs.chmod(dir .. "/wide", 448)
    assert.are.equal(448, fs.stat(dir .. "/wide").mode)
    assert.are.equal("usage", catch(fs.write, dir .. "/m", "x", {mode = "rw-"}).kind)
  end)

  it("writes secrets to files without revealing them elsewhere", function()
    local token = opsh.secret("tok-123")
    fs.write(dir .. "/token", token, {mode = "0600"})
    assert.are.equal("tok-123", fs.read(dir .. "/token"))
    fs.write_atomic(dir .. "/token2", token)
    assert.are.equal("tok-123", fs.read(dir .. "/token2"))
  end)

  it("replaces a file atomically, keeping its mode and leaving no temporary file", function()
    local path = dir .. "/config.yaml"
    fs.write(path, "old", {mode = "0640"})
    fs.write_atomic(path, "new")
    assert.are.equal("new", fs.read(path))
    assert.are.equal(tonumber("640", 8), fs.stat(path).mode)
    fs.write(path, "newer", {atomic = true, mode = "0600"})
    assert.are.equal("newer", fs.read(path))
    assert.are.equal(tonumber("600", 8), fs.stat(path).mode)
    assert.are.same({"config.yaml"}, (fs.list(dir)))
    local err = catch(fs.write_atomic, dir .. "/missing/x", "data")
    assert.are.equal("fs", err.kind)
    assert.are.equal("ENOENT", err.code)
  end)

  it("never lets a reader see a partly written file", function()
    local path = dir .. "/flip"
    local a, b = string.rep("A", 2 * 1024 * 1024), string.rep("B", 2 * 1024 * 1024)
    fs.write(path, a)
    local writing = true
    local writer = opsh.spawn(function()
      for i = 1, 15 do fs.write_atomic(path, i % 2 == 0 and a or b) end
      writing = false
    end)
    local reads, torn = 0, 0
    while writing do
      local s = fs.read(path)
      reads = reads + 1
      if s ~= a and s ~= b then torn = torn + 1 end
    end
    writer:wait()
    assert.is_true(reads > 0)
    assert.are.equal(0, torn)
    assert.are.same({"flip"}, (fs.list(dir)))
  end)

  it("makes directories, with parents on request", function()
    assert.is_true(fs.mkdir(dir .. "/a"))
    local err = catch(fs.mkdir, dir .. "/a")
    assert.are.equal("EEXIST", err.code)
    err = catch(fs.mkdir, dir .. "/x/y")
    assert.are.equal("ENOENT", err.code)
    assert.is_true(fs.mkdir(dir .. "/x/y/z", {parents = true, mode = "0750"}))
    assert.are.equal("dir", fs.stat(dir .. "/x/y").type)
    assert.are.equal(tonumber("750", 8), fs.stat(dir .. "/x/y/z").mode)
    assert.is_false(fs.mkdir(dir .. "/x/y/z", {parents = true}))
    fs.write(dir .. "/file", "x")
    err = catch(fs.mkdir, dir .. "/file", {parents = true})
    assert.are.equal("fs", err.kind)
    err = catch(fs.mkdir, dir .. "/file/sub", {parents = true})
    assert.are.equal("ENOTDIR", err.code)
  end)

  it("makes private temporary directories", function()
    local t = fs.tmpdir("opsh-fs-t-")
    assert.matches("/opsh%-fs%-t%-%w+$", t)
    local st = fs.stat(t)
    assert.are.equal("dir", st.type)
    assert.are.equal(tonumber("700", 8), st.mode)
    assert.is_true(fs.rmtree(t))
    assert.is_false(fs.exists(t))
    assert.are.equal("usage", catch(fs.tmpdir, "a/b").kind)
  end)

  it("removes trees without following symlinks, and refuses dangerous paths", function()
    local outside = fs.tmpdir("opsh-fs-outside-")
    fs.write(outside .. "/keep", "precious")
    fs.mkdir(dir .. "/t/a/b", {parents = true})
    fs.write(dir .. "/t/a/b/f", "x")
    fs.write(dir .. "/t/g", "y")
    proc.run{argv = {"ln", "-s", outside, dir .. "/t/link"}}
    proc.run{argv = {"mkfifo", dir .. "/t/a/fifo"}}
    assert.is_true(fs.rmtree(dir .. "/t"))
    assert.is_false(fs.exists(dir .. "/t"))
    assert.are.equal("precious", fs.read(outside .. "/keep"))
    assert.is_false(fs.rmtree(dir .. "/t"))
    fs.rmtree(outside)
    for _, bad in ipairs({"/", "", ".", "..", "//", "/tmp/..", "./", "../..", "a/.."}) do
      local err = catch(fs.rmtree, bad)
      assert.are.equal("usage", err.kind, bad)
    end
  end)

  it("stats files, directories and links; absent is nil", function()
    fs.write(dir .. "/f", "12345")
    local before = os.time()
    local st = fs.stat(dir .. "/f")
    assert.are.equal("file", st.type)
    assert.are.equal(5, st.size)
    assert.is_true(math.abs(st.mtime - before) < 5)
    assert.are.equal("dir", fs.stat(dir).type)
    proc.run{argv = {"ln", "-s", "f", dir .. "/l"}}
    assert.are.equal("file", fs.stat(dir .. "/l").type)
    assert.are.equal("link", fs.lstat(dir .. "/l").type)
    assert.is_nil(fs.stat(dir .. "/nope"))
    assert.is_nil(fs.stat(dir .. "/f/under-a-file"))
    assert.is_true(fs.exists(dir .. "/f"))
    assert.is_false(fs.exists(dir .. "/nope"))
  end)

  it("lists directories sorted, with types", function()
    fs.write(dir .. "/b", "")
    fs.write(dir .. "/a", "")
    fs.mkdir(dir .. "/c")
    fs.write(dir .. "/.hidden", "")
    local names, types = fs.list(dir)
    assert.are.same({".hidden", "a", "b", "c"}, names)
    assert.are.equal("dir", types.c)
    assert.are.equal("file", types.a)
    assert.are.equal("ENOENT", catch(fs.list, dir .. "/nope").code)
  end)

  it("globs", function()
    for _, n in ipairs({"a.yaml", "b.yaml", "c.json", ".d.yaml"}) do fs.write(dir .. "/" .. n, "") end
    fs.mkdir(dir .. "/sub")
    fs.write(dir .. "/sub/e.yaml", "")
    assert.are.same({dir .. "/a.yaml", dir .. "/b.yaml"}, fs.glob(dir .. "/*.yaml"))
    assert.are.same({dir .. "/a.yaml", dir .. "/b.yaml", dir .. "/c.json"}, fs.glob(dir .. "/*.{yaml,json}"))
    assert.are.same({dir .. "/sub/e.yaml"}, fs.glob(dir .. "/*/*.yaml"))
    assert.are.same({}, fs.glob(dir .. "/*.toml"))
  end)

  it("reads a large file in chunks without holding it in memory", function()
    local path = dir .. "/sparse"
    proc.run{argv = {"truncate", "-s", "256M", path}}
    local f <close> = fs.open(path)
    collectgarbage()
    local base = collectgarbage("count")
    local total, peak = 0, 0
    while true do
      local chunk = f:read(1024 * 1024)
      if not chunk then break end
      total = total + #chunk
      peak = math.max(peak, collectgarbage("count") - base)
    end
    assert.are.equal(256 * 1024 * 1024, total)
    print(string.format("\n  256 MiB read in 1 MiB chunks: peak Lua heap growth %.1f MiB", peak / 1024))
    assert.is_true(peak < 128 * 1024, "the file is not held in memory")
  end)

  it("iterates over lines and writes through a handle", function()
    local path = dir .. "/lines"
    local w <close> = fs.open(path, "w", {mode = "0600"})
    for i = 1, 20000 do w:write("line " .. i .. "\n") end
    w:write("last without newline")
    w:sync()
    w:close()
    local n, last = 0, nil
    for l in fs.open(path):lines() do
      n = n + 1
      last = l
    end
    assert.are.equal(20001, n)
    assert.are.equal("last without newline", last)
    local err = catch(fs.open(path).write, fs.open(path), "x")
    assert.are.equal("fs", err.kind)
    assert.are.equal("EBADF", err.code)
    local h = fs.open(path)
    h:close()
    h:close()
    assert.matches("closed", catch(h.read, h).message)
    assert.are.equal("EEXIST", catch(fs.open, path, "wx").code)
  end)

  it("reads a missing file as nil when asked, and still raises the other failures", function()
    assert.is_nil(fs.read(dir .. "/missing", {missing_ok = true}))
    fs.write(dir .. "/here", "x")
    assert.are.equal("x", fs.read(dir .. "/here", {missing_ok = true}))
    assert.are.equal("ENOENT", catch(fs.read, dir .. "/missing").code)
    assert.are.equal("EISDIR", catch(fs.read, dir, {missing_ok = true}).code)
    fs.write(dir .. "/locked", "x", {mode = "0000"})
    if proc.run({argv = {"id", "-u"}}).stdout ~= "0\n" then   -- root reads it anyway
      assert.are.equal("EACCES", catch(fs.read, dir .. "/locked", {missing_ok = true}).code)
    end
    assert.are.equal("usage", catch(fs.read, dir .. "/here", true).kind)
  end)

  it("raises structured errors", function()
    local err = catch(fs.read, dir .. "/missing")
    assert.are.equal("fs", err.kind)
    assert.are.equal("ENOENT", err.code)
    assert.are.equal(dir .. "/missing", err.path)
    assert.are.equal("cannot open '" .. dir .. "/missing': no such file or directory", err.message)
    assert.are.equal("EISDIR", catch(fs.read, dir).code)
    assert.are.equal("ENOENT", catch(fs.write, dir .. "/no/such", "x").code)
    err = catch(fs.read, nil)
    assert.are.equal("usage", err.kind)
    assert.are.equal("bad argument #1 to 'fs.read' (path string expected, got nil)", err.message)
    assert.are.equal("usage", catch(fs.write, dir .. "/x", 42).kind)
  end)

  it("works outside a task, synchronously", function()
    local got = coroutine.wrap(function()
      fs.write(dir .. "/sync", "plain")
      return fs.read(dir .. "/sync"), fs.stat(dir .. "/sync").size
    end)()
    assert.are.equal("plain", got)
  end)

  it("runs many operations at once and leaks nothing when tasks are cancelled", function()
    local items = {}
    for i = 1, 100 do items[i] = i end
    opsh.parallel(items, function(i)
      fs.write(dir .. "/p" .. i, string.rep(tostring(i), 1000))
      assert.are.equal(string.rep(tostring(i), 1000), fs.read(dir .. "/p" .. i))
    end, {limit = 20})
    assert.are.equal(100, #fs.list(dir))
    local tasks = {}
    for i = 1, 30 do
      tasks[i] = opsh.spawn(function()
        while true do
          fs.write_atomic(dir .. "/c" .. i, string.rep("x", 100000))
          local f <close> = fs.open(dir .. "/c" .. i)
          f:read(10)
        end
      end)
    end
    opsh.sleep(0.05)
    for _, t in ipairs(tasks) do t:cancel() end
    -- requests already on the thread pool finish and clean up: wait for that, however loaded the machine
    local deadline = require("opsh.time").monotonic() + 10
    while open_fds_in(dir) > 0 and require("opsh.time").monotonic() < deadline do opsh.sleep(0.05) end
    assert.are.equal(0, open_fds_in(dir), "descriptors left open on files in " .. dir)
    for _, name in ipairs((fs.list(dir))) do
      assert.is_nil(name:find("%.tmp%-"), "temporary file left: " .. name)
    end
  end)
end)

describe("opsh.fs working directory", function()
  it("reads the working directory from the process, not $PWD, and makes paths absolute", function()
    local cwd = fs.cwd()
    assert.are.equal("/", cwd:sub(1, 1))
    assert.is_truthy(fs.stat(cwd))
    assert.are.equal(cwd .. "/a/b", fs.absolute("a/b"))
    assert.are.equal("/x/y", fs.absolute("/x/y"))
  end)
end)
