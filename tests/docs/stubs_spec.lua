-- The editor stubs in docs/meta/ keep up with the modules: every stub parses, and every public
-- function a module exports is declared in its class (a new function without a stub fails here).
local fs = require("opsh.fs")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local meta_dir = here .. "/../../docs/meta"

local modules = {"opsh", "opsh.json", "opsh.yaml", "opsh.http", "opsh.server", "opsh.crypto", "opsh.proc",
  "opsh.time", "opsh.fs", "opsh.net", "opsh.pg", "opsh.redis", "opsh.out", "opsh.log", "opsh.progress",
  "opsh.dryrun", "opsh.redact", "opsh.repl", "opsh.twin", "opsh.connections", "opsh.k8s", "opsh.azure", "opsh.azure.aks",
  "opsh.azure.postgres", "opsh.azure.redis", "opsh.azure.monitor", "opsh.azure.dns", "opsh.azure.cost",
  "opsh.azure.storage", "opsh.azure.blob", "opsh.azure.query", "opsh.azure.keyvault", "opsh.azure.acr"}

--- {class name -> {member -> true}} from the ---@class / local X = {} / function X.f() lines
local function declared_members()
  local classes = {}
  for _, name in ipairs(fs.list(meta_dir)) do
    if name:match("%.lua$") then
      local var_class, pending = {}, nil
      for line in fs.read(meta_dir .. "/" .. name):gmatch("[^\n]*") do
        local cls = line:match("^%-%-%-@class%s+([%w_.]+)")
        if cls then
          pending = cls
          classes[cls] = classes[cls] or {}
        end
        local field = line:match("^%-%-%-@field%s+([%w_]+)")
        if field and pending then classes[pending][field] = true end
        local var = line:match("^local%s+([%w_]+)%s*=%s*{}")
        if var and pending then var_class[var], pending = pending, nil end
        local v, member = line:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
        if v and var_class[v] then classes[var_class[v]][member] = true end
      end
    end
  end
  return classes
end

describe("docs/meta stubs", function()
  it("name the module LuaLS maps require() to, and return it", function()
    for _, name in ipairs(fs.list(meta_dir)) do
      if name:match("^opsh.*%.lua$") and name ~= "opsh.types.lua" then
        local text = fs.read(meta_dir .. "/" .. name)
        assert.equal("---@meta " .. name:gsub("%.lua$", ""), text:match("^[^\n]*"), name)
        assert.truthy(text:match("\nreturn [%w_]+%s*$"), name .. " must end by returning its module")
      end
    end
  end)

  it("parse as Lua", function()
    for _, name in ipairs(fs.list(meta_dir)) do
      if name:match("%.lua$") then
        local chunk, err = loadfile(meta_dir .. "/" .. name, "t")
        assert.is_truthy(chunk, err)
      end
    end
  end)

  it("declare every public function of every module", function()
    local classes = declared_members()
    local missing = {}
    for _, mod in ipairs(modules) do
      local m = require(mod)
      local members = classes[mod]
      if not members then
        missing[#missing + 1] = mod .. " (no ---@class " .. mod .. ")"
      else
        for k, v in pairs(m) do
          if type(k) == "string" and not k:match("^_") and type(v) == "function" and not members[k] then
            missing[#missing + 1] = mod .. "." .. k
          end
        end
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)
end)
