-- Shared by the az fidelity specs: a twin with the ARM API (and the servers a spec needs), and the real
-- az 2.45 run against it with the configuration `opsh twin up` prepared (no secret in its argv or env).
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local twin = require("opsh.twin")

local H = {}

H.platform = require("opsh.twin.platform")
H.sub = H.platform.subscription

function H.have_az()
  return proc.run({argv = {"sh", "-c", "command -v az"}, check = false}).code == 0
end

--- up(without) -> dir, env (the shell exports without the AZURE_CLIENT_SECRET az does not need)
function H.up(without)
  local dir = fs.tmpdir("opsh-az-spec-")
  twin.up({dir = dir, without = without})
  local env = {}
  for _, kv in ipairs(twin.shell_exports(dir)) do env[kv[1]] = kv[2] end
  env.AZURE_CLIENT_SECRET = nil
  return dir, env
end

function H.down(dir)
  pcall(twin.down, {dir = dir})
  pcall(fs.rmtree, dir)
end

--- az(env, args...) -> decoded JSON output (or the raw text with -o tsv), the result; raises with
-- az's stderr when it fails, unless `H.az_fail` is used.
local function run(env, args)
  local argv = {"az"}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local e = {HOME = env.HOME_DIR or os.getenv("HOME"), PATH = os.getenv("PATH"), LANG = "C.UTF-8"}
  for k, v in pairs(env) do e[k] = v end
  e.HOME_DIR = nil
  e.KUBECONFIG = e.KUBECONFIG or (env.AZURE_CONFIG_DIR .. "/kubeconfig")
  return proc.run({argv = argv, env = e, check = false, timeout = 180})
end

function H.az(env, ...)
  local args = {...}
  local res = run(env, args)
  if res.code ~= 0 then
    error(string.format("az %s failed (%s): %s", table.concat(args, " "), tostring(res.code), res.stderr or ""), 0)
  end
  local out = res.stdout or ""
  local ok, v = pcall(json.decode, out)
  if ok and out:match("%S") then return v, res end
  return (out:gsub("%s+$", "")), res
end

--- az_fail(env, ...) -> stderr of a command that must fail (raises if it succeeded)
function H.az_fail(env, ...)
  local args = {...}
  local res = run(env, args)
  if res.code == 0 then error("az " .. table.concat(args, " ") .. " succeeded; expected a failure", 0) end
  return res.stderr or ""
end

function H.rid(rg, ptype, name, ...)
  return require("opsh.twin.arm.seed").rid(rg, ptype, name, ...)
end

--- arm(dir, id) -> the object the twin store holds for an ARM resource
function H.arm(dir, id)
  local obj = twin.client(dir):get("arm", id:lower())
  return obj
end

--- until_(fn, timeout): polls fn until it returns a truthy value
function H.eventually(fn, timeout)
  local deadline = os.time() + (timeout or 20)
  while true do
    local v = fn()
    if v then return v end
    if os.time() > deadline then return v end
    require("opsh").sleep(0.2)
  end
end

return H
