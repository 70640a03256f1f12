-- opsh.cli: the command line. Parses global flags, dispatches commands, runs procedures as
-- tasks and turns their outcome into one line and an exit code:
--   0 ok · 1 the procedure failed · 2 usage error · 3 ran and found problems
--   4 a dry-run planned changes · 130 interrupted
local core = require("opsh._core")
local runtime = require("opsh.runtime")
local script = require("opsh.script")

local M = {}

M.EXIT = {ok = 0, failed = 1, usage = 2, problems = 3, planned = 4, interrupted = 130}

local global_flags = {
  ["--env"] = "env", ["--output"] = "output", ["-o"] = "output", ["--log-format"] = "log_format",
  ["--lock-wait"] = "lock_wait",
}
local global_switches = {
  ["--dry-run"] = "dry_run", ["--yes"] = "yes", ["-y"] = "yes", ["--verbose"] = "verbose",
  ["-v"] = "verbose", ["--quiet"] = "quiet", ["-q"] = "quiet", ["--no-color"] = "no_color",
  ["--help"] = "help", ["-h"] = "help", ["--version"] = "version", ["--no-wait"] = "no_wait",
}
M.global_flags, M.global_switches = global_flags, global_switches
local commands = {"run", "list", "help", "repl", "test", "version", "env", "scripts", "twin", "lsp-setup",
  "completion", "new", "lint", "wait"}
M.commands = commands
M.output_formats = {"table", "json", "yaml", "tsv"}
local output_formats = {table = true, json = true, yaml = true, tsv = true}

local function usage(message) error(core.error("usage", message), 0) end

--- Split argv into global options and the rest (command words and script arguments).
function M.parse(argv)
  local opts, rest = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local flag, value = a:match("^(%-%-?[%w-]+)=(.*)$")
    flag = flag or a
    if a == "--" then
      for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
      break
    elseif global_flags[flag] then
      if value == nil then
        i = i + 1
        value = argv[i]
        if value == nil or value:match("^%-") then usage(string.format("%s needs a value", flag)) end
      end
      local key = global_flags[flag]
      if opts[key] ~= nil then usage(string.format("%s given more than once", flag)) end
      opts[key] = value
    elseif global_switches[a] then
      opts[global_switches[a]] = true
    elseif a == "-e" and #rest == 0 then
      local chunk = argv[i + 1]
      if not chunk then usage("-e needs a Lua chunk") end
      opts.chunks = opts.chunks or {}
      opts.chunks[#opts.chunks + 1] = chunk
      i = i + 1
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  if opts.output and not output_formats[opts.output] then
    usage(string.format("unknown output format '%s' (use table, json, yaml or tsv)", opts.output))
  end
  if opts.log_format and opts.log_format ~= "human" and opts.log_format ~= "json" then
    usage(string.format("unknown log format '%s' (use human or json)", opts.log_format))
  end
  if opts.lock_wait then
    local seconds = script.parse_duration(opts.lock_wait)
    if not seconds then
      usage(string.format("--lock-wait '%s' is not a duration (0, 30s, 5m)", opts.lock_wait))
    end
    opts.lock_wait = seconds
  end
  return opts, rest
end

--- Script arguments: --name=value, --name value, --flag, --no-flag -> {declared name = raw}.
-- --max-lag finds max_lag; a list repeated accumulates ({raw, raw...}); anything else repeated is
-- a usage error. `ref`: how `opsh help` finds the script (its name, or the path it was run by).
function M.script_args(words, decl, script_name, ref)
  local raw = {}
  local i = 1
  while i <= #words do
    local w = words[i]
    local given, value = w:match("^%-%-([%w_-]+)=(.*)$")
    if not given then given = w:match("^%-%-([%w_-]+)$") end
    if not given then
      usage(string.format("%s: unexpected argument '%s' (arguments are --name=value; see 'opsh help %s')",
        script_name, w, script.command_ref(ref or script_name)))
    end
    local name = script.arg_name(decl, given)
    if not name and value == nil then
      local negated = given:match("^no[-_](.+)$")
      local target = negated and script.arg_name(decl, negated)
      if target and decl.args[target].type == "boolean" then name, value = target, "false" end
    end
    if not name then script.unknown_arg(decl, given, script_name, ref) end
    local spec = decl.args[name]
    if value == nil then
      if spec.type == "boolean" then
        value = "true"
      else
        local following = words[i + 1]
        if following == nil or following:match("^%-%-") then
          usage(string.format("%s: --%s needs a value", script_name, given))
        end
        i = i + 1
        value = following
      end
    end
    if raw[name] == nil then
      raw[name] = spec.type == "list" and {value} or value
    elseif spec.type == "list" then
      table.insert(raw[name], value)
    else
      usage(string.format("%s: --%s given more than once (only list arguments may repeat)", script_name, name))
    end
    i = i + 1
  end
  return raw
end

local function stderr(fmt, ...) io.stderr:write(string.format(fmt, ...), "\n") end

--- One line for an error; the traceback only when asked for or when it is a bug: a Lua error,
-- raised as is or wrapped into kind "lua" (opsh.parallel, opsh.try). An error that carries the
-- frames of where it happened (`traceback`, set by opsh.parallel for its workers) shows those.
local function report(err, traceback, opts, prefix)
  local structured = core.is_error(err)
  local bug = not structured or err.kind == "lua"
  if structured and type(err.traceback) == "string" then traceback = err.traceback end
  if opts.log_format == "json" then
    local fields = {kind = structured and err.kind or "lua"}
    if opts.verbose or bug then fields.traceback = traceback end
    require("opsh.log").error((prefix or "") .. core.describe(err), fields)
    return
  end
  stderr("opsh: %s%s", prefix or "", core.describe(err))
  if (opts.verbose or bug) and traceback then stderr("%s", traceback) end
end

local function exit_code_for(err)
  if core.is_error(err, "usage") then return M.EXIT.usage end
  if core.is_error(err, "interrupted") then return M.EXIT.interrupted end
  return M.EXIT.failed
end

--- Run fn(...) in a foreground task (what Ctrl-C cancels) -> ok, results... | false, err, tb
function M.run_task(fn, ...)
  local task = core.spawn(fn, ...)
  core.foreground(task)
  pcall(task.wait, task)
  core.foreground(nil)
  return task:result()
end

local function apply_globals(opts)
  require("opsh.dryrun").enable(opts.dry_run)
  if opts.env then require("opsh.env").select(opts.env) end
  if opts.no_wait then require("opsh.azure").no_wait(true) end
  require("opsh.progress").configure({quiet = opts.quiet})
  require("opsh.out").configure({format = opts.output,
    color = not opts.no_color and os.getenv("NO_COLOR") == nil and runtime.isatty(1)})
  local log = require("opsh.log")
  log.configure({format = opts.log_format, verbose = opts.verbose, quiet = opts.quiet,
    color = not opts.no_color and os.getenv("NO_COLOR") == nil and runtime.isatty(2)})
end

--- The context a procedure gets: env (lazy), flags, output, logging, confirmation, problems.
function M.context(opts, name, decl)
  local out = require("opsh.out")
  local ctx = {
    name = name, dry_run = opts.dry_run or false, yes = opts.yes or false,
    verbose = opts.verbose or false, quiet = opts.quiet or false,
    output = opts.output or "table", log = require("opsh.log"), problems = {},
    flags = {}, progress = require("opsh.progress").start,
  }
  for _, f in ipairs(decl and decl.flags or {}) do ctx.flags[f] = true end
  setmetatable(ctx, {__index = function(t, k)
    if k == "env" then
      local e = require("opsh.env").current()
      rawset(t, "env", e)
      return e
    end
  end})
  --- ctx.pg{replica=}, ctx.redis(), ctx.secret(name): the environment's connections (opsh.connections)
  function ctx.pg(o) return require("opsh.connections").pg(ctx.env, o) end
  function ctx.redis(o) return require("opsh.connections").redis(ctx.env, o) end
  function ctx.secret(name) return require("opsh.connections").secret(ctx.env, name) end
  --- ctx.out(records, opts): print records in the chosen --output format.
  function ctx.out(records, o)
    out.print(records, o)
  end
  --- ctx.section(title): a heading between parts of a report (table output only).
  function ctx.section(title)
    if ctx.output == "table" and not ctx.quiet then io.stdout:write("\n== ", title, " ==\n") end
  end
  --- ctx.problem(message): the procedure found something wrong; exit status 3 at the end.
  function ctx.problem(message)
    ctx.problems[#ctx.problems + 1] = message
    ctx.log.warn(message)
  end
  --- ctx.confirm(question) -> true, or raises: --yes answers yes; no TTY means no.
  function ctx.confirm(question)
    if ctx.yes then return true end
    if not runtime.isatty(0) then
      usage(question .. ": refusing without confirmation (no terminal); pass --yes")
    end
    io.stderr:write(question, " [y/N] ")
    io.stderr:flush()
    local answer = io.stdin:read("l")
    if answer and answer:lower():match("^y") then return true end
    error(core.error("aborted", "not confirmed: " .. question), 0)
  end
  --- ctx.step(name, fn, {undo=, destructive=, target=}) -> fn's results (opsh.steps; docs/scripts.md)
  function ctx.step(step_name, fn, o)
    if not ctx.steps then rawset(ctx, "steps", require("opsh.steps").new(ctx)) end
    return ctx.steps:step(step_name, fn, o)
  end
  --- ctx.lock(resources, {wait=, ttl=}) -> a lease on the resources in the environment's Redis
  -- (opsh.lock), released when the run ends
  ctx.leases = {}
  function ctx.lock(resources, o)
    o = o or {}
    if type(o) == "table" and o.procedure == nil then o.procedure = name end
    if type(o) == "table" and opts.lock_wait then o.wait = opts.lock_wait end
    local lease = require("opsh.lock").acquire(ctx.redis(), resources, o)
    ctx.leases[#ctx.leases + 1] = lease
    return lease
  end
  return ctx
end

-- After the run: undo the completed steps of a failed run, release the leases, show the steps.
local function finish_steps(opts, ctx, failed)
  if failed and ctx.steps then M.run_task(function() ctx.steps:rollback() end) end
  if #ctx.leases > 0 then
    M.run_task(function() for _, lease in ipairs(ctx.leases) do pcall(lease.release, lease) end end)
  end
  if not ctx.steps then return end
  local s = ctx.steps:summary()
  local line = string.format("%d step(s), %d change(s)%s in %.2f s%s", s.steps, s.changes,
    ctx.dry_run and " planned" or "", s.seconds,
    (s.undone > 0 or s.not_undone > 0) and string.format("; %d undone, %d not undone", s.undone, s.not_undone) or "")
  if (opts.output or "table") == "table" and not opts.quiet then
    io.stdout:write("\n== steps ==\n", require("opsh.out").render(ctx.steps:rows(),
      {format = "table", columns = require("opsh.steps").columns}), line, "\n")
  else
    -- for machines (--log-format json): the step rows ride on the totals' log line; stdout stays one document
    local fields = s
    if opts.log_format == "json" then
      fields = {}
      for k, v in pairs(s) do fields[k] = v end
      fields.step_rows = ctx.steps:rows()
    end
    require("opsh.log").info(ctx.name .. ": " .. line, fields)
  end
end

--- A dry-run ends with what it would have done: a table on stdout (or one JSON/YAML document
-- {"dry_run": {"planned": [...]}}), and exit 4 when that list is not empty and nothing else failed.
function M.finish_dry_run(opts, code)
  local dryrun = require("opsh.dryrun")
  if not dryrun.active() then return code end
  local planned = dryrun.planned()
  local out = require("opsh.out")
  local format = opts.output or "table"
  if format == "table" or format == "tsv" then
    if not opts.quiet or #planned > 0 then
      if format == "table" then
        io.stdout:write(string.format("\n== dry run: %d change(s) planned, none made ==\n", #planned))
      end
      if #planned > 0 then
        io.stdout:write(out.render(planned, {format = format, columns = {"seq", "kind", "action", "target"}}))
      end
    end
  else
    io.stdout:write(out.render({dry_run = {planned = planned}}, {format = format}))
  end
  if code == M.EXIT.ok and #planned > 0 then return M.EXIT.planned end
  return code
end

local function unknown_script(ref, extra)
  local names = {}
  for n in pairs(script.all()) do names[#names + 1] = n end
  for _, c in ipairs(extra or {}) do names[#names + 1] = c end
  local nearest = script.nearest(ref, names)
  usage(string.format("unknown %s '%s'%s", extra and "script or command" or "script", ref,
    nearest and string.format("; did you mean '%s'?", nearest) or " (see 'opsh list')"))
end

--- opsh run <name|path> [--arg=value ...]
function M.cmd_run(opts, words)
  local ref = table.remove(words, 1)
  if not ref then usage("run needs a script name (see 'opsh list')") end
  local decl, name = script.load(ref)
  if not decl then unknown_script(ref) end
  return M.run_declared(opts, decl, name, ref, words)
end

--- Run a loaded declaration with the words after its name; `ref` is how it was named (name or path).
function M.run_declared(opts, decl, name, ref, words)
  if opts.help then return M.cmd_help(opts, {ref}) end
  local args = script.parse_args(decl, M.script_args(words, decl, name, ref), name, ref)
  local ctx = M.context(opts, name, decl)
  -- a selected environment that cannot be loaded stops the run before anything happens
  local envmod = require("opsh.env")
  local envt = envmod.selected_name() and envmod.current() or nil
  local ship = require("opsh.audit.ship")
  ship.start(envt)
  if ctx.flags.destructive and not ctx.dry_run then
    ctx.confirm(string.format("%s is destructive; run it against '%s'?", name,
      require("opsh.env").selected_name() or "(no environment)"))
  end
  require("opsh.audit").configure({procedure = name})
  local res = table.pack(M.run_task(decl.run, ctx, args))
  finish_steps(opts, ctx, not res[1])
  M.run_task(ship.finish, envt)
  if not res[1] then
    report(res[2], res[3], opts, name .. ": ")
    return M.finish_dry_run(opts, exit_code_for(res[2]))
  end
  if #ctx.problems > 0 then
    if opts.log_format == "json" then
      require("opsh.log").warn(string.format("%s: %d problem(s) found", name, #ctx.problems),
        {problems = #ctx.problems})
    elseif not opts.quiet then
      stderr("opsh: %s: %d problem(s) found", name, #ctx.problems)
    end
    return M.finish_dry_run(opts, M.EXIT.problems)
  end
  return M.finish_dry_run(opts, M.EXIT.ok)
end

local function categories_of(names)
  local by_cat = {}
  for name in pairs(names) do
    local ok, decl = pcall(script.load, name)
    local cats = ok and decl and decl.categories or {"(broken)"}
    local desc = ok and decl and decl.description:match("^[^\n]*") or tostring(decl)
    for _, c in ipairs(cats) do
      by_cat[c] = by_cat[c] or {}
      table.insert(by_cat[c], {name = name, description = desc, origin = names[name]})
    end
  end
  return by_cat
end

--- opsh list: scripts grouped by category with their one-line description.
function M.cmd_list(opts)
  local by_cat = categories_of(script.all())
  local cats = {}
  for c in pairs(by_cat) do cats[#cats + 1] = c end
  table.sort(cats)
  if opts.output and opts.output ~= "table" then
    local rows = {}
    for _, c in ipairs(cats) do
      for _, s in ipairs(by_cat[c]) do
        rows[#rows + 1] = {category = c, name = s.name, description = s.description, origin = s.origin}
      end
    end
    table.sort(rows, function(a, b) return a.category .. a.name < b.category .. b.name end)
    io.stdout:write(require("opsh.out").render(rows, {format = opts.output,
      columns = {"category", "name", "description", "origin"}}))
    return M.EXIT.ok
  end
  for _, c in ipairs(cats) do
    io.stdout:write(c, ":\n")
    table.sort(by_cat[c], function(a, b) return a.name < b.name end)
    local width = 0
    for _, s in ipairs(by_cat[c]) do width = math.max(width, #s.name) end
    for _, s in ipairs(by_cat[c]) do
      local mark = s.origin ~= "bundled" and "  (local)" or ""
      io.stdout:write(string.format("  %-" .. width .. "s  %s%s\n", s.name, s.description, mark))
    end
  end
  return M.EXIT.ok
end

local general_help = [[
usage: opsh [flags] <command> [args]

commands:
  run <script|path> [--arg=value ...]  run a procedure
  list                                 list procedures by category
  help [script]                        this text, or a procedure's arguments
  repl                                 interactive Lua with opsh loaded (default on a terminal)
  test [paths]                         run the busted specs inside opsh
  env list | env show [NAME]           environments
  scripts export [DIR]                 write the bundled scripts out for editing
  scripts diff|reset NAME              an edited copy against the bundled one; back to bundled
  twin up|status|down|reset|env        the local twin of the platform
  lsp-setup [DIR]                      editor stubs for lua-language-server, DIR/.luarc.json
  completion bash|zsh|fish             shell completion (source <(opsh completion bash))
  new NAME [DIR]                       a new procedure NAME.lua and its spec, to start from
  lint FILE|NAME ...                   check declarations without running them
  wait <handle>                        finish an Azure operation left with --no-wait
  version                              versions of opsh and its libraries
  <file.lua> [args]                    run a Lua file;  -e 'lua'  run a chunk

flags:
  --env NAME        environment (or OPSH_ENV)      -o, --output table|json|yaml|tsv
  --dry-run         print mutations, send nothing  --yes, -y   confirm destructive steps
  -v, --verbose     tracebacks and debug logs      -q, --quiet  warnings and errors only
  --no-color        (also NO_COLOR)                --log-format human|json
  --no-wait         Azure operations return a handle (see wait) instead of waiting

exit status: 0 ok, 1 failed, 2 usage error, 3 problems found, 4 dry-run planned changes,
             130 interrupted
]]

--- opsh help [script]
function M.cmd_help(opts, words)
  local ref = words[1]
  if not ref then
    io.stdout:write(general_help)
    return M.EXIT.ok
  end
  local decl, name, origin = script.load(ref)
  if not decl then
    -- a command: its lines of the general help
    local lines = {}
    for synopsis, what in general_help:gmatch("\n  ([^\n]-)%s%s+([^\n]+)") do
      if synopsis:match("^(%S+)") == ref then
        lines[#lines + 1] = string.format("usage: opsh %s\n  %s\n", synopsis, what)
      end
    end
    if #lines == 0 then unknown_script(ref, commands) end
    io.stdout:write(table.concat(lines), "\nsee docs/cli.md, and 'opsh help' for the global flags\n")
    return M.EXIT.ok
  end
  local w = io.stdout
  w:write(name, " — ", decl.description:match("^[^\n]*"), "\n")
  local rest = decl.description:match("^[^\n]*\n(.*)$")
  if rest and rest:match("%S") then w:write("\n", rest:gsub("%s+$", ""), "\n") end
  local argnames = {}
  for a in pairs(decl.args) do argnames[#argnames + 1] = a end
  table.sort(argnames)
  local synopsis = {"opsh run " .. script.command_ref(script.is_path(ref) and ref or name)}
  for _, a in ipairs(argnames) do
    local s = decl.args[a]
    local part = string.format("--%s=<%s>", (a:gsub("_", "-")), s.type)
    synopsis[#synopsis + 1] = s.required and part or ("[" .. part .. "]")
  end
  w:write("\nusage: ", table.concat(synopsis, " "), "\n")
  if #argnames > 0 then
    w:write("\narguments:\n")
    local width = 0
    for _, a in ipairs(argnames) do width = math.max(width, #a + #decl.args[a].type + 5) end
    for _, a in ipairs(argnames) do
      local s = decl.args[a]
      local extra = {}
      if s.required then extra[#extra + 1] = "required" end
      if s.default ~= nil then
        local d = s.default
        if type(d) == "table" then d = table.concat(d, ",") end
        extra[#extra + 1] = "default " .. tostring(d)
      end
      if s.choices then extra[#extra + 1] = "one of " .. table.concat(s.choices, ", ") end
      local spelled = a:gsub("_", "-")   -- as kubectl and az spell flags; --max_lag works too
      w:write(string.format("  %-" .. width .. "s %s%s\n", "--" .. spelled .. " <" .. s.type .. ">", s.help,
        #extra > 0 and (" (" .. table.concat(extra, "; ") .. ")") or ""))
    end
  end
  w:write("\ncategories: ", table.concat(decl.categories, ", "), "\n")
  if #decl.flags > 0 then w:write("flags: ", table.concat(decl.flags, ", "), "\n") end
  if decl.examples then
    w:write("\nexamples:\n")
    for _, ex in ipairs(decl.examples) do w:write("  ", ex, "\n") end
  end
  w:write("source: ", origin, "\n")
  return M.EXIT.ok
end

function M.cmd_version(opts)
  local rows = {{component = "opsh", version = runtime.version},
    {component = "lua", version = runtime.lua_version},
    {component = "libuv", version = runtime.libuv_version}}
  local ok, extra = pcall(require, "opsh.versions")
  if ok then for _, r in ipairs(extra.list()) do rows[#rows + 1] = r end end
  if opts.output then
    io.stdout:write(require("opsh.out").render(rows, {format = opts.output, columns = {"component", "version"}}))
  else
    for _, r in ipairs(rows) do io.stdout:write(string.format("%-12s %s\n", r.component, r.version)) end
  end
  return M.EXIT.ok
end

--- opsh env list | env show [NAME]
function M.cmd_env(opts, words)
  local envmod = require("opsh.env")
  local sub = words[1] or "show"
  if sub == "list" then
    -- one that cannot be loaded (the twin not running, a broken file) is marked in the table; why goes
    -- to stderr, one line each, so the table stays as narrow as its descriptions
    local rows, broken = {}, {}
    for n, origin in pairs(envmod.list()) do
      local ok, e = pcall(envmod.load, n)
      local row = {name = n, description = ok and (e.description or "") or "(cannot be loaded)", origin = origin}
      if not ok then
        row.error = core.describe(e)
        broken[#broken + 1] = row
      end
      rows[#rows + 1] = row
    end
    table.sort(rows, function(a, b) return a.name < b.name end)
    table.sort(broken, function(a, b) return a.name < b.name end)
    local format = opts.output or "table"
    io.stdout:write(require("opsh.out").render(rows, {format = format,
      columns = (format == "table" or format == "tsv") and {"name", "description", "origin"} or nil}))
    if format == "table" or format == "tsv" then
      for _, r in ipairs(broken) do stderr("opsh: environment '%s': %s", r.name, r.error) end
    end
    return M.EXIT.ok
  elseif sub == "show" then
    if words[2] then envmod.select(words[2]) end
    local e = envmod.current()
    io.stdout:write(require("opsh.out").render(e, {format = opts.output == "json" and "json" or "yaml"}))
    return M.EXIT.ok
  end
  usage(string.format("unknown env command '%s' (use list or show)", sub))
end

--- opsh lsp-setup [DIR]: the stubs for lua-language-server, and DIR/.luarc.json pointing at them
function M.cmd_lsp_setup(opts, words)
  if #words > 1 then usage("usage: opsh lsp-setup [DIR]") end
  local dir = words[1]
  if dir then
    local st = require("opsh.fs").stat(dir)
    if not st or st.type ~= "dir" then usage(string.format("lsp-setup: %s is not a directory", dir)) end
  end
  local r = require("opsh.lsp").setup({project = dir})
  io.stdout:write(string.format("%s %s; %d stub(s) in %s\n", r.created and "wrote" or "updated", r.luarc,
    r.count, r.stubs))
  return M.EXIT.ok
end

--- opsh test [paths]: busted inside this binary, so specs use the scheduler and opsh modules.
function M.cmd_test(opts, words)
  if (os.getenv("OPSH_AUDIT_LOG") or "") == "" then
    -- what specs change against twins is not the operator's history: their audit lines, and those of
    -- the opsh processes they start, go to a file of the test run's own
    local file = (os.getenv("TMPDIR") or "/tmp") .. "/opsh-test-audit.log"
    require("opsh.audit").process_file = file
    require("opsh.proc")._inherit.OPSH_AUDIT_LOG = file
  end
  local argv = {[0] = "opsh test"}
  local paths = {}
  for _, w in ipairs(words) do
    if w:sub(1, 1) == "-" then argv[#argv + 1] = w else paths[#paths + 1] = w end
  end
  if opts.verbose then argv[#argv + 1] = "--verbose" end
  argv[#argv + 1] = "--output=opsh.testing"
  argv[#argv + 1] = "--pattern=_spec"
  if #paths == 0 then paths = {"tests"} end
  for _, p in ipairs(paths) do argv[#argv + 1] = p end
  _G.arg = argv
  require("busted.runner")({standalone = false, output = "opsh.testing"})
  return M.EXIT.ok
end

local function run_chunk(chunk, chunkname, args, opts)
  local res = table.pack(M.run_task(chunk, table.unpack(args, 1, args.n or #args)))
  if not res[1] then
    report(res[2], res[3], opts, chunkname and (chunkname .. ": ") or "")
    return exit_code_for(res[2])
  end
  return M.EXIT.ok
end

--- opsh file.lua [args]: a plain chunk, or a declared script when it returns a declaration (a
-- table with `run` or `description`), which is then checked and run as `opsh run file.lua` would.
function M.cmd_file(opts, path, words)
  local f = io.open(path, "r")
  if not f then usage(string.format("cannot open %s", path)) end
  f:close()
  local chunk, err = loadfile(path, "t")
  if not chunk then error(core.error("script", err), 0) end   -- as `opsh run file.lua`: exit 1
  _G.arg = {[0] = path, table.unpack(words)}
  local result
  local res = table.pack(M.run_task(function(...)
    result = chunk(...)
  end, table.unpack(words)))
  if not res[1] then
    report(res[2], res[3], opts)
    return M.finish_dry_run(opts, exit_code_for(res[2]))
  end
  if script.is_declaration(result) then
    local decl = script.validate(result, path, function() return require("opsh.fs").read(path) end)
    return M.run_declared(opts, decl, script.name_of(path), path, words)
  end
  return M.finish_dry_run(opts, M.EXIT.ok)
end

--- opsh wait <handle>: follow an Azure operation left with --no-wait to its end, print its result
function M.cmd_wait(opts, words)
  local handle = words[1]
  if not handle or #words > 1 then usage("wait needs one operation handle (what --no-wait printed)") end
  local res = table.pack(M.run_task(function() return require("opsh.azure").wait(handle) end))
  if not res[1] then
    report(res[2], res[3], opts, "wait: ")
    return exit_code_for(res[2])
  end
  if res[2] ~= nil then
    io.stdout:write(require("opsh.out").render(res[2], {format = opts.output or "json"}))
  end
  return M.EXIT.ok
end

local function dispatch(argv)
  local opts, rest = M.parse(argv)
  apply_globals(opts)
  if opts.chunks then
    for _, src in ipairs(opts.chunks) do
      local chunk, err = load(src, "=(command line)", "t")
      if not chunk then usage(err) end
      local code = run_chunk(chunk, nil, {n = #rest, table.unpack(rest)}, opts)
      if code ~= 0 then return M.finish_dry_run(opts, code) end
    end
    return M.finish_dry_run(opts, M.EXIT.ok)
  end
  local cmd = table.remove(rest, 1)
  if opts.version then
    io.stdout:write("opsh ", runtime.version, "\n")
    return M.EXIT.ok
  end
  if cmd == nil then
    if opts.help then return M.cmd_help(opts, {}) end
    if runtime.isatty(0) and runtime.isatty(1) then return require("opsh.repl").run(opts) end
    usage("no command given (see 'opsh help')")
  end
  if cmd == "run" then return M.cmd_run(opts, rest)
  elseif cmd == "list" then return M.cmd_list(opts)
  elseif cmd == "help" then return M.cmd_help(opts, rest)
  elseif cmd == "version" then return M.cmd_version(opts)
  elseif cmd == "env" then return M.cmd_env(opts, rest)
  elseif cmd == "scripts" then return require("opsh.cli.scripts").main(opts, rest)
  elseif cmd == "test" then return M.cmd_test(opts, rest)
  elseif cmd == "repl" then return require("opsh.repl").run(opts)
  elseif cmd == "twin" then
    if opts.dry_run then usage("the twin has no dry-run: it only starts and stops servers on this machine") end
    return require("opsh.twin.cli").main(opts, rest)
  elseif cmd == "lsp-setup" then return M.cmd_lsp_setup(opts, rest)
  elseif cmd == "completion" then return require("opsh.cli.completion").main(opts, rest)
  elseif cmd == "lint" then return require("opsh.cli.lint").main(opts, rest)
  elseif cmd == "new" then return require("opsh.cli.new").main(opts, rest)
  elseif cmd == "wait" then return M.cmd_wait(opts, rest)
  elseif cmd:match("%.lua$") or cmd:find("/") then return M.cmd_file(opts, cmd, rest)
  end
  if cmd:sub(1, 1) == "-" then
    local flags = {}
    for f in pairs(global_flags) do flags[#flags + 1] = f end
    for f in pairs(global_switches) do flags[#flags + 1] = f end
    local nearest = script.nearest(cmd, flags)
    usage(string.format("unknown flag '%s'%s", cmd,
      nearest and string.format("; did you mean '%s'?", nearest) or " (see 'opsh help')"))
  end
  local candidates = {}
  for _, c in ipairs(commands) do candidates[#candidates + 1] = c end
  for n in pairs(script.all()) do candidates[#candidates + 1] = n end
  local nearest = script.nearest(cmd, candidates)
  usage(string.format("unknown command '%s'%s", cmd,
    nearest and string.format("; did you mean '%s'?", nearest) or " (see 'opsh help')"))
end

--- Entry point from main.c: argv (with [0]) -> exit code.
function M.main(argv)
  local words = {}
  for i = 1, #argv do words[i] = argv[i] end
  local entry = dispatch
  if words[1] == "__complete" then   -- what the completion scripts ask at each Tab
    table.remove(words, 1)
    entry = require("opsh.cli.completion").complete
  end
  local ok, code = pcall(entry, words)
  if ok then return code or M.EXIT.ok end
  local err = code
  if core.is_error(err) then
    stderr("opsh: %s", core.describe(err))
    return exit_code_for(err)
  end
  stderr("opsh: internal error: %s", core.describe(err))
  stderr("%s", debug.traceback())
  return M.EXIT.failed
end

return M
