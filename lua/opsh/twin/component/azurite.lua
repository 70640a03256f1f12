-- twin component "azurite": Blob Storage (Azurite from npm, installed by `make deps`) over HTTPS
-- with the twin's certificate, as the storage account devstoreaccount1.
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")
local core = require("opsh._core")

local M = {name = "azurite", program = "node", phase = 3}

-- Azurite's published development account: the same in every Azurite, not a secret of anyone's.
M.account = "devstoreaccount1"
M.account_key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

local RELATIVE = "/node_modules/.bin/azurite-blob"

-- the home directory of a user from the password database (not $HOME, which the caller may have changed)
local function passwd_home(match)
  local f = io.open("/etc/passwd", "r")
  if not f then return nil end
  for line in f:lines() do
    local name, uid, home = line:match("^([^:]*):[^:]*:(%d+):%d*:[^:]*:([^:]*):")
    if name and match(name, tonumber(uid)) then f:close(); return home end
  end
  f:close()
end

local function my_uid()
  local f = io.open("/proc/self/status", "r")
  local uid = f and tonumber(f:read("a"):match("\nUid:%s+(%d+)"))
  if f then f:close() end
  return uid
end

--- candidates() -> the places `make deps` (deploy/npm-deps.sh) may have put azurite-blob, in order:
-- $OPSH_NODE_PREFIX, $XDG_CACHE_HOME/opsh/node, $HOME/.cache/opsh/node, then the same under the home
-- directory the password database gives this user (and $SUDO_USER), whatever HOME is now; then PATH.
function M.candidates()
  local list, seen = {}, {}
  local function add(prefix)
    if prefix and prefix ~= "" and not seen[prefix] then
      seen[prefix] = true
      list[#list + 1] = prefix .. RELATIVE
    end
  end
  add(os.getenv("OPSH_NODE_PREFIX"))
  local cache = os.getenv("XDG_CACHE_HOME")
  if cache and cache ~= "" then add(cache .. "/opsh/node") end
  local home = os.getenv("HOME")
  if home and home ~= "" then add(home .. "/.cache/opsh/node") end
  local uid = my_uid()
  local real = uid and passwd_home(function(_, u) return u == uid end)
  if real then add(real .. "/.cache/opsh/node") end
  local sudo = os.getenv("SUDO_USER")
  local sudo_home = sudo and sudo ~= "" and passwd_home(function(n) return n == sudo end)
  if sudo_home then add(sudo_home .. "/.cache/opsh/node") end
  for d in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = d .. "/azurite-blob"
    if not seen[p] then seen[p] = true; list[#list + 1] = p end
  end
  return list
end

--- binary() -> the azurite-blob `make deps` installed, or raises naming where it looked
function M.binary()
  local list = M.candidates()
  for _, p in ipairs(list) do
    if fs.exists(p) then return p end
  end
  error(core.error("twin", "Azurite is not installed (looked in " .. table.concat(list, ", ", 1, math.min(#list, 4))
    .. (#list > 4 and " and PATH" or "") .. "): run `make deps`, or set OPSH_NODE_PREFIX, or leave it out with "
    .. "`opsh twin up --without azurite`"), 0)
end

function M.start(tw)
  local bin = M.binary()
  local dir = tw.dir .. "/azurite"
  fs.mkdir(dir .. "/data", {parents = true, mode = tonumber("700", 8)})
  local port = net.free_port()
  local p = proc.spawn({argv = {bin, "--blobHost", "127.0.0.1", "--blobPort", port, "--location", dir .. "/data",
      "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--oauth", "basic",
      "--cert", tw.ca.cert, "--key", tw.ca.key},
    detach = true, stdout_file = dir .. "/azurite.log", stderr = "stdout", env = require("opsh.twin.childenv").clean()})
  local pid = p:pid()
  tw.track(M.name, pid, M.program)
  require("opsh.twin").wait_ready(p, port, dir .. "/azurite.log")
  return {pid = pid, program = M.program, host = "127.0.0.1", port = port, dir = dir,
    log = dir .. "/azurite.log", account = M.account,
    endpoint = string.format("https://127.0.0.1:%d/%s", port, M.account)}
end

function M.check(tw, rec)
  local ok, why = net.port_open("127.0.0.1", rec.port)
  return ok, ok and rec.endpoint or why
end

function M.shell(tw, rec, out)
  out.AZURE_STORAGE_CONNECTION_STRING = string.format(
    "DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
    M.account, M.account_key, rec.endpoint)
end

function M.environment(tw, rec, env)
  env.storage = {account = M.account, endpoint = rec.endpoint, backup_container = "backups"}
  env.twin.storage_key = core.secret(M.account_key)
end

return M
