-- Declaration checks (opsh.script.validate): the nearest known name and the line of a typo.
local script = require("opsh.script")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

-- the message validate raises for the declaration `src` returns, its source given
local function problem(src)
  local decl = assert(load(src, "=t.lua", "t"))()
  local err = S.catch(script.validate, decl, "t.lua", src)
  assert.are.equal("script", err.kind)
  return err.message
end

describe("a declaration", function()
  it("names the nearest flag and its line", function()
    assert.are.equal("t.lua:4: unknown flag 'readonly'; did you mean 'read-only'?", problem(
      'return {description = "d",\n  categories = {"c"},\n  run = function() end,\n  flags = {"readonly"}}'))
  end)

  it("names the nearest field of the declaration and of an argument", function()
    assert.are.equal("t.lua:2: unknown field 'descripton' in the declaration; did you mean 'description'?",
      problem('return {\n  descripton = "d", run = function() end}'))
    assert.are.equal("t.lua:4: argument 'n': unknown field 'hlep'; did you mean 'help'?", problem(
      'return {description = "d", categories = {"c"}, run = function() end,\n  args = {\n' ..
      '    m = {help = "hlep"},\n    n = {hlep = "n"}}}'))
  end)

  it("names the nearest type, on the line of the argument that has it", function()
    assert.are.equal("t.lua:3: argument 'w': unknown type 'duraton'; did you mean 'duration'?", problem(
      'return {description = "d", categories = {"c"}, run = function() end, args = {\n' ..
      '  x = {help = "x"},\n  w = {help = "w", type = "duraton"}}}'))
  end)

  it("suggests nothing for a name far from every known one, and has no line without a source", function()
    assert.are.equal("t.lua:1: unknown flag 'zzzzzzzz'", problem(
      'return {description = "d", categories = {"c"}, run = function() end, flags = {"zzzzzzzz"}}'))
    local err = S.catch(script.validate, {description = "d", categories = {"c"}, run = print,
      flags = {"readonly"}}, "t.lua")
    assert.are.equal("t.lua: unknown flag 'readonly'; did you mean 'read-only'?", err.message)
  end)
end)
