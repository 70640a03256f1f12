-- What the procedure specs share (dofile it): the opsh binary run against the twin in a directory, the
-- paths of the bundled procedures, and a Kubernetes client for the twin.
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")

local P = {}

P.root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/support") .. "/../.."

--- script(name) -> the path of scripts/<name>.lua
function P.script(name) return P.root .. "/scripts/" .. name .. ".lua" end

--- exec(dir, ...) -> the outcome {code, stdout, stderr} of `opsh ...` against the twin in dir; its audit
-- lines go to dir/audit.log
function P.exec(dir, ...)
  local argv = {runtime.exe(), ...}
  return proc.run{argv = argv, env_add = {OPSH_TWIN_DIR = dir, OPSH_AUDIT_LOG = dir .. "/audit.log"},
    check = false, timeout = 300}
end

--- opsh(dir, ...) -> exec(dir, "--env", "twin", ...)
function P.opsh(dir, ...) return P.exec(dir, "--env", "twin", ...) end

--- k8s(dir) -> an opsh.k8s client for the twin in dir (namespace production, discovery cached in dir)
function P.k8s(dir)
  local kubeconfig
  for _, kv in ipairs(require("opsh.twin").shell_exports(dir)) do
    if kv[1] == "KUBECONFIG" then kubeconfig = kv[2] end
  end
  return require("opsh.k8s").client{kubeconfig = kubeconfig, namespace = "production", cache_dir = dir .. "/cache"}
end

return P
