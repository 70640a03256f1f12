-- opsh.twin.k8s.selectors: label selectors (k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; comma =
-- AND) and field selectors (=, ==, != on the fields each kind supports; others are a 400, as the
-- apiserver answers "field label not supported: <field>").
local M = {}

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- split on commas outside parentheses
local function terms(s)
  local out, depth, start = {}, 0, 1
  for i = 1, #s do
    local c = s:sub(i, i)
    if c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1
    elseif c == "," and depth == 0 then out[#out + 1] = s:sub(start, i - 1); start = i + 1 end
  end
  out[#out + 1] = s:sub(start)
  return out
end

--- labels(s) -> matcher(labels_table) or nil, error message
function M.labels(s)
  if s == nil or trim(s) == "" then return nil end
  local reqs = {}
  for _, t in ipairs(terms(s)) do
    t = trim(t)
    local k, op, rest = t:match("^([%w%._/%-]+)%s+(notin)%s*(%b())$")
    if not k then k, op, rest = t:match("^([%w%._/%-]+)%s+(in)%s*(%b())$") end
    if k then
      local set = {}
      for v in rest:sub(2, -2):gmatch("[^,%s]+") do set[v] = true end
      reqs[#reqs + 1] = {k = k, op = op, set = set}
    else
      local a, o, b = t:match("^([%w%._/%-]+)%s*([!=]=?)%s*([%w%._%-]*)$")
      if a and (o == "=" or o == "==" or o == "!=") then
        reqs[#reqs + 1] = {k = a, op = o == "!=" and "!=" or "=", v = b}
      elseif t:match("^![%w%._/%-]+$") then
        reqs[#reqs + 1] = {k = t:sub(2), op = "!exists"}
      elseif t:match("^[%w%._/%-]+$") then
        reqs[#reqs + 1] = {k = t, op = "exists"}
      else
        return nil, "unable to parse requirement: " .. t
      end
    end
  end
  return function(labels)
    labels = labels or {}
    for _, r in ipairs(reqs) do
      local v = labels[r.k]
      if r.op == "=" then if v ~= r.v then return false end
      elseif r.op == "!=" then if v == r.v then return false end
      elseif r.op == "in" then if v == nil or not r.set[v] then return false end
      elseif r.op == "notin" then if v ~= nil and r.set[v] then return false end
      elseif r.op == "exists" then if v == nil then return false end
      elseif r.op == "!exists" then if v ~= nil then return false end end
    end
    return true
  end
end

local function field_value(obj, path)
  local v = obj
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  if type(v) == "boolean" then return tostring(v) end
  if type(v) == "number" then return tostring(math.tointeger(v) or v) end
  if type(v) == "table" then
    if path == "source" then return v.component end
    if path == "status.podIPs" then return v[1] and v[1].ip end
    return nil
  end
  return v
end

--- fields(s, allowed) -> matcher(object) or nil, error message (allowed: set of field names)
function M.fields(s, allowed)
  if s == nil or trim(s) == "" then return nil end
  local reqs = {}
  for _, t in ipairs(terms(s)) do
    t = trim(t)
    local a, o, b = t:match("^([%w%._]+)%s*([!=]=?)%s*(.-)$")
    if not a then return nil, "invalid selector: '" .. t .. "'; can't understand '" .. t .. "'" end
    if a == "spec.host" then a = "spec.nodeName" end
    if not allowed[a] then return nil, "field label not supported: " .. a end
    reqs[#reqs + 1] = {k = a, neg = o == "!=", v = b}
  end
  return function(obj)
    for _, r in ipairs(reqs) do
      local v = field_value(obj, r.k)
      if v == nil then v = "" end
      if (v == r.v) == r.neg then return false end
    end
    return true
  end
end

return M
