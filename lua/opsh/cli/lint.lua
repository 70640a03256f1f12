-- opsh.cli.lint: `opsh lint FILE|NAME ...` checks procedures' declarations as the loader does
-- (fields, types, flags, arguments, defaults; the nearest known name and the line of a typo)
-- without running them: only the file's top level runs, which builds the declaration.
local core = require("opsh._core")
local script = require("opsh.script")

local M = {}

--- -> 0 when every declaration is sound, 3 when some are not (one line each on stdout)
function M.main(opts, words)
  if #words == 0 then error(core.error("usage", "usage: opsh lint FILE|NAME ..."), 0) end
  for _, ref in ipairs(words) do
    if ref:sub(1, 1) == "-" then
      error(core.error("usage", string.format("lint: unknown option '%s' (usage: opsh lint FILE|NAME ...)", ref)), 0)
    end
  end
  local bad = 0
  for _, ref in ipairs(words) do
    local ok, decl, _, origin = pcall(script.load, ref)
    if ok and decl == nil then
      local names = {}
      for n in pairs(script.all()) do names[#names + 1] = n end
      local nearest = script.nearest(ref, names)
      error(core.error("usage", string.format("lint: unknown script '%s'%s", ref,
        nearest and string.format("; did you mean '%s'?", nearest) or " (give a file as ./name.lua)")), 0)
    elseif ok then
      if not opts.quiet then io.stdout:write(origin == "bundled" and ref or origin, ": ok\n") end
    elseif core.is_error(decl, "usage") then
      error(decl, 0)
    else
      bad = bad + 1
      io.stdout:write(core.describe(decl):gsub("^script: ", ""), "\n")
    end
  end
  return bad > 0 and 3 or 0
end

return M
