-- opsh.lsp: editor support. `opsh lsp-setup [DIR]` writes the ---@meta stubs embedded in this opsh
-- to a versioned folder and points DIR/.luarc.json (LuaLS's project settings) at it, so
-- `require("opsh.pg")` completes and type-checks in any editor that runs lua-language-server.
local fs = require("opsh.fs")
local json = require("opsh.json")
local runtime = require("opsh.runtime")

local M = {}

--- stubs_dir() -> where this version's stubs go: $XDG_DATA_HOME/opsh/meta/<version>
function M.stubs_dir()
  local base = os.getenv("XDG_DATA_HOME")
  if not base or base == "" then
    local home = os.getenv("HOME")
    if not home or home == "" then
      error(require("opsh._core").error("usage", "HOME is not set: cannot choose where the stubs go"), 0)
    end
    base = home .. "/.local/share"
  end
  return base .. "/opsh/meta/" .. runtime.version
end

--- write_stubs([dir]) -> dir, count: every embedded stub as <dir>/<module>.lua
function M.write_stubs(dir)
  dir = dir or M.stubs_dir()
  fs.mkdir(dir, {parents = true})
  local n = 0
  for _, name in ipairs(runtime.embedded("meta:")) do
    fs.write_atomic(dir .. "/" .. name .. ".lua", (runtime.embedded_source("meta:" .. name)))
    n = n + 1
  end
  return dir, n
end

--- setup{project = DIR, stubs = DIR} -> {luarc =, stubs =, count =, created =}: the stubs written, and
-- the project's .luarc.json created or updated (its other settings are kept; our folder is added to
-- workspace.library once).
function M.setup(opts)
  opts = opts or {}
  local project = fs.absolute(opts.project or fs.cwd())
  local stubs, count = M.write_stubs(opts.stubs)
  local luarc = project .. "/.luarc.json"
  local settings, created
  local text = fs.read(luarc, {missing_ok = true})
  if text then
    local ok, decoded = pcall(json.decode, text)
    if not ok or type(decoded) ~= "table" or json.is_array(decoded) then
      error(require("opsh._core").error("usage", luarc .. " exists and is not a JSON object; fix or remove it"), 0)
    end
    settings, created = decoded, false
  else
    settings, created = {}, true
  end
  settings["runtime.version"] = settings["runtime.version"] or "Lua 5.4"
  local library = settings["workspace.library"]
  if type(library) ~= "table" then library = json.array() end
  local kept = json.array()
  for _, path in ipairs(library) do
    -- stubs of other opsh versions give way to this one's
    if type(path) ~= "string" or not path:match("/opsh/meta/[^/]+$") or path == stubs then kept[#kept + 1] = path end
  end
  local present = false
  for _, path in ipairs(kept) do if path == stubs then present = true end end
  if not present then kept[#kept + 1] = stubs end
  settings["workspace.library"] = kept
  fs.write_atomic(luarc, json.encode(settings, {pretty = true}) .. "\n")
  return {luarc = luarc, stubs = stubs, count = count, created = created}
end

return M
