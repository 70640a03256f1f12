-- twin component "azurite": Blob Storage (Azurite from npm, installed by `make deps`) over HTTPS
-- with the twin's certificate, as the storage account devstoreaccount1.
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")
local core = require("opsh._core")

local M = {name = "azurite", program = "node"}

-- Azurite's published development account: the same in every Azurite, not a secret of anyone's.
M.account = "devstoreaccount1"
M.account_key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

--- Where `make deps` put azurite-blob.
function M.binary()
  local prefix = os.getenv("OPSH_NODE_PREFIX")
  if not prefix or prefix == "" then
    local cache = os.getenv("XDG_CACHE_HOME")
    if not cache or cache == "" then cache = (os.getenv("HOME") or "") .. "/.cache" end
    prefix = cache .. "/opsh/node"
  end
  return prefix .. "/node_modules/.bin/azurite-blob"
end

function M.start(tw)
  local bin = M.binary()
  if not fs.exists(bin) then
    error(core.error("twin", "Azurite is not installed (" .. bin .. "): run `make deps` or deploy/npm-deps.sh"), 0)
  end
  local dir = tw.dir .. "/azurite"
  fs.mkdir(dir .. "/data", {parents = true, mode = tonumber("700", 8)})
  local port = net.free_port()
  local p = proc.spawn({argv = {bin, "--blobHost", "127.0.0.1", "--blobPort", port, "--location", dir .. "/data",
      "--disableTelemetry", "--skipApiVersionCheck", "--loose",
      "--cert", tw.ca.cert, "--key", tw.ca.key},
    detach = true, stdout_file = dir .. "/azurite.log", stderr = "stdout"})
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
