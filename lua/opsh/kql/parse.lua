-- The KQL subset's lexer and parser: a query string -> {source = table name, ops = {...}}.
-- Anything outside the subset raises a "usage" error naming the operator or function.
local core = require("opsh._core")

local M = {}

local function fail(msg)
  error(core.error("usage", "KQL: " .. msg), 0)
end
M.fail = fail

M.UNITS = {d = 86400, h = 3600, m = 60, s = 1, ms = 0.001, tick = 1e-7,
  day = 86400, days = 86400, hour = 3600, hours = 3600, min = 60, minute = 60, minutes = 60,
  sec = 1, second = 1, seconds = 1}

local TWO = {["=="] = true, ["!="] = true, ["<="] = true, [">="] = true, ["<>"] = true, ["=~"] = true,
  ["!~"] = true, [".."] = true}

local function lex(src)
  local toks, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "//" then
      i = (src:find("\n", i, true) or n) + 1
    elseif c == "'" or c == '"' then
      local j, buf = i + 1, {}
      while true do
        local d = src:sub(j, j)
        if d == "" then fail("unterminated string at offset " .. i) end
        if d == "\\" then
          local e = src:sub(j + 1, j + 1)
          buf[#buf + 1] = (e == "n" and "\n") or (e == "t" and "\t") or e
          j = j + 2
        elseif d == c then
          break
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      toks[#toks + 1] = {k = "str", v = table.concat(buf)}
      i = j + 1
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local num = src:match("^%d*%.?%d+[eE][-+]?%d+", i) or src:match("^%d*%.?%d*", i)
      local j = i + #num
      local unit = src:match("^%a+", j)
      if unit and M.UNITS[unit] then
        toks[#toks + 1] = {k = "span", v = tonumber(num) * M.UNITS[unit]}
        j = j + #unit
      elseif unit then
        fail("bad number '" .. num .. unit .. "'")
      else
        toks[#toks + 1] = {k = "num", v = math.tointeger(tonumber(num)) or tonumber(num)}
      end
      i = j
    elseif c:match("[%a_$]") then
      local w = src:match("^[%w_$]+", i)
      toks[#toks + 1] = {k = "id", v = w}
      i = i + #w
      local open = src:match("^%s*%(()", i)
      if open and (w:lower() == "datetime" or w:lower() == "timespan") then
        -- a literal: datetime(2024-01-01T00:00:00Z), datetime('...'), timespan(5m)
        local close = src:find(")", open, true)
        if not close then fail("unterminated " .. w .. "(") end
        local text = src:sub(open, close - 1):match("^%s*(.-)%s*$"):gsub("^(['\"])(.*)%1$", "%2")
        toks[#toks + 1] = {k = "op", v = "("}
        toks[#toks + 1] = {k = "raw", v = text}
        i = close
      end
    elseif c == "!" and src:match("^!%a", i) then
      local w = src:match("^![%a_]+", i)
      toks[#toks + 1] = {k = "id", v = w}
      i = i + #w
    elseif TWO[src:sub(i, i + 1)] then
      toks[#toks + 1] = {k = "op", v = src:sub(i, i + 1)}
      i = i + 2
    elseif c:match("[|(),=<>+%-*/%%%[%];.]") then
      toks[#toks + 1] = {k = "op", v = c}
      i = i + 1
    else
      fail("unexpected character '" .. c .. "' at offset " .. i)
    end
  end
  toks[#toks + 1] = {k = "eof"}
  return toks
end

local P = {}
P.__index = P

function P:peek(o) return self.t[self.i + (o or 0)] end
function P:next() local t = self.t[self.i]; self.i = self.i + 1; return t end
function P:is(k, v) local t = self.t[self.i]; return t.k == k and (v == nil or t.v == v) end
function P:accept(k, v) if self:is(k, v) then return self:next() end end
function P:word(v) local t = self.t[self.i]; if t.k == "id" and t.v:lower() == v then self.i = self.i + 1; return t end end
function P:expect(k, v)
  if self:is(k, v) then return self:next() end
  local t = self.t[self.i]
  fail(string.format("expected %s but found %s", v or k, t.k == "eof" and "the end of the query" or "'" .. tostring(t.v) .. "'"))
end

local STRING_OPS = {has = true, contains = true, startswith = true, endswith = true, ["!has"] = true,
  ["!contains"] = true, ["!startswith"] = true, ["!endswith"] = true, has_cs = true, contains_cs = true,
  ["in"] = true, ["!in"] = true, between = true, ["!between"] = true}
local CMP = {["=="] = true, ["!="] = true, ["<>"] = true, ["<"] = true, ["<="] = true, [">"] = true,
  [">="] = true, ["=~"] = true, ["!~"] = true}

function P:expr() return self:orexpr() end

function P:orexpr()
  local l = self:andexpr()
  while self:word("or") do l = {k = "or", l, self:andexpr()} end
  return l
end

function P:andexpr()
  local l = self:cmp()
  while self:word("and") do l = {k = "and", l, self:cmp()} end
  return l
end

function P:cmp()
  local l = self:add()
  local t = self:peek()
  if t.k == "op" and CMP[t.v] then
    self:next()
    return {k = "cmp", op = t.v == "<>" and "!=" or t.v, l, self:add()}
  end
  if t.k == "id" and STRING_OPS[t.v:lower()] then
    local op = self:next().v:lower()
    if op == "in" or op == "!in" then
      self:expect("op", "(")
      local list = {}
      repeat list[#list + 1] = self:expr() until not self:accept("op", ",")
      self:expect("op", ")")
      return {k = "in", neg = op == "!in", l, list = list}
    elseif op == "between" or op == "!between" then
      self:expect("op", "(")
      local lo = self:add()
      self:expect("op", "..")
      local hi = self:add()
      self:expect("op", ")")
      return {k = "between", neg = op == "!between", l, lo, hi}
    end
    return {k = "strop", op = op, l, self:add()}
  end
  return l
end

function P:add()
  local l = self:mul()
  while self:is("op", "+") or self:is("op", "-") do
    local op = self:next().v
    l = {k = "arith", op = op, l, self:mul()}
  end
  return l
end

function P:mul()
  local l = self:unary()
  while self:is("op", "*") or self:is("op", "/") or self:is("op", "%") do
    local op = self:next().v
    l = {k = "arith", op = op, l, self:unary()}
  end
  return l
end

function P:unary()
  if self:accept("op", "-") then return {k = "neg", self:unary()} end
  return self:primary()
end

local LITERAL_FNS = {datetime = true, timespan = true, dynamic = true}

function P:primary()
  local t = self:next()
  if t.k == "num" then return {k = "lit", v = t.v, type = math.type(t.v) == "integer" and "long" or "real"} end
  if t.k == "span" then return {k = "lit", v = t.v, type = "timespan"} end
  if t.k == "str" then return {k = "lit", v = t.v, type = "string"} end
  if t.k == "op" and t.v == "(" then
    local e = self:expr()
    self:expect("op", ")")
    return e
  end
  if t.k == "id" then
    local w = t.v
    local lw = w:lower()
    if lw == "true" or lw == "false" then return {k = "lit", v = lw == "true", type = "bool"} end
    if self:is("op", "(") then
      self:next()
      if LITERAL_FNS[lw] then
        if lw == "dynamic" then fail("unsupported function 'dynamic'") end
        local text = self:expect("raw").v
        self:expect("op", ")")
        return {k = "literal_fn", fn = lw, text = text}
      end
      local args = {}
      if not self:is("op", ")") then
        repeat args[#args + 1] = self:expr() until not self:accept("op", ",")
      end
      self:expect("op", ")")
      return {k = "call", fn = lw, args = args}
    end
    local node = {k = "col", name = w}
    while self:is("op", ".") or self:is("op", "[") do
      if self:accept("op", ".") then
        node = {k = "member", node, key = self:expect("id").v}
      else
        self:next()
        local key = self:next()
        self:expect("op", "]")
        node = {k = "member", node, key = key.v}
      end
    end
    return node
  end
  fail("unexpected " .. (t.k == "eof" and "end of the query" or "'" .. tostring(t.v) .. "'"))
end

-- `name = expr` or `expr`
function P:assign()
  local t, n2 = self:peek(), self:peek(1)
  if t.k == "id" and n2.k == "op" and n2.v == "=" then
    self:next(); self:next()
    return {name = t.v, expr = self:expr()}
  end
  return {expr = self:expr()}
end

function P:sort_keys()
  local keys = {}
  repeat
    local e = self:expr()
    local desc = true
    if self:word("asc") then desc = false elseif self:word("desc") then desc = true end
    if self:word("nulls") then fail("unsupported clause 'nulls first/last'") end
    keys[#keys + 1] = {expr = e, desc = desc}
  until not self:accept("op", ",")
  return keys
end

local OPS = {}

function OPS.where(p) return {op = "where", expr = p:expr()} end
OPS.filter = OPS.where

function OPS.take(p)
  local n = p:expect("num").v
  if math.type(n) ~= "integer" or n < 0 then fail("take needs a non-negative integer") end
  return {op = "take", n = n}
end
OPS.limit = OPS.take

function OPS.count() return {op = "count"} end

function OPS.extend(p)
  local list = {}
  repeat list[#list + 1] = p:assign() until not p:accept("op", ",")
  return {op = "extend", list = list}
end

function OPS.project(p)
  local list = {}
  repeat list[#list + 1] = p:assign() until not p:accept("op", ",")
  return {op = "project", list = list}
end

function OPS.summarize(p)
  local aggs, by = {}, {}
  if not (p:is("id") and p:peek().v:lower() == "by") then
    repeat aggs[#aggs + 1] = p:assign() until not p:accept("op", ",")
  end
  if p:word("by") then
    repeat by[#by + 1] = p:assign() until not p:accept("op", ",")
  end
  if #aggs == 0 and #by == 0 then fail("summarize needs an aggregation or a by clause") end
  return {op = "summarize", aggs = aggs, by = by}
end

function OPS.top(p)
  local n = p:expect("num").v
  if math.type(n) ~= "integer" or n < 0 then fail("top needs a non-negative integer") end
  if not p:word("by") then fail("expected by after top " .. n) end
  local e = p:expr()
  local desc = true
  if p:word("asc") then desc = false elseif p:word("desc") then desc = true end
  return {op = "top", n = n, keys = {{expr = e, desc = desc}}}
end

function OPS.order(p)
  if not p:word("by") then fail("expected by after order/sort") end
  return {op = "order", keys = p:sort_keys()}
end
OPS.sort = OPS.order

function OPS.render(p)
  while not (p:is("op", "|") or p:is("eof")) do p:next() end
  return nil
end

--- parse(query) -> {source = name, ops = list}
function M.parse(src)
  if type(src) ~= "string" or src:match("^%s*$") then fail("empty query") end
  local p = setmetatable({t = lex(src), i = 1}, P)
  local first = p:peek()
  if first.k ~= "id" then fail("a query starts with a table name") end
  if first.v:lower() == "let" then fail("unsupported statement 'let'") end
  local q = {source = p:next().v, ops = {}}
  while p:accept("op", "|") do
    local t = p:expect("id")
    local name = t.v
    -- hyphenated operators (project-away, mv-expand, make-series) are outside the subset
    while p:is("op", "-") and p:peek(1).k == "id" do
      p:next()
      name = name .. "-" .. p:next().v
    end
    local f = OPS[name:lower()]
    if not f then fail("unsupported operator '" .. name .. "'") end
    local op = f(p)
    if op then q.ops[#q.ops + 1] = op end
  end
  if p:is("op", ";") or not p:is("eof") then
    local t = p:peek()
    fail("unexpected '" .. tostring(t.v) .. "' after the operator (unsupported syntax)")
  end
  return q
end

return M
