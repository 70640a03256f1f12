-- Fuzz target: the command line (opsh.cli's global flags, opsh.script's typed arguments).
-- Input: one argument per line. Every outcome is typed arguments that hold what their
-- declaration says, or a one-line usage error; never a Lua error.
local cli = require("opsh.cli")
local script = require("opsh.script")
local json = require("opsh.json")
local F = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/common.lua")

local decl = script.validate({
  description = "fuzzed", categories = {"fuzz"}, run = function() end,
  args = {
    name = {help = "a string", required = false},
    replicas = {help = "an integer", type = "integer", default = 2},
    ratio = {help = "a number", type = "number"},
    force = {help = "a switch", type = "boolean", default = false},
    wait = {help = "a duration", type = "duration", default = "5m"},
    deployments = {help = "a list", type = "list", default = "web,gateway"},
    tier = {help = "a choice", choices = {"Basic", "Standard", "Premium"}, default = "Standard"},
    max_lag = {help = "underscored", type = "integer"},
    ["dry-lag"] = {help = "dashed", type = "duration"},
  },
}, "fuzz.lua")

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

local want = {
  string = function(v) return type(v) == "string" end,
  integer = function(v) return math.type(v) == "integer" end,
  number = function(v) return type(v) == "number" and finite(v) end,
  boolean = function(v) return type(v) == "boolean" end,
  duration = function(v) return type(v) == "number" and finite(v) and v >= 0 end,
  list = function(v)
    if not json.is_array(v) then return false end
    for _, item in ipairs(v) do
      if type(item) ~= "string" or item == "" or item:find(",") or item:match("^%s") or item:match("%s$") then
        return false
      end
    end
    return true
  end,
}

local function check(data)
  local words = {}
  for line in (data .. "\n"):gmatch("([^\n]*)\n") do words[#words + 1] = line:gsub("%z", "") end
  local ok, opts, rest = pcall(cli.parse, words)
  if not ok then return F.expected(opts, "usage") end
  assert(opts.output == nil or ({table = 1, json = 1, yaml = 1, tsv = 1})[opts.output], "output format")
  if rest[1] == "run" then table.remove(rest, 1); table.remove(rest, 1) end   -- as cmd_run takes them
  local args
  ok, args = pcall(function() return script.parse_args(decl, cli.script_args(rest, decl, "fz"), "fz") end)
  if not ok then return F.expected(args, "usage") end
  for name, value in pairs(args) do
    local spec = decl.args[name]
    assert(spec, "an argument that is declared: " .. tostring(name))
    assert(want[spec.type](value), string.format("--%s holds a %s", name, spec.type))
    if spec.choices then
      local found = false
      for _, c in ipairs(spec.choices) do found = found or c == value end
      assert(found, "--" .. name .. " is one of its choices")
    end
  end
  local d = script.parse_duration(words[1] or "")
  assert(d == nil or want.duration(d), "parse_duration gives seconds or nil")
  script.nearest(words[1] or "", {"name", "replicas", "max_lag"})
end

return {check = check, coverage = true}
