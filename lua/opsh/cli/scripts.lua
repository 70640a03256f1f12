-- opsh.cli.scripts: `opsh scripts export|diff|reset`, the bundled procedures and their edited copies.
local core = require("opsh._core")
local runtime = require("opsh.runtime")
local script = require("opsh.script")
local fs = require("opsh.fs")

local M = {}

local USAGE = "usage: opsh scripts export [DIR] | diff NAME | reset NAME"

local function usage(message) error(core.error("usage", message), 0) end

-- the words of a subcommand: options are refused (none is defined), at most `max` operands
local function operands(sub, words, max, what)
  local list = {}
  for i = 2, #words do
    local w = words[i]
    if w:sub(1, 1) == "-" then
      usage(string.format("scripts %s: unknown option '%s' (%s)", sub, w, USAGE))
    end
    list[#list + 1] = w
  end
  if #list > max then usage(string.format("scripts %s takes %s (%s)", sub, what, USAGE)) end
  return list
end

local function bundled_source(name)
  if not runtime.embedded_path("script:" .. name) then return nil end
  return runtime.embedded_source("script:" .. name)
end

-- the edited copy that wins over the bundled `name`, or a usage error saying why there is none
local function edited_copy(sub, name)
  if not name then usage(string.format("scripts %s needs a script name (%s)", sub, USAGE)) end
  local loc = script.locate(name)
  if not bundled_source(name) then
    if loc then usage(string.format("scripts %s: '%s' is not a bundled script (%s is your own)", sub, name,
      loc.path)) end
    local names = {}
    for _, n in ipairs(runtime.embedded("script:")) do names[#names + 1] = n end
    local nearest = script.nearest(name, names)
    usage(string.format("scripts %s: unknown script '%s'%s", sub, name,
      nearest and string.format("; did you mean '%s'?", nearest) or " (see 'opsh list')"))
  end
  if not loc.path then
    usage(string.format("scripts %s: '%s' has no edited copy (the bundled one runs)", sub, name))
  end
  return loc.path
end

--- opsh scripts export [DIR]: the bundled scripts to DIR/scripts (default ~/.config/opsh);
-- an edited copy already there is kept.
function M.export(opts, words)
  local dir = operands("export", words, 1, "one DIR at most")[1]
  local roots = runtime.roots()
  dir = dir or roots[#roots]
  if not dir then usage("no DIR given and HOME is not set") end
  local target = dir .. "/scripts"
  fs.mkdir(target, {parents = true})
  local written, kept = 0, 0
  for _, name in ipairs(runtime.embedded("script:")) do
    local path = target .. "/" .. name .. ".lua"
    if fs.stat(path) then
      kept = kept + 1
      io.stderr:write(string.format("opsh: kept %s (already there; an edited copy is never overwritten)\n", path))
    else
      fs.write(path, (runtime.embedded_source("script:" .. name)))
      written = written + 1
    end
  end
  io.stdout:write(string.format("exported %d script(s) to %s (%d kept)%s\n", written, target, kept,
    dir ~= roots[#roots] and ("; add " .. dir .. " to OPSH_PATH so they take effect") or ""))
  return 0
end

--- opsh scripts diff NAME: the edited copy against the bundled one, as a unified diff.
function M.diff(opts, words)
  local name = operands("diff", words, 1, "one NAME")[1]
  local path = edited_copy("diff", name)
  local r = require("opsh.proc").run({argv = {"diff", "-u", "--label", "bundled/" .. name .. ".lua",
    "--label", path, "-", path}, stdin = bundled_source(name), check = false})
  if r.code > 1 then
    error(core.error("proc", "diff failed: " .. (r.stderr or ""):gsub("%s+$", "")), 0)
  end
  if r.code == 0 then
    io.stderr:write(string.format("opsh: %s is the same as the bundled %s\n", path, name))
  end
  io.stdout:write(r.stdout)
  return 0
end

--- opsh scripts reset NAME: the bundled script runs again; the edited copy is kept as NAME.lua.bak.
function M.reset(opts, words)
  local name = operands("reset", words, 1, "one NAME")[1]
  local path = edited_copy("reset", name)
  if fs.read(path) == bundled_source(name) then   -- e.g. a checkout on OPSH_PATH: its sources are not edits
    io.stderr:write(string.format("opsh: %s is the same as the bundled %s: nothing to reset\n", path, name))
    return 0
  end
  local backup = path .. ".bak"
  fs.rename(path, backup)
  local still = script.locate(name)
  io.stdout:write(string.format("%s: the bundled script runs again; your copy is %s\n", name, backup))
  if still and still.path then
    io.stderr:write(string.format("opsh: note: %s is another edited copy of %s, and wins now\n", still.path, name))
  end
  return 0
end

function M.main(opts, words)
  local sub = words[1]
  if sub == "export" then return M.export(opts, words)
  elseif sub == "diff" then return M.diff(opts, words)
  elseif sub == "reset" then return M.reset(opts, words)
  end
  usage(sub and string.format("unknown scripts command '%s' (%s)", sub, USAGE) or USAGE)
end

return M
