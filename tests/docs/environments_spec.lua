-- docs/environments.md documents every field of the environment schema (lua/opsh/env.lua), and the
-- validation errors are one line naming the file and the field.
local env = require("opsh.env")
local fs = require("opsh.fs")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local doc = fs.read(here .. "/../../docs/environments.md")

local function fields(schema, prefix, out)
  for k, v in pairs(schema) do
    if type(v) == "table" then fields(v, prefix .. k .. ".", out) else out[#out + 1] = prefix .. k end
  end
  return out
end

describe("docs/environments.md", function()
  it("has a row for every schema field", function()
    local missing = {}
    for _, f in ipairs(fields(env.schema, "", {})) do
      if not doc:find("| `" .. f .. "` |", 1, true) then missing[#missing + 1] = f end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)
end)

describe("environment checks", function()
  local base = {resource_group = "rg", namespace = "ns", aks = {cluster = "c"}, postgres = {server = "s"}}
  local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
    return c
  end
  local function err_of(t)
    local ok, err = pcall(env.validate, t, "dev.lua")
    assert.is_false(ok)
    assert.equal("config", err.kind)
    assert.is_nil(err.message:find("\n"))
    return err.message
  end

  it("name the nearest field for a typo, and the type found", function()
    local t = copy(base)
    t.redis = {nmae = "x"}
    assert.equal("dev.lua: unknown field 'redis.nmae'; did you mean 'redis.name'?", err_of(t))
    t = copy(base)
    t.aks = "c"
    assert.equal("dev.lua: 'aks' must be a table, not a string", err_of(t))
    t = copy(base)
    t.deployments = "web"
    assert.equal("dev.lua: 'deployments' must be a list of strings, not a string", err_of(t))
    assert.equal("dev.lua: must return a table, not a string", err_of("x"))
    t = copy(base)
    t.postgres.port = "5432"
    assert.equal("dev.lua: 'postgres.port' must be a number, not a string", err_of(t))
  end)
end)
