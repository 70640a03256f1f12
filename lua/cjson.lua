-- cjson: lua-cjson's API, served by opsh.json, so ad-hoc code written the OpenResty way
-- (`local cjson = require "cjson"`) runs unchanged. What differs from lua-cjson 2.1 is in
-- docs/json.md ("require 'cjson'"): integers stay integers, keys come out sorted.
local json = require("opsh.json")
local core = require("opsh._core")

local function new()
  local M = {_NAME = "cjson", _VERSION = "2.1.0-opsh"}
  local empty_table_as_object = true
  local decode_array_mt = true
  local max_encode_depth, max_decode_depth = 1000, 1000

  M.null = json.null
  M.empty_array = json.empty_array
  M.array_mt = json.array_mt
  M.empty_array_mt = json.array_mt

  local function depth_of(v, seen, d)
    if type(v) ~= "table" then return d end
    if seen[v] then return d end
    seen[v] = true
    local deepest = d + 1
    for _, x in pairs(v) do
      if type(x) == "table" then deepest = math.max(deepest, depth_of(x, seen, d + 1)) end
    end
    seen[v] = nil
    return deepest
  end

  -- empty unmarked tables become [] when encode_empty_table_as_object(false) was asked for
  local function as_arrays(v, seen)
    if type(v) ~= "table" or json.is_array(v) or v == json.null then return v end
    if next(v) == nil then return json.empty_array end
    if seen[v] then return seen[v] end
    local copy = {}
    seen[v] = copy
    for k, x in pairs(v) do copy[k] = as_arrays(x, seen) end
    return setmetatable(copy, getmetatable(v))
  end

  local function strip_marks(v)
    if type(v) ~= "table" then return v end
    if getmetatable(v) == json.array_mt then setmetatable(v, nil) end
    for _, x in pairs(v) do strip_marks(x) end
    return v
  end

  local function plain(err)
    return core.is_error(err) and err.message or tostring(err)
  end

  function M.encode(v)
    if max_encode_depth < 1000 and depth_of(v, {}, 0) > max_encode_depth then
      error(string.format("Cannot serialise, excessive nesting (%d)", max_encode_depth + 1), 2)
    end
    if not empty_table_as_object then v = as_arrays(v, {}) end
    local ok, res = pcall(json.encode, v)
    if not ok then error("Cannot serialise: " .. plain(res), 2) end
    return res
  end

  function M.decode(s)
    if type(s) ~= "string" then
      error(string.format("bad argument #1 to 'decode' (string expected, got %s)", type(s)), 2)
    end
    local ok, res = pcall(json.decode, s)
    if not ok then error(plain(res), 2) end
    if max_decode_depth < 1000 and depth_of(res, {}, 0) > max_decode_depth then
      error(string.format("Found too many nested data structures (%d)", max_decode_depth + 1), 2)
    end
    if not decode_array_mt then strip_marks(res) end
    return res
  end

  -- Settings: each returns the current value, as lua-cjson's do.
  function M.encode_empty_table_as_object(on)
    if on ~= nil then empty_table_as_object = on == true or on == "on" end
    return empty_table_as_object
  end

  function M.decode_array_with_array_mt(on)
    if on ~= nil then decode_array_mt = on == true or on == "on" end
    return decode_array_mt
  end

  function M.encode_max_depth(n)
    if n ~= nil then max_encode_depth = math.min(math.tointeger(n) or 1000, 1000) end
    return max_encode_depth
  end

  function M.decode_max_depth(n)
    if n ~= nil then max_decode_depth = math.min(math.tointeger(n) or 1000, 1000) end
    return max_decode_depth
  end

  -- Accepted for compatibility; opsh.json's behaviour is fixed (see docs/json.md).
  function M.encode_sparse_array() return false, 2, 10 end
  function M.encode_number_precision() return 17 end
  function M.encode_keep_buffer() return true end
  function M.encode_escape_forward_slash() return false end
  function M.encode_invalid_numbers() return false end
  function M.decode_invalid_numbers() return false end

  M.new = new
  return M
end

return new()
