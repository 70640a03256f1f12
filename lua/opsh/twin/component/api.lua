-- twin component "api": one opsh process (`opsh twin serve`) serving HTTPS with the twin's certificate;
-- the API twins (opsh.twin.apis) mount their routes on it. It always answers /healthz and
-- /twin/v1/state (the platform facts, credentials redacted).
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local core = require("opsh._core")

local M = {name = "api", program = "opsh"}

--- The API twin modules to mount: the bundled list plus OPSH_TWIN_APIS.
function M.plugins()
  local names = {}
  for _, n in ipairs(require("opsh.twin.apis")) do names[#names + 1] = n end
  for n in (os.getenv("OPSH_TWIN_APIS") or ""):gmatch("[^,%s]+") do names[#names + 1] = n end
  local mods = {}
  for i, n in ipairs(names) do
    local mod = require(n)
    if type(mod) ~= "table" or type(mod.name) ~= "string" or type(mod.mount) ~= "function" then
      error(core.error("twin", string.format("API twin module '%s' must return {name=, mount=function}", n)), 0)
    end
    mods[i] = mod
  end
  return mods
end

function M.start(tw)
  local dir = tw.dir .. "/api"
  fs.mkdir(dir, {parents = true, mode = tonumber("700", 8)})
  local port = net.free_port()
  local argv = {runtime.exe(), "twin", "serve", "--dir", tw.dir, "--port", port}
  local p = proc.spawn({argv = argv, detach = true, stdout_file = dir .. "/api.log", stderr = "stdout",
    env_add = {OPSH_TWIN_DIR = tw.dir}})
  local pid = p:pid()
  tw.track(M.name, pid, M.program)
  require("opsh.twin").wait_ready(p, port, dir .. "/api.log")
  local names = {}
  for _, mod in ipairs(M.plugins()) do names[#names + 1] = mod.name end
  return {pid = pid, program = M.program, host = "127.0.0.1", port = port, dir = dir, log = dir .. "/api.log",
    url = "https://127.0.0.1:" .. port, apis = names}
end

function M.check(tw, rec)
  local ok, why = net.port_open("127.0.0.1", rec.port)
  if not ok then return false, why end
  local apis = #rec.apis > 0 and (" (" .. table.concat(rec.apis, ", ") .. ")") or ""
  return true, rec.url .. apis
end

function M.environment(tw, rec, env)
  env.endpoints = env.endpoints or {}
  env.endpoints.ca = tw.ca.ca
  for _, mod in ipairs(M.plugins()) do
    if mod.environment then mod.environment(tw, env) end
  end
end

function M.shell(tw, rec, out)
  for _, mod in ipairs(M.plugins()) do
    if mod.shell then mod.shell(tw, out) end
  end
end

local function redacted(v)
  if type(v) ~= "table" then return v end
  local copy = {}
  for k, x in pairs(v) do
    if type(k) == "string" and (k:find("password") or k:find("key") or k:find("secret")) then
      copy[k] = "<redacted>"
    else
      copy[k] = redacted(x)
    end
  end
  return copy
end

--- The API process itself (`opsh twin serve --dir DIR --port P`): serves until terminated.
function M.serve(tw, port)
  local server = require("opsh.server")
  local srv = server.listen({host = "127.0.0.1", port = port, tls = {cert = tw.ca.cert, key = tw.ca.key,
    client_ca = tw.ca.ca, client_auth = "optional"}})
  srv:route("GET", "/healthz", function() return {status = 200, body = "ok"} end)
  srv:route("GET", "/twin/v1/state", function() return redacted(tw.read_state()) end)
  for _, mod in ipairs(M.plugins()) do mod.mount(srv, tw) end
  io.stdout:write(string.format("opsh twin API serving %s on %s\n", tw.dir, srv.url))
  io.stdout:flush()
  srv:wait()
end

return M
