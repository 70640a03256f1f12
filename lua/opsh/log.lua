-- opsh.log: levelled logging to stderr, human lines or JSON lines (--log-format json).
-- Secrets in messages or fields print as <redacted>.
local core = require("opsh._core")

local M = {}

local levels = {debug = 10, info = 20, warn = 30, error = 40}
local config = {level = levels.info, format = "human", color = false}

--- configure{format = "human"|"json", verbose =, quiet =, color =, level =}
function M.configure(opts)
  if opts.format then config.format = opts.format end
  if opts.level then config.level = levels[opts.level] or config.level end
  if opts.verbose then config.level = levels.debug end
  if opts.quiet then config.level = levels.warn end
  if opts.color ~= nil then config.color = opts.color end
end

function M.enabled(level) return levels[level] >= config.level end

local function text(v)
  if core.is_secret(v) then return "<redacted>" end
  if type(v) == "table" and not core.is_error(v) then
    local ok, json = pcall(require, "opsh.json")
    if ok then return json.encode(require("opsh.out").redact(v)) end
  end
  return tostring(v)
end

local colors = {debug = "\27[2m", info = "\27[36m", warn = "\27[33m", error = "\27[31m"}

local function emit(level, msg, fields)
  if levels[level] < config.level then return end
  local now = os.time()
  if config.format == "json" then
    local rec = {ts = os.date("!%Y-%m-%dT%H:%M:%SZ", now), level = level, msg = text(msg)}
    for k, v in pairs(fields or {}) do
      if rec[k] == nil then rec[k] = core.is_secret(v) and "<redacted>" or v end
    end
    rec = require("opsh.out").redact(rec)
    io.stderr:write(require("opsh.json").encode(rec, {sort_keys = true}), "\n")
    return
  end
  local parts = {os.date("%H:%M:%S", now), level:upper(), text(msg)}
  if fields then
    local keys = {}
    for k in pairs(fields) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. text(fields[k]) end
  end
  local line = table.concat(parts, " ")
  if config.color then line = colors[level] .. line .. "\27[0m" end
  io.stderr:write(line, "\n")
end

function M.debug(msg, fields) emit("debug", msg, fields) end
function M.info(msg, fields) emit("info", msg, fields) end
function M.warn(msg, fields) emit("warn", msg, fields) end
function M.error(msg, fields) emit("error", msg, fields) end

return M
