-- What the fuzz checks share: deep equality from the specs' helpers, and the rule that a
-- failure must be a structured, one-line error of the expected kind.
local core = require("opsh._core")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local S = dofile(here .. "/../support/helpers.lua")

local M = {strict_same = S.strict_same}

--- expected(err, kinds...): err is a structured error of one of the kinds, else raise (a bug)
function M.expected(err, ...)
  for i = 1, select("#", ...) do
    if core.is_error(err, (select(i, ...))) then
      local text = tostring(err)
      if text:find("\n", 1, true) then error("a multi-line error: " .. text, 0) end
      return
    end
  end
  error("not a structured " .. table.concat({...}, "|") .. " error: " .. tostring(err), 0)
end

--- same(a, b, what): raise with where they differ
function M.same(a, b, what)
  local ok, why = S.strict_same(a, b)
  if not ok then error(what .. ": " .. why, 0) end
end

return M
