-- opsh.twin.cli: `opsh twin up|status|down|reset|env [--shell]|serve`, each with [--dir DIR];
-- up and reset take [--without NAME[,NAME...]] (repeatable) for a partial twin.
local core = require("opsh._core")
local out = require("opsh.out")
local twin = require("opsh.twin")

local M = {}

local function usage(message) error(core.error("usage", message), 0) end

local function parse(words)
  local sub = table.remove(words, 1)
  local opts = {}
  local i = 1
  while i <= #words do
    local w = words[i]
    local name, value = w:match("^%-%-([%w-]+)=(.*)$")
    name = name or w:match("^%-%-([%w-]+)$")
    if name == "dir" or name == "port" or name == "without" then
      if value == nil then i = i + 1; value = words[i] end
      if value == nil then usage("twin: --" .. name .. " needs a value") end
      if name == "without" then
        if sub ~= "up" and sub ~= "reset" then usage("twin " .. tostring(sub) .. ": --without is for up and reset") end
        opts.without = opts.without and (opts.without .. "," .. value) or value
      else
        opts[name] = value
      end
    elseif name == "shell" then
      opts.shell = true
    else
      usage(string.format("twin %s: unexpected argument '%s'", sub or "", w))
    end
    i = i + 1
  end
  return sub, opts
end

local function shell_quote(v)
  return "'" .. tostring(v):gsub("'", "'\\''") .. "'"
end

function M.main(gopts, words)
  local sub, opts = parse(words)
  local fmt = gopts.output or "table"
  if sub == "up" then
    local t0 = core.hrtime()
    local p <close> = require("opsh.progress").start("starting the twin")
    local _, what = twin.up(opts)
    p:done()
    local dir = require("opsh.twin.state").dir(opts.dir)
    local rows = twin.status(opts.dir)
    io.stdout:write(out.render(rows, {format = fmt, columns = {"component", "pid", "state", "detail"}}))
    if fmt == "table" then
      io.stdout:write(string.format("\ntwin %s in %s (%.1f s); use it with --env twin or "
        .. "eval \"$(opsh twin env --shell%s)\"\n", what == "running" and "already running" or "started",
        dir, core.hrtime() - t0, opts.dir and (" --dir " .. shell_quote(dir)) or ""))
    end
    return 0
  elseif sub == "status" then
    local rows, healthy = twin.status(opts.dir)
    if #rows == 0 then
      io.stderr:write("opsh: the twin is not running in " .. require("opsh.twin.state").dir(opts.dir) .. "\n")
      return 3
    end
    io.stdout:write(out.render(rows, {format = fmt, columns = {"component", "pid", "state", "detail"}}))
    return healthy and 0 or 3
  elseif sub == "down" then
    local stopped = twin.down(opts)
    if not gopts.quiet then
      io.stdout:write(stopped and "twin stopped\n" or "twin was not running\n")
    end
    return 0
  elseif sub == "reset" then
    twin.reset(opts)
    io.stdout:write(out.render(twin.status(opts.dir), {format = fmt, columns = {"component", "pid", "state", "detail"}}))
    if fmt == "table" then
      io.stdout:write("\ntwin reset to its seeded state in " .. require("opsh.twin.state").dir(opts.dir) .. "\n")
    end
    return 0
  elseif sub == "env" then
    if opts.shell then
      for _, kv in ipairs(twin.shell_exports(opts.dir)) do
        io.stdout:write("export ", kv[1], "=", shell_quote(kv[2]), "\n")
      end
      return 0
    end
    io.stdout:write(out.render(twin.environment(opts.dir), {format = fmt == "json" and "json" or "yaml"}))
    return 0
  elseif sub == "serve" then
    local port = opts.port and math.tointeger(tonumber(opts.port))
    if opts.port and not port then usage("twin serve: --port needs a number") end
    twin.serve({dir = opts.dir, port = port})
    return 0
  end
  usage(sub and string.format("unknown twin command '%s' (use up, status, down, reset or env)", sub)
    or "twin needs a command: up, status, down, reset or env")
end

return M
