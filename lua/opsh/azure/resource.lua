-- opsh.azure.resource (internal): what the resource modules (aks, postgres, redis, ...) share —
-- options checked against what a function knows, the environment and its ARM client, names
-- defaulted from the environment, resource IDs.
local core = require("opsh._core")

local M = {}

local function nearest(name, known)
  local best, best_d
  for k in pairs(known) do
    local d = 0
    for i = 1, math.max(#k, #name) do if k:sub(i, i) ~= name:sub(i, i) then d = d + 1 end end
    if not best_d or d < best_d then best, best_d = k, d end
  end
  return best
end

--- usage(fname, message): raise a usage error naming the function
function M.usage(fname, message)
  error(core.error("usage", string.format("azure.%s: %s", fname, message)), 0)
end

--- args(opts, fname, known) -> opts (a table), refusing options not in `known` (a set; env is always known)
function M.args(opts, fname, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then M.usage(fname, "options table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if k ~= "env" and not known[k] then
      local near = type(k) == "string" and nearest(k, known)
      M.usage(fname, string.format("unknown option '%s'%s", tostring(k), near and ("; did you mean '" .. near .. "'?") or ""))
    end
  end
  return opts
end

--- set(list) -> {name = true}
function M.set(...)
  local s = {}
  for _, n in ipairs({...}) do s[n] = true end
  return s
end

--- ctx(opts) -> envt, arm
function M.ctx(opts)
  local azure = require("opsh.azure")
  local envt = azure.env_of(opts.env)
  return envt, azure.arm(envt)
end

--- list(opts, fname, provider_type, api_version) -> every resource of the type in opts.resource_group,
-- or in the subscription when none is given (all pages)
function M.list(opts, fname, provider_type, api_version)
  opts = M.args(opts, fname, M.set("resource_group"))
  local _, arm = M.ctx(opts)
  local scope = opts.resource_group and arm:id(opts.resource_group) or arm:id()
  return arm:all(scope .. "/providers/" .. provider_type, {api_version = api_version})
end

--- pick(opts, key, envt_value, fname, what) -> opts[key] or the environment's value, else a usage error
function M.pick(opts, key, default, fname, what)
  local v = opts[key]
  if v == nil then v = default end
  if v == nil then M.usage(fname, string.format("%s is required (give %s = ..., or set it in the environment)",
    what or key, key)) end
  if type(v) ~= "string" or v == "" then M.usage(fname, string.format("%s must be a non-empty string", key)) end
  return v
end

--- number(opts, key, fname, min) -> opts[key] as an integer ≥ min (nil when absent)
function M.integer(opts, key, fname, min)
  local v = opts[key]
  if v == nil then return nil end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    M.usage(fname, string.format("%s must be a whole number, got %s", key, tostring(v)))
  end
  v = math.tointeger(v)
  if min and v < min then M.usage(fname, string.format("%s must be at least %d, got %d", key, min, v)) end
  return v
end

--- copy(t) -> a deep copy of a decoded JSON table
function M.copy(t)
  if type(t) ~= "table" then return t end
  local out = setmetatable({}, getmetatable(t))
  for k, v in pairs(t) do out[k] = M.copy(v) end
  return out
end

return M
