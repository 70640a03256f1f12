-- opsh.twin.state: the twin's one source of truth, DIR/state.json (mode 0600).
-- Which components run (pids, ports), their credentials, and the platform facts the API twins
-- mutate (which database is primary, the Redis key...). Every part reads it through here; writers
-- take DIR/lock so two opsh processes never interleave read-modify-write.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")

local M = {}

M.VERSION = 1

local function fail(message, fields) error(core.error("twin", message, fields), 0) end

--- The state directory: opts.dir, $OPSH_TWIN_DIR, or $XDG_STATE_HOME/opsh/twin (~/.local/state/opsh/twin).
function M.dir(dir)
  dir = dir or os.getenv("OPSH_TWIN_DIR")
  if not dir or dir == "" then
    local base = os.getenv("XDG_STATE_HOME")
    if not base or base == "" then
      local home = os.getenv("HOME")
      if not home or home == "" then fail("cannot place the twin: HOME is not set (pass --dir)") end
      base = home .. "/.local/state"
    end
    dir = base .. "/opsh/twin"
  end
  dir = fs.absolute(dir)
  return (dir:gsub("/+$", ""))
end

local function path(dir) return dir .. "/state.json" end

--- load(dir) -> state table, or nil when the twin was never started there (or was taken down).
function M.load(dir)
  local p = path(dir)
  local text = fs.read(p, {missing_ok = true})
  if not text then return nil end
  local ok, st = pcall(json.decode, text)
  if not ok or type(st) ~= "table" then fail("the twin's state file is damaged: " .. p) end
  if st.version ~= M.VERSION then
    fail(string.format("%s was written by another opsh (state version %s); run `opsh twin down --dir %s`",
      p, tostring(st.version), dir))
  end
  st.components = st.components or {}
  st.platform = st.platform or {}
  return st
end

--- save(dir, state): atomic (temp file, fsync, rename), mode 0600.
function M.save(dir, st)
  st.version = M.VERSION
  st.updated = os.date("!%Y-%m-%dT%H:%M:%SZ")
  fs.write_atomic(path(dir), json.encode(st, {pretty = true, sort_keys = true}) .. "\n",
    {mode = tonumber("600", 8)})
end

function M.remove(dir)
  if fs.exists(path(dir)) then fs.remove(path(dir)) end
end

--- A new, empty state for dir.
function M.new(dir)
  return {version = M.VERSION, dir = dir, created = os.date("!%Y-%m-%dT%H:%M:%SZ"), components = {},
    platform = {}}
end

local function self_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = tonumber(f:read("l"):match("^(%d+)"))
  f:close()
  return pid
end

--- lock(dir) -> a guard to close (`local _ <close> = state.lock(dir)`): one twin command at a time per dir.
-- A lock left by a process that died is taken over.
function M.lock(dir)
  -- 0711: the postgres system user (when root runs the twin) must reach its own directory inside
  fs.mkdir(dir, {parents = true, mode = tonumber("711", 8)})
  local lockdir, owner = dir .. "/lock", dir .. "/lock/owner"
  local deadline = require("opsh.time").monotonic() + 30
  while not pcall(fs.mkdir, lockdir, {mode = tonumber("700", 8)}) do
    local holder = tonumber(fs.read(owner, {missing_ok = true}) or "")
    if holder and not proc.alive(holder) then
      fs.rmtree(lockdir)
    elseif require("opsh.time").monotonic() > deadline then
      fail(string.format("another opsh twin command holds %s (pid %s)", lockdir, tostring(holder)))
    else
      core.sleep(0.1)
    end
  end
  fs.write(owner, tostring(self_pid()))
  return setmetatable({}, {__close = function() pcall(fs.rmtree, lockdir) end})
end

--- update(dir, fn): read, fn(state), write back — under the lock. For the API twins' mutations.
function M.update(dir, fn)
  local _ <close> = M.lock(dir)
  local st = M.load(dir)
  if not st then fail("the twin is not running in " .. dir .. " (start it with `opsh twin up`)") end
  local res = table.pack(fn(st))
  M.save(dir, st)
  return table.unpack(res, 1, res.n)
end

return M
