-- A KQL subset evaluated over Lua tables (the query twins' engine).
-- run(query, tables, {now =}) -> {name = "PrimaryResult", columns = {{name, type}}, rows = {{...}}}
-- tables[name] = {columns = {{name =, type =}}, rows = {record keyed by column name}}; datetimes are epoch
-- seconds inside, ISO 8601 strings out; timespans seconds inside, "[d.]hh:mm:ss[.fffffff]" out.
local parse = require("opsh.kql.parse")
local time = require("opsh.time")
local json = require("opsh.json")

local M = {}
local fail = parse.fail

local function tostr(v)
  if v == nil then return "" end
  if type(v) == "number" and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return tostring(math.tointeger(v))
  end
  return tostring(v)
end

local function span_text(s)
  local neg = s < 0 and "-" or ""
  s = math.abs(s)
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local h, m = math.floor(rem / 3600), math.floor(rem % 3600 / 60)
  local sec = rem - h * 3600 - m * 60
  local out = string.format("%s%02d:%02d:%02d", days > 0 and days .. "." or "", h, m, math.floor(sec))
  local frac = sec - math.floor(sec)
  if frac > 1e-9 then out = out .. string.format(".%07d", math.floor(frac * 1e7 + 0.5)) end
  return neg .. out
end

local function has_term(hay, needle)
  if hay == nil or needle == nil then return false end
  hay, needle = tostr(hay):lower(), tostr(needle):lower()
  if needle == "" then return true end
  local i = 1
  while true do
    local s, e = hay:find(needle, i, true)
    if not s then return false end
    local before, after = hay:sub(s - 1, s - 1), hay:sub(e + 1, e + 1)
    if not before:match("[%w_]") and not after:match("[%w_]") then return true end
    i = s + 1
  end
end

local STRING = {
  has = function(a, b) return has_term(a, b) end,
  has_cs = function(a, b) return a ~= nil and b ~= nil and tostr(a):find(tostr(b), 1, true) ~= nil and has_term(a, b) end,
  contains = function(a, b) return a ~= nil and tostr(a):lower():find(tostr(b):lower(), 1, true) ~= nil end,
  contains_cs = function(a, b) return a ~= nil and tostr(a):find(tostr(b), 1, true) ~= nil end,
  startswith = function(a, b) return a ~= nil and tostr(a):lower():sub(1, #tostr(b)) == tostr(b):lower() end,
  endswith = function(a, b)
    local x, y = tostr(a):lower(), tostr(b):lower()
    return a ~= nil and (y == "" or x:sub(-#y) == y)
  end,
}
for k, f in pairs(STRING) do
  if not k:match("_cs$") then STRING["!" .. k] = function(a, b) return not f(a, b) end end
end

local function compare(a, b)
  if a == nil or b == nil then return nil end
  if type(a) ~= type(b) then a, b = tostr(a), tostr(b) end
  if type(a) == "boolean" then a, b = a and 1 or 0, b and 1 or 0 end
  if a < b then return -1 elseif a > b then return 1 end
  return 0
end

-- Static type of an expression given the columns' types.
local typeof

local NUMERIC = {long = true, int = true, real = true, decimal = true}

local FN_TYPES = {
  ago = "datetime", now = "datetime", isnotempty = "bool", isempty = "bool", isnull = "bool",
  isnotnull = "bool", ["not"] = "bool", tostring = "string", toint = "int", tolong = "long",
  todouble = "real", toreal = "real", strlen = "long", tolower = "string", toupper = "string",
  round = "real", todatetime = "datetime", totimespan = "timespan", tobool = "bool", strcat = "string",
  startofday = "datetime",
}

typeof = function(e, types)
  local k = e.k
  if k == "lit" then return e.type end
  if k == "col" then return types[e.name] or "dynamic" end
  if k == "member" then return "dynamic" end
  if k == "literal_fn" then return e.fn end
  if k == "or" or k == "and" or k == "cmp" or k == "strop" or k == "in" or k == "between" then return "bool" end
  if k == "neg" then return typeof(e[1], types) end
  if k == "arith" then
    local a, b = typeof(e[1], types), typeof(e[2], types)
    if a == "datetime" and b == "datetime" and e.op == "-" then return "timespan" end
    if a == "datetime" or b == "datetime" then return "datetime" end
    if a == "timespan" and b == "timespan" and e.op == "/" then return "real" end
    if a == "timespan" or b == "timespan" then return "timespan" end
    if a == "real" or b == "real" then return "real" end
    return NUMERIC[a] and a or "real"
  end
  if k == "call" then
    if e.fn == "bin" or e.fn == "floor" then return typeof(e.args[1], types) end
    if e.fn == "iff" or e.fn == "iif" then return typeof(e.args[2], types) end
    return FN_TYPES[e.fn] or "dynamic"
  end
  return "dynamic"
end

local eval

local FNS = {}

local function nargs(fn, args, lo, hi)
  if #args < lo or #args > (hi or lo) then
    fail(string.format("%s() takes %s argument%s, got %d", fn, hi and hi ~= lo and lo .. " to " .. hi or lo,
      (hi or lo) == 1 and "" or "s", #args))
  end
end

function FNS.ago(args, row, cx) nargs("ago", args, 1); local d = eval(args[1], row, cx); return d and cx.now - d end
function FNS.now(args, row, cx) nargs("now", args, 0, 1); return cx.now + (args[1] and eval(args[1], row, cx) or 0) end
function FNS.bin(args, row, cx)
  nargs("bin", args, 2)
  local v, w = eval(args[1], row, cx), eval(args[2], row, cx)
  if v == nil or w == nil then return nil end
  if type(v) ~= "number" or type(w) ~= "number" or w <= 0 then fail("bin() needs a number or datetime and a positive size") end
  return math.floor(v / w) * w
end
FNS.floor = FNS.bin
function FNS.startofday(args, row, cx)
  nargs("startofday", args, 1)
  local v = eval(args[1], row, cx)
  return v and v // 86400 * 86400
end
function FNS.isempty(args, row, cx) nargs("isempty", args, 1); local v = eval(args[1], row, cx); return v == nil or v == "" end
function FNS.isnotempty(args, row, cx) return not FNS.isempty(args, row, cx) end
function FNS.isnull(args, row, cx) nargs("isnull", args, 1); return eval(args[1], row, cx) == nil end
function FNS.isnotnull(args, row, cx) return not FNS.isnull(args, row, cx) end
FNS["not"] = function(args, row, cx) nargs("not", args, 1); return not eval(args[1], row, cx) end
function FNS.tostring(args, row, cx)
  nargs("tostring", args, 1)
  local v = eval(args[1], row, cx)
  if type(v) == "table" then return json.encode(v) end
  return tostr(v)
end
local function tonum(fn, integer)
  return function(args, row, cx)
    nargs(fn, args, 1)
    local v = tonumber(eval(args[1], row, cx))
    if v and integer then v = math.tointeger(v >= 0 and math.floor(v) or math.ceil(v)) end
    return v
  end
end
FNS.toint, FNS.tolong, FNS.todouble, FNS.toreal = tonum("toint", true), tonum("tolong", true), tonum("todouble"), tonum("toreal")
function FNS.strlen(args, row, cx) nargs("strlen", args, 1); return #tostr(eval(args[1], row, cx)) end
function FNS.tolower(args, row, cx) nargs("tolower", args, 1); return tostr(eval(args[1], row, cx)):lower() end
function FNS.toupper(args, row, cx) nargs("toupper", args, 1); return tostr(eval(args[1], row, cx)):upper() end
function FNS.strcat(args, row, cx)
  local out = {}
  for i, a in ipairs(args) do out[i] = tostr(eval(a, row, cx)) end
  return table.concat(out)
end
function FNS.round(args, row, cx)
  nargs("round", args, 1, 2)
  local v = eval(args[1], row, cx)
  local p = args[2] and eval(args[2], row, cx) or 0
  if v == nil then return nil end
  local f = 10 ^ p
  return math.floor(v * f + 0.5) / f
end
function FNS.iff(args, row, cx)
  nargs("iff", args, 3)
  if eval(args[1], row, cx) then return eval(args[2], row, cx) end
  return eval(args[3], row, cx)
end
FNS.iif = FNS.iff

local AGGREGATES = {count = true, countif = true, avg = true, sum = true, min = true, max = true,
  percentile = true, percentiles = true, dcount = true}

local function literal_fn(e)
  local s = e.text
  if e.fn == "datetime" then
    if s:lower() == "null" then return nil end
    local ok, v = pcall(time.parse, (s:gsub(" ", "T", 1)), {assume_utc = true})
    if ok then return v end
    local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    if not y then fail("bad datetime literal '" .. s .. "'") end
    return time.days_from_civil(tonumber(y), tonumber(m), tonumber(d)) * 86400
  end
  local n, unit = s:match("^(%d*%.?%d+)%s*(%a*)$")
  local f = n and (unit == "" and 86400 or parse.UNITS[unit])
  if not f then fail("bad timespan literal '" .. s .. "'") end
  return tonumber(n) * f
end

eval = function(e, row, cx)
  local k = e.k
  if k == "lit" then return e.v end
  if k == "col" then
    if not cx.types[e.name] then fail("unknown column '" .. e.name .. "'") end
    return row[e.name]
  end
  if k == "member" then
    local v = eval(e[1], row, cx)
    if type(v) == "string" then
      local ok, d = pcall(json.decode, v)
      v = ok and d or nil
    end
    if type(v) ~= "table" then return nil end
    return v[e.key] or v[(math.tointeger(e.key) or -1) + 1]
  end
  if k == "literal_fn" then
    if e.value == nil and not e.done then e.value, e.done = literal_fn(e), true end
    return e.value
  end
  if k == "and" then return (eval(e[1], row, cx) and eval(e[2], row, cx)) and true or false end
  if k == "or" then return (eval(e[1], row, cx) or eval(e[2], row, cx)) and true or false end
  if k == "neg" then local v = eval(e[1], row, cx); return v and -v end
  if k == "cmp" then
    local a, b = eval(e[1], row, cx), eval(e[2], row, cx)
    local op = e.op
    if op == "=~" or op == "!~" then
      local eq = a ~= nil and b ~= nil and tostr(a):lower() == tostr(b):lower()
      if op == "=~" then return eq end
      return not eq
    end
    local c = compare(a, b)
    if c == nil then return op == "!=" and (a ~= b) or false end
    if op == "==" then return c == 0 elseif op == "!=" then return c ~= 0
    elseif op == "<" then return c < 0 elseif op == "<=" then return c <= 0
    elseif op == ">" then return c > 0 else return c >= 0 end
  end
  if k == "strop" then
    return STRING[e.op](eval(e[1], row, cx), eval(e[2], row, cx))
  end
  if k == "in" then
    local v = eval(e[1], row, cx)
    local found = false
    for _, x in ipairs(e.list) do
      local w = eval(x, row, cx)
      if v ~= nil and v == w then found = true; break end
    end
    if e.neg then return not found end
    return found
  end
  if k == "between" then
    local v, lo, hi = eval(e[1], row, cx), eval(e[2], row, cx), eval(e[3], row, cx)
    local inside = v ~= nil and compare(v, lo) >= 0 and compare(v, hi) <= 0
    if e.neg then return v ~= nil and not inside end
    return inside
  end
  if k == "arith" then
    local a, b = eval(e[1], row, cx), eval(e[2], row, cx)
    if a == nil or b == nil then return nil end
    if type(a) ~= "number" or type(b) ~= "number" then fail("arithmetic on a non-number ('" .. e.op .. "')") end
    if e.op == "+" then return a + b elseif e.op == "-" then return a - b
    elseif e.op == "*" then return a * b
    elseif e.op == "/" then
      if b == 0 then return nil end
      if math.type(a) == "integer" and math.type(b) == "integer" then return a // b end
      return a / b
    else return a % b end
  end
  if k == "call" then
    local f = FNS[e.fn]
    if not f then
      if AGGREGATES[e.fn] then fail("aggregation function '" .. e.fn .. "' is only valid in summarize") end
      fail("unsupported function '" .. e.fn .. "'")
    end
    return f(e.args, row, cx)
  end
  fail("unsupported expression")
end

-- Default column names KQL gives an expression.
local function expr_name(e, prefix)
  if e.k == "col" then return (prefix or "") .. e.name end
  if e.k == "member" and e[1].k == "col" then return (prefix or "") .. e[1].name .. "_" .. tostring(e.key) end
  if e.k == "call" and (e.fn == "bin" or e.fn == "floor") and e.args[1] then return expr_name(e.args[1], prefix) end
  return nil
end

local function check_columns(e, types)
  if type(e) ~= "table" then return end
  if e.k == "col" and not types[e.name] then fail("unknown column '" .. e.name .. "'") end
  if e.k == "call" and not FNS[e.fn] then
    if AGGREGATES[e.fn] then fail("aggregation function '" .. e.fn .. "' is only valid in summarize") end
    fail("unsupported function '" .. e.fn .. "'")
  end
  for _, c in ipairs(e) do check_columns(c, types) end
  for _, c in ipairs(e.args or {}) do check_columns(c, types) end
  for _, c in ipairs(e.list or {}) do check_columns(c, types) end
end

local function types_of(columns)
  local t = {}
  for _, c in ipairs(columns) do t[c.name] = c.type end
  return t
end

local function set_column(columns, name, type)
  for _, c in ipairs(columns) do
    if c.name == name then c.type = type; return end
  end
  columns[#columns + 1] = {name = name, type = type}
end

local function sorter(keys)
  return function(a, b)
    for _, key in ipairs(keys) do
      local x, y = a.keys[_], b.keys[_]
      if x ~= y then
        if x == nil then return not key.desc end
        if y == nil then return key.desc end
        local c = compare(x, y)
        if c ~= 0 then
          if key.desc then return c > 0 end
          return c < 0
        end
      end
    end
    return a.index < b.index
  end
end

local function sorted(rows, keys, cx)
  local tagged = {}
  for i, r in ipairs(rows) do
    local ks = {}
    for j, key in ipairs(keys) do ks[j] = eval(key.expr, r, cx) end
    tagged[i] = {row = r, keys = ks, index = i}
  end
  table.sort(tagged, sorter(keys))
  local out = {}
  for i, t in ipairs(tagged) do out[i] = t.row end
  return out
end

local function percentile_of(values, p)
  if #values == 0 then return nil end
  table.sort(values)
  local rank = math.max(1, math.ceil(p / 100 * #values))
  return values[math.min(rank, #values)]
end

local function pct_name(p)
  return (tostr(p):gsub("%.", "_"))
end

-- Aggregation: builds a state per group; returns the output columns and a finisher.
local function aggregate_specs(aggs, cx)
  local specs = {}
  for _, a in ipairs(aggs) do
    local e = a.expr
    if e.k ~= "call" or not AGGREGATES[e.fn] then
      if e.k == "call" then fail("unsupported aggregation function '" .. e.fn .. "'") end
      fail("summarize needs an aggregation function (count(), avg(), ...)")
    end
    local fn, args = e.fn, e.args
    for _, x in ipairs(args) do check_columns(x, cx.types) end
    local arg = args[1]
    local base = arg and (expr_name(arg) or "") or ""
    if fn == "count" then
      nargs("count", args, 0)
      specs[#specs + 1] = {fn = fn, name = a.name or "count_", type = "long"}
    elseif fn == "countif" then
      nargs("countif", args, 1)
      specs[#specs + 1] = {fn = fn, arg = arg, name = a.name or "countif_", type = "long"}
    elseif fn == "dcount" then
      nargs("dcount", args, 1, 2)
      specs[#specs + 1] = {fn = fn, arg = arg, name = a.name or "dcount_" .. base, type = "long"}
    elseif fn == "percentile" or fn == "percentiles" then
      if fn == "percentile" then nargs(fn, args, 2) elseif #args < 2 then fail("percentiles() needs a value and percentages") end
      local t = typeof(arg, cx.types)
      for i = 2, #args do
        local p = args[i]
        if p.k ~= "lit" or type(p.v) ~= "number" or p.v < 0 or p.v > 100 then
          fail(fn .. "() percentages must be numbers from 0 to 100")
        end
        local name = (fn == "percentile" or #args == 2) and a.name or nil
        specs[#specs + 1] = {fn = "percentile", arg = arg, p = p.v, type = NUMERIC[t] and (t == "int" and "long" or t) or t,
          name = name or ("percentile_" .. base .. "_" .. pct_name(p.v))}
      end
    else
      nargs(fn, args, 1)
      local t = typeof(arg, cx.types)
      local ty = t
      if fn == "avg" then ty = t == "timespan" and "timespan" or "real"
      elseif fn == "sum" and t == "int" then ty = "long" end
      specs[#specs + 1] = {fn = fn, arg = arg, name = a.name or (fn .. "_" .. base), type = ty}
    end
  end
  return specs
end

local function summarize(rows, columns, op, cx)
  local specs = aggregate_specs(op.aggs, cx)
  local by = {}
  for i, b in ipairs(op.by) do
    check_columns(b.expr, cx.types)
    local name = b.name or expr_name(b.expr) or ("Column" .. i)
    by[i] = {expr = b.expr, name = name, type = typeof(b.expr, cx.types)}
  end
  local groups, order = {}, {}
  for _, r in ipairs(rows) do
    local keyvals, parts = {}, {}
    for i, b in ipairs(by) do
      local v = eval(b.expr, r, cx)
      keyvals[i] = v
      parts[i] = v == nil and "\0nil" or type(v) .. ":" .. tostr(v)
    end
    local key = table.concat(parts, "\1")
    local g = groups[key]
    if not g then
      g = {keys = keyvals, states = {}}
      for i in ipairs(specs) do g.states[i] = {n = 0, values = {}, seen = {}, distinct = 0} end
      groups[key] = g
      order[#order + 1] = g
    end
    for i, s in ipairs(specs) do
      local st = g.states[i]
      if s.fn == "count" then
        st.n = st.n + 1
      elseif s.fn == "countif" then
        if eval(s.arg, r, cx) then st.n = st.n + 1 end
      else
        local v = eval(s.arg, r, cx)
        if v ~= nil then
          if s.fn == "dcount" then
            local k = tostr(v)
            if not st.seen[k] then st.seen[k] = true; st.distinct = st.distinct + 1 end
          elseif s.fn == "percentile" then
            st.values[#st.values + 1] = v
          else
            if type(v) ~= "number" and s.fn ~= "min" and s.fn ~= "max" then fail(s.fn .. "() of a non-number") end
            st.n = st.n + 1
            st.sum = (st.sum or 0) + (type(v) == "number" and v or 0)
            if st.min == nil or compare(v, st.min) < 0 then st.min = v end
            if st.max == nil or compare(v, st.max) > 0 then st.max = v end
          end
        end
      end
    end
  end
  if #by == 0 and #order == 0 then
    local g = {keys = {}, states = {}}
    for i in ipairs(specs) do g.states[i] = {n = 0, values = {}, seen = {}, distinct = 0} end
    order[1] = g
  end
  local out_cols = {}
  for _, b in ipairs(by) do out_cols[#out_cols + 1] = {name = b.name, type = b.type} end
  for _, s in ipairs(specs) do out_cols[#out_cols + 1] = {name = s.name, type = s.type} end
  local out = {}
  for _, g in ipairs(order) do
    local rec = {}
    for i, b in ipairs(by) do rec[b.name] = g.keys[i] end
    for i, s in ipairs(specs) do
      local st, v = g.states[i], nil
      if s.fn == "count" or s.fn == "countif" then v = st.n
      elseif s.fn == "dcount" then v = st.distinct
      elseif s.fn == "percentile" then v = percentile_of(st.values, s.p)
      elseif s.fn == "avg" then v = st.n > 0 and st.sum / st.n or nil
      elseif s.fn == "sum" then v = st.sum or 0
      elseif s.fn == "min" then v = st.min
      elseif s.fn == "max" then v = st.max end
      rec[s.name] = v
    end
    out[#out + 1] = rec
  end
  return out, out_cols
end

local function apply(rows, columns, op, cx)
  cx.types = types_of(columns)
  local kind = op.op
  if kind == "where" then
    check_columns(op.expr, cx.types)
    local out = {}
    for _, r in ipairs(rows) do if eval(op.expr, r, cx) == true then out[#out + 1] = r end end
    return out, columns
  elseif kind == "take" then
    local out = {}
    for i = 1, math.min(op.n, #rows) do out[i] = rows[i] end
    return out, columns
  elseif kind == "count" then
    return {{Count = #rows}}, {{name = "Count", type = "long"}}
  elseif kind == "extend" or kind == "project" then
    local cols = {}
    if kind == "extend" then for i, c in ipairs(columns) do cols[i] = {name = c.name, type = c.type} end end
    local items = {}
    for i, a in ipairs(op.list) do
      check_columns(a.expr, cx.types)
      local name = a.name or expr_name(a.expr) or ("Column" .. i)
      items[i] = {name = name, expr = a.expr}
      set_column(cols, name, typeof(a.expr, cx.types))
    end
    local out = {}
    for j, r in ipairs(rows) do
      local rec = {}
      if kind == "extend" then for k, v in pairs(r) do rec[k] = v end end
      local vals = {}
      for i, it in ipairs(items) do vals[i] = eval(it.expr, r, cx) end
      for i, it in ipairs(items) do rec[it.name] = vals[i] end
      out[j] = rec
    end
    return out, cols
  elseif kind == "summarize" then
    return summarize(rows, columns, op, cx)
  elseif kind == "order" or kind == "top" then
    for _, k in ipairs(op.keys) do check_columns(k.expr, cx.types) end
    local out = sorted(rows, op.keys, cx)
    if kind == "top" then
      local cut = {}
      for i = 1, math.min(op.n, #out) do cut[i] = out[i] end
      out = cut
    end
    return out, columns
  end
  fail("unsupported operator '" .. tostring(kind) .. "'")
end

--- format(value, type) -> the JSON value the query APIs send for a cell
function M.cell(v, t)
  if v == nil then return json.null end
  if t == "datetime" and type(v) == "number" then
    return (time.format(v, {fraction = 7}):gsub("(%.%d-)0+Z$", "%1Z"):gsub("%.Z$", "Z"))
  end
  if t == "timespan" and type(v) == "number" then return span_text(v) end
  if (t == "long" or t == "int") and type(v) == "number" then return math.tointeger(v) or v end
  if t == "dynamic" and type(v) == "table" then return json.encode(v) end
  return v
end

--- execute(query, tables, opts) -> records, columns (internal values)
function M.execute(query, tables, opts)
  local q = parse.parse(query)
  local src
  for name, t in pairs(tables) do
    if name == q.source then src = t end
  end
  if not src then fail("unknown table '" .. q.source .. "'") end
  local cx = {now = opts and opts.now or os.time()}
  local rows, columns = src.rows, src.columns
  if opts and opts.from then
    local out = {}
    for _, r in ipairs(rows) do
      local ts = r[opts.time_column or "timestamp"]
      if ts == nil or (ts >= opts.from and (opts.to == nil or ts <= opts.to)) then out[#out + 1] = r end
    end
    rows = out
  end
  for _, op in ipairs(q.ops) do rows, columns = apply(rows, columns, op, cx) end
  return rows, columns
end

--- run(query, tables [, {now =, from =, to =}]) -> {name = "PrimaryResult", columns, rows} (JSON-ready)
function M.run(query, tables, opts)
  local rows, columns = M.execute(query, tables, opts)
  local out = {}
  for i, r in ipairs(rows) do
    local row = {}
    for j, c in ipairs(columns) do row[j] = M.cell(r[c.name], c.type) end
    out[i] = row
  end
  local cols = {}
  for i, c in ipairs(columns) do cols[i] = {name = c.name, type = c.type} end
  return {name = "PrimaryResult", columns = cols, rows = out}
end

M.parse = parse.parse

return M
