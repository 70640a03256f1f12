-- opsh.cli.new: `opsh new NAME [DIR]` writes a procedure to start from, DIR/scripts/NAME.lua, and
-- its spec, DIR/tests/NAME_spec.lua (DIR: ~/.config/opsh, where `opsh run NAME` finds it). The
-- spec passes as written (`opsh test DIR/tests/NAME_spec.lua`); both are meant to be edited.
local core = require("opsh._core")
local runtime = require("opsh.runtime")
local script = require("opsh.script")
local fs = require("opsh.fs")

local M = {}

local function usage(message) error(core.error("usage", message), 0) end

M.procedure = [==[
-- NAME: what it does, in one line. Edit freely; `opsh lint` checks the declaration.
---@type opsh.procedure
return {
  description = "TODO: what NAME does, in one line\nMore detail, shown by `opsh help NAME`.",
  categories = {"custom"},
  flags = {"read-only"},           -- read-only | mutating | destructive (asks before it runs)
  args = {
    target = {help = "what to look at", default = "web"},
    limit = {help = "how many items", type = "integer", default = 3},
  },
  examples = {"opsh run NAME --target=web --limit=5"},
  run = function(ctx, args)
    local opsh = require("opsh")
    if args.limit < 1 then opsh.raise("usage", "--limit must be at least 1") end
    local items = {}
    for i = 1, args.limit do items[i] = string.format("%s-%d", args.target, i) end
    -- each item in its own task: an HTTP, PostgreSQL or Redis call suspends only its task
    local rows = opsh.parallel(items, function(item)
      return {item = item, ok = true}
    end, {limit = 8})
    ctx.out(rows, {columns = {"item", "ok"}})
    for _, row in ipairs(rows) do
      if not row.ok then ctx.problem(row.item .. " is not ok") end   -- exit status 3
    end
  end,
}
]==]

M.spec = [==[
-- Specs of scripts/NAME.lua: opsh test tests/NAME_spec.lua (from the folder above this one)
local json = require("opsh.json")
local proc = require("opsh.proc")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local procedure = here .. "/../scripts/NAME.lua"

-- the opsh running these specs (/proc/self/exe), on the command line as a user runs it
local function opsh(...)
  return proc.run({argv = {"/proc/self/exe", ...}, check = false})
end

describe("NAME", function()
  it("has a sound declaration", function()
    local r = opsh("lint", procedure)
    assert.are.equal(0, r.code, r.stdout)
  end)

  it("prints one row per item", function()
    local r = opsh("-o", "json", "run", procedure, "--target=api", "--limit=2")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({{item = "api-1", ok = true}, {item = "api-2", ok = true}}, json.decode(r.stdout))
  end)

  it("refuses a limit below 1 with a usage error", function()
    local r = opsh("run", procedure, "--limit=0")
    assert.are.equal(2, r.code)
    assert.matches("%-%-limit must be at least 1", r.stderr)
  end)
end)
]==]

local function fill(template, name)
  return (template:gsub("NAME", name))
end

--- opsh new NAME [DIR]
function M.main(opts, words)
  for _, w in ipairs(words) do
    if w:sub(1, 1) == "-" then usage(string.format("new: unknown option '%s' (usage: opsh new NAME [DIR])", w)) end
  end
  local name, dir = words[1], words[2]
  if not name or #words > 2 then usage("usage: opsh new NAME [DIR]") end
  if not name:match("^[%a][%w_-]*$") then
    usage(string.format("new: '%s' is not a script name (a letter, then letters, digits, '-' or '_')", name))
  end
  if runtime.embedded_path("script:" .. name) then
    usage(string.format("new: '%s' is a bundled script; to edit it: opsh scripts export", name))
  end
  local roots = runtime.roots()
  local default = roots[#roots]
  dir = dir or default
  if not dir then usage("new: no DIR given and HOME is not set") end
  local files = {
    {path = dir .. "/scripts/" .. name .. ".lua", text = fill(M.procedure, name)},
    {path = dir .. "/tests/" .. name .. "_spec.lua", text = fill(M.spec, name)},
  }
  for _, f in ipairs(files) do
    if fs.exists(f.path) then usage(string.format("new: %s already exists (never overwritten)", f.path)) end
  end
  for _, f in ipairs(files) do
    fs.mkdir(fs.dirname(f.path), {parents = true})
    fs.write(f.path, f.text)
  end
  local on_path = false
  for _, r in ipairs(roots) do on_path = on_path or fs.absolute(r) == fs.absolute(dir) end
  io.stdout:write(string.format("wrote %s\nwrote %s\n", files[1].path, files[2].path))
  io.stdout:write(string.format("try: opsh run %s   then: opsh test %s\n",
    on_path and name or script.command_ref(files[1].path), script.command_ref(files[2].path)))
  if not on_path then
    io.stdout:write(string.format("(add %s to OPSH_PATH for `opsh run %s`)\n", dir, name))
  end
  return 0
end

return M
