-- opsh.repl.locals: chunk-level locals that outlive their chunk. A chunk's top-level `local`
-- statements are rewritten into declarations in the session's environment, which every chunk
-- and every function defined at the prompt share.
local complete = require("opsh.repl.complete")
local help = require("opsh.repl.help")
local syntax = require("opsh.repl.syntax")

local M = {}

local OPENS = {["function"] = true, ["do"] = true, ["if"] = true, ["repeat"] = true}
local CLOSES = {["end"] = true, ["until"] = true}

-- The call a chunk-level `local` becomes: declares the names in the session (env's __index
-- answers this key, which is not a name a program can write bare).
local DECLARE = '_ENV["(local)"]'

--- rewrite_locals(source) -> source', {names}: each chunk-level `local` statement becomes an
--- assignment into the session's environment, so that later chunks see the names (as globals
--- do) while nested blocks keep real locals. Lines stay where they are (error positions hold).
---   local a, b <const> = f()   ->  _ENV["(local)"]{"a","b"}; a, b          = f()
---   local x                    ->  _ENV["(local)"]{"x"}; x = nil
---   local function f() ... end ->  _ENV["(local)"]{"f"}; function f() ... end
--- `local x <close>` stays a real local: it is closed when its chunk ends.
function M.rewrite_locals(src)
  local toks = syntax.tokens(src)
  local depth, edits, all = 0, {}, {}
  for i, t in ipairs(toks) do
    if t.kind == "keyword" then
      if OPENS[t.text] then depth = depth + 1
      elseif CLOSES[t.text] then depth = depth - 1
      elseif t.text == "local" and depth == 0 then
        local names, attribs, keep, j = {}, {}, false, i + 1
        local bare = false   -- `local a, b` without values
        if toks[j] and toks[j].text == "function" and toks[j + 1] and toks[j + 1].kind == "name" then
          names[1] = toks[j + 1].text
        else
          while toks[j] and toks[j].kind == "name" do
            names[#names + 1] = toks[j].text
            j = j + 1
            if toks[j] and toks[j].text == "<" and toks[j + 2] and toks[j + 2].text == ">" then
              if toks[j + 1].text ~= "const" then keep = true end
              attribs[#attribs + 1] = {toks[j].s, toks[j + 2].e}
              j = j + 3
            end
            if not (toks[j] and toks[j].text == ",") then break end
            j = j + 1
          end
          bare = not (toks[j] and toks[j].text == "=")
        end
        for _, name in ipairs(names) do
          if name == "_ENV" then return src, {} end   -- the chunk's later names resolve in it
        end
        if #names > 0 and not keep then
          local quoted = {}
          for k, name in ipairs(names) do
            quoted[k] = '"' .. name .. '"'
            all[#all + 1] = name
          end
          edits[#edits + 1] = {t.s, t.e, DECLARE .. "{" .. table.concat(quoted, ",") .. "};"}
          for _, a in ipairs(attribs) do
            edits[#edits + 1] = {a[1], a[2], (src:sub(a[1], a[2]):gsub("[^\n]", " "))}
          end
          if bare then edits[#edits + 1] = {toks[j - 1].e + 1, toks[j - 1].e, " = nil"} end
        end
      end
    end
  end
  if #edits == 0 then return src, all end
  table.sort(edits, function(a, b) return a[1] > b[1] end)
  for _, e in ipairs(edits) do src = src:sub(1, e[1] - 1) .. e[3] .. src:sub(e[2] + 1) end
  return src, all
end

--- environment([base]) -> env: the session's _ENV. Reads fall back to base (_G); assignments go
--- to base too, except to the session's locals (declared by a rewritten `local`), which live in
--- env itself, so that every chunk and every function defined at the prompt share them.
--- A name declared but not yet assigned (`local print = print` while evaluating the right
--- side) still reads the outer value.
function M.environment(base)
  base = base or _G
  local ctl = {declared = {}, pending = {}}
  local env = {}
  local hidden = {}
  hidden["(local)"] = function(names)
    for _, name in ipairs(names) do
      if not ctl.declared[name] then ctl.pending[name] = true end
    end
  end
  hidden["(help)"] = help.help
  -- ?a.b.c / ?a.b:m: what the path holds, else the stub of that name (?opsh.pg.conn:query)
  hidden["(help path)"] = function(path)
    local obj, method = path:match("^(.*):([%a_][%w_]*)$")
    local v = complete.resolve(obj or path, env)
    if v == nil then return help.help(path) end
    if obj then return help.help(v, method) end
    return help.help(v)
  end
  --- the chunk ended: a name it declared but never assigned (it failed first) is not a local
  function ctl.finish() ctl.pending = {} end
  function ctl.declare(name, value)
    ctl.declared[name] = true
    rawset(env, name, value)
  end
  setmetatable(env, {
    __repl = ctl,
    __index = function(_, k)
      if ctl.declared[k] then return nil end
      local h = hidden[k]
      if h ~= nil then return h end
      return base[k]
    end,
    __newindex = function(t, k, v)
      if ctl.declared[k] or ctl.pending[k] then
        ctl.declared[k], ctl.pending[k] = true, nil
        rawset(t, k, v)
      else
        base[k] = v
      end
    end,
  })
  return env
end

return M
