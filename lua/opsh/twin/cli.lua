-- opsh.twin.cli: `opsh twin up|status|down|reset|env [--shell]|serve`, each with [--dir DIR].
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
    if name == "dir" or name == "port" then
      if value == nil then i = i + 1; value = words[i] end
      if value == nil then usage("twin: --" .. name .. " needs a value") end
      opts[name] = value
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
    local st, what = twin.up(opts)
    p:done()
    local rows = twin.status(opts.dir)
    io.stdout:write(out.render(rows, {format = fmt, columns = {"component", "pid", "state", "detail"}}))
    if fmt == "table" then
      io.stdout:write(string.format("\ntwin %s in %s (%.1f s); use it with --env twin or "
        .. "eval \"$(opsh twin env --shell%s)\"\n", what == "running" and "already running" or "started",
        st.dir, core.hrtime() - t0, opts.dir and (" --dir " .. shell_quote(st.dir)) or ""))
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
    local st = twin.reset(opts)
    io.stdout:write(out.render(twin.status(opts.dir), {format = fmt, columns = {"component", "pid", "state", "detail"}}))
    if fmt == "table" then io.stdout:write("\ntwin reset to its seeded state in " .. st.dir .. "\n") end
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
    if not opts.port or not math.tointeger(tonumber(opts.port)) then usage("twin serve needs --port N") end
    twin.serve({dir = opts.dir, port = math.tointeger(tonumber(opts.port))})
    return 0
  end
  usage(sub and string.format("unknown twin command '%s' (use up, status, down, reset or env)", sub)
    or "twin needs a command: up, status, down, reset or env")
end

return M
