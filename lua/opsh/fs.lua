-- opsh.fs: files and directories. Each call is a libuv fs request: inside a task it runs on
-- libuv's thread pool while only that task waits; outside a task (the CLI's own commands) it runs
-- synchronously. Failures raise {kind="fs", code="ENOENT", path=, message=}; absence asked
-- through stat/exists is nil/false, not an error.
local C = require("opsh._fs")
local core = require("opsh._core")
local check = require("opsh.check")
local lines = require("opsh.lines")

local M = {}

local READ_CHUNK = 1024 * 1024

local function usage(fname, n, msg)
  check.fail("fs." .. fname, n, msg)
end

local function check_path(fname, n, path)
  if type(path) ~= "string" then usage(fname, n, "path string expected, got " .. type(path)) end
  if path == "" then usage(fname, n, "path is empty") end
  if path:find("\0", 1, true) then usage(fname, n, "path contains a NUL byte") end
  return path
end

local function check_data(fname, n, data)
  if type(data) ~= "string" and not core.is_secret(data) then
    usage(fname, n, "string or opsh.secret expected, got " .. type(data))
  end
  return data
end

local OPTIONS = {mode = "any", parents = "boolean", atomic = "boolean", missing_ok = "boolean"}

local function options(fname, n, opts)
  return check.options("fs." .. fname, n, opts, OPTIONS)
end

-- A mode as an integer (0x1a4) or an octal string ("0644", "600").
local function parse_mode(fname, n, mode)
  if mode == nil then return nil end
  if math.type(mode) == "integer" and mode >= 0 and mode <= 4095 then return mode end
  if type(mode) == "string" and mode:match("^[0-7]+$") and #mode <= 4 then return tonumber(mode, 8) end
  usage(fname, n, "mode must be an octal string such as \"0644\" or an integer, not " .. tostring(mode))
end

local umask_cache
local function umask()
  if umask_cache then return umask_cache end
  umask_cache = 18   -- 022 when /proc does not say
  local f = io.open("/proc/self/status")
  if f then
    for line in f:lines() do
      local m = line:match("^Umask:%s*(%d+)")
      if m then umask_cache = tonumber(m, 8); break end
    end
    f:close()
  end
  return umask_cache
end

--- dirname("/a/b/c") -> "/a/b"; dirname("c") -> "."
function M.dirname(path)
  check.string("fs.dirname", 1, path)
  local d = path:gsub("/+$", ""):match("^(.*)/[^/]*$")
  if d == nil then return path:sub(1, 1) == "/" and "/" or "." end
  if d == "" then return "/" end
  return (d:gsub("/+$", ""))
end

--- basename("/a/b/c") -> "c"
function M.basename(path)
  check.string("fs.basename", 1, path)
  local trimmed = path:gsub("/+$", "")
  if trimmed == "" then return path:sub(1, 1) == "/" and "/" or "" end
  return trimmed:match("([^/]*)$")
end

--- join("a", "b", "c") -> "a/b/c"
function M.join(...)
  local parts = {}
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    check.string("fs.join", i, p)
    if p ~= "" then parts[#parts + 1] = p end
  end
  return (table.concat(parts, "/"):gsub("//+", "/"))
end

-- Lexically normalised path: "a/./b/../c" -> "a/c", "/x/.." -> "/".
local function normalize(path)
  local abs = path:sub(1, 1) == "/"
  local out = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #out > 0 and out[#out] ~= ".." then out[#out] = nil
      elseif not abs then out[#out + 1] = ".." end
    elseif part ~= "." then
      out[#out + 1] = part
    end
  end
  local s = table.concat(out, "/")
  if abs then return "/" .. s end
  return s == "" and "." or s
end

local file_methods = C.file_methods

--- file:write(data): writes all of data (string or opsh.secret)
function file_methods:write(data)
  check_data("write", 1, data)
  local len, done = #data, 0
  while done < len do done = done + self:_write(data, done) end
  return self
end

--- file:lines() -> iterator over the lines (without "\n"), reading 64 KiB at a time
function file_methods:lines()
  return lines.iterator(function() return self:read(65536) end, true)
end

--- open(path [, how="r" [, {mode=}]]) -> file: "r", "w" (truncate), "a" (append), "r+", "w+", "a+",
-- "wx" (create, fail if it exists). mode (default "0666" less the umask) applies to a created file.
function M.open(path, how, opts)
  check_path("open", 1, path)
  if how ~= nil and type(how) ~= "string" then usage("open", 2, "\"r\", \"w\", \"a\"... expected") end
  local mode = parse_mode("open", 3, options("open", 3, opts).mode)
  return C.open(path, how or "r", mode)
end

--- read(path [, {missing_ok=false}]) -> the whole content (use open(path):read(n) or :lines() for
-- big files); nil when missing_ok and there is no such file.
function M.read(path, opts)
  check_path("read", 1, path)
  options("read", 2, opts)
  local ok, f = pcall(C.open, path, "r")
  if not ok then
    if opts and opts.missing_ok and type(f) == "table" and f.code == "ENOENT" then return nil end
    error(f, 0)
  end
  local _ <close> = f
  local parts = {}
  while true do
    local chunk = f:read(READ_CHUNK)
    if not chunk then break end
    parts[#parts + 1] = chunk
  end
  return table.concat(parts)
end

local function write_file(fname, path, data, opts, how)
  check_path(fname, 1, path)
  check_data(fname, 2, data)
  local mode = parse_mode(fname, 3, options(fname, 3, opts).mode)
  local f <close> = C.open(path, how, mode or 438)
  -- exactly this mode, whatever the umask or an older file had, before any byte is written
  if mode then f:chmod(mode) end
  f:write(data)
  f:close()
end

--- append(path, data [, {mode=}])
function M.append(path, data, opts)
  write_file("append", path, data, opts, "a")
end

--- write_atomic(path, data [, {mode=}]): a temporary file in the same directory, fsync, rename over
-- path, fsync the directory. Readers see the old content or the new one, never a part.
function M.write_atomic(path, data, opts)
  check_path("write_atomic", 1, path)
  check_data("write_atomic", 2, data)
  local mode = parse_mode("write_atomic", 3, options("write_atomic", 3, opts).mode)
  local dir, base = M.dirname(path), M.basename(path)
  if not mode then
    local st = C.stat(path)
    mode = st and st.mode or (438 & ~umask())
  end
  local f, tmp = C.mkstemp(dir .. "/." .. base .. ".tmp-XXXXXX")
  local committed = false
  local _ <close> = setmetatable({}, {__close = function()
    f:close()
    if not committed then pcall(C.unlink, tmp) end
  end})
  f:write(data)
  f:chmod(mode)
  f:sync()
  f:close()
  C.rename(tmp, path)
  committed = true
  local d <close> = C.open(dir, "r")   -- closed even if the task is cancelled during the sync
  pcall(d.sync, d)   -- some file systems refuse fsync on a directory
end

--- write(path, data [, {mode=, atomic=false}]): create or truncate, then write
function M.write(path, data, opts)
  options("write", 3, opts)
  if opts and opts.atomic then return M.write_atomic(path, data, opts) end
  write_file("write", path, data, opts, "w")
end

--- stat(path) -> {type, size, mode, mtime, ...} | nil when absent (follows symlinks)
function M.stat(path)
  return C.stat(check_path("stat", 1, path))
end

--- lstat(path) -> as stat, but a symlink is {type="link"}
function M.lstat(path)
  return C.lstat(check_path("lstat", 1, path))
end

--- exists(path) -> boolean
function M.exists(path)
  return C.stat(check_path("exists", 1, path)) ~= nil
end

local function mkdir_p(path, mode, last)
  local ok, err = pcall(C.mkdir, path, last and mode or 511)
  if ok then return true end
  if type(err) == "table" and err.code == "EEXIST" then
    local st = C.stat(path)
    if st and st.type == "dir" then return false end
    error(err, 0)
  end
  if type(err) == "table" and err.code == "ENOENT" then
    local parent = M.dirname(path)
    if parent == path then error(err, 0) end
    mkdir_p(parent, mode, false)
    return mkdir_p(path, mode, last)
  end
  error(err, 0)
end

--- mkdir(path [, {parents=false, mode=}]) -> true if created (false: parents and it existed)
-- mode applies exactly (after the umask) to the directory itself; parents get 0777 less the umask.
function M.mkdir(path, opts)
  check_path("mkdir", 1, path)
  options("mkdir", 2, opts)
  local mode = parse_mode("mkdir", 2, options("mkdir", 2, opts).mode)
  local created
  if opts and opts.parents then
    created = mkdir_p(path, mode or 511, true)
  else
    C.mkdir(path, mode or 511)
    created = true
  end
  if created and mode then C.chmod(path, mode) end
  return created
end

--- tmpdir([prefix="opsh-"]) -> path of a new private directory (0700) under $TMPDIR or /tmp
function M.tmpdir(prefix)
  prefix = prefix or "opsh-"
  if type(prefix) ~= "string" or prefix:find("/", 1, true) then usage("tmpdir", 1, "prefix must be a name without '/'") end
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  return C.mkdtemp(base:gsub("/+$", "") .. "/" .. prefix .. "XXXXXX")
end

local function remove_tree(path, kind)
  if kind == "dir" then
    local names, types = C.scandir(path)
    for i, name in ipairs(names) do
      local p = path .. "/" .. name
      local t = types[i]
      if t == "unknown" then
        local st = C.lstat(p)
        t = st and st.type
      end
      if t then remove_tree(p, t) end
    end
    C.rmdir(path)
  else
    C.unlink(path)   -- a symlink is removed, never followed
  end
end

--- rmtree(path) -> true if something was removed, false if nothing was there. Refuses "/", "", ".", "..".
function M.rmtree(path)
  if type(path) ~= "string" or path == "" then usage("rmtree", 1, "a non-empty path is required") end
  local n = normalize(path)
  if n:match("^[%./]*$") then   -- "/", ".", "..", "../..": never what anyone meant
    error(core.error("usage", string.format("fs.rmtree refuses to remove '%s'", path)), 2)
  end
  local st = C.lstat(path)
  if not st then return false end
  remove_tree(path, st.type)
  return true
end

--- remove(path): a file or symlink (or an empty directory)
function M.remove(path)
  check_path("remove", 1, path)
  local st = C.lstat(path)
  if st and st.type == "dir" then C.rmdir(path) else C.unlink(path) end
end

--- cwd() -> the working directory (from getcwd, not $PWD)
M.cwd = C.cwd

--- absolute(path) -> path made absolute against the working directory (not normalised)
function M.absolute(path)
  check_path("absolute", 1, path)
  if path:sub(1, 1) == "/" then return path end
  return C.cwd() .. "/" .. path
end

--- rename(from, to)
function M.rename(from, to)
  C.rename(check_path("rename", 1, from), check_path("rename", 2, to))
end

--- list(dir) -> sorted names (without . and ..), and a table name -> type
function M.list(dir)
  check_path("list", 1, dir)
  local names, types = C.scandir(dir)
  local by_name = {}
  for i, name in ipairs(names) do by_name[name] = types[i] end
  table.sort(names)
  return names, by_name
end

--- glob(pattern) -> sorted paths matching a shell pattern (*, ?, [a-z], {a,b}); {} when none
function M.glob(pattern)
  return C.glob(check_path("glob", 1, pattern))
end

--- chmod(path, mode)
function M.chmod(path, mode)
  check_path("chmod", 1, path)
  if mode == nil then usage("chmod", 2, "mode expected") end
  C.chmod(path, parse_mode("chmod", 2, mode))
end

return M
