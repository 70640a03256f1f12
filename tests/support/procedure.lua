-- What the procedure specs share (dofile it): the opsh binary run against the twin in a directory, and
-- the paths of the bundled procedures.
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

return P
