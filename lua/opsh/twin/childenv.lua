-- opsh.twin.childenv: the environment the twin's own children get. Clean, so that what the user
-- exported for the real tools (`eval "$(opsh twin env --shell)"`: PGSSLROOTCERT, PGHOST...) never
-- reaches initdb, pg_basebackup or a server: pg_basebackup runs as the postgres user and cannot read
-- a root-owned CA, and a PGHOST would point the launcher's tools at the wrong server.
local M = {}

-- what a child may need to run at all
local KEEP = {"HOME", "USER", "LOGNAME", "TMPDIR", "TZ"}

-- what the twin's own opsh process (`twin serve`) also needs: where modules are, which API twins
M.OPSH = {"OPSH_PATH", "OPSH_TWIN_APIS", "OPSH_TWIN_STORE_HISTORY", "OPSH_NODE_PREFIX", "XDG_CONFIG_HOME",
  "XDG_CACHE_HOME", "XDG_STATE_HOME",
  -- a sanitizer build's settings (suppressions) reach the twin's own opsh processes too
  "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"}

local function with_sbin(path)
  path = (path and path ~= "") and path or "/usr/local/bin:/usr/bin:/bin"
  for _, d in ipairs({"/usr/local/sbin", "/usr/sbin", "/sbin"}) do
    if not (":" .. path .. ":"):find(":" .. d .. ":", 1, true) then path = path .. ":" .. d end
  end
  return path
end

--- clean([extra]) -> an environment for proc.run/spawn's `env`: PATH (with the sbin folders), HOME,
-- USER, LOGNAME, TMPDIR, TZ, LANG=C.UTF-8, plus extra.
function M.clean(extra)
  local env = {PATH = with_sbin(os.getenv("PATH")), LANG = "C.UTF-8"}
  for _, name in ipairs(KEEP) do env[name] = os.getenv(name) end
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

--- for_opsh([extra]) -> clean() plus the OPSH_* and XDG_* variables opsh itself reads
function M.for_opsh(extra)
  local env = M.clean()
  for _, name in ipairs(M.OPSH) do env[name] = os.getenv(name) end
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

return M
