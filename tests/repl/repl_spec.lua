local opsh = require("opsh")
local repl = require("opsh.repl")
local C = require("opsh._repl")
local fs = require("opsh.fs")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local sh = S.sh

describe("opsh.repl pretty printer", function()
  it("quotes strings and escapes control characters", function()
    assert.are.equal('"a\\"b\\\\c\\tx\\001"', repl.pretty('a"b\\c\tx\1'))
    assert.are.equal("42", repl.pretty(42))
    assert.are.equal("0.5", repl.pretty(0.5))
    assert.are.equal("nil", repl.pretty(nil))
  end)

  it("prints a multi-line string as a long bracket that survives ]]", function()
    assert.are.equal("[[\nline 1\nline 2]]", repl.pretty("line 1\nline 2"))
    assert.are.equal("[=[\na]]b\n]=]", repl.pretty("a]]b\n"))
  end)

  it("sorts keys, lists the array part first and stays on one line when short", function()
    assert.are.equal('{10, 20, [2.5] = 3, a = 1, b = {x = true}, ["not id"] = 2}',
      repl.pretty({10, 20, b = {x = true}, a = 1, ["not id"] = 2, [2.5] = 3}))
    assert.are.equal("{}", repl.pretty({}))
  end)

  it("breaks long tables over indented lines", function()
    local t = {alpha = string.rep("a", 40), beta = string.rep("b", 40), nested = {c = string.rep("c", 70)}}
    local expected = '{\n  alpha = "' .. string.rep("a", 40) .. '",\n  beta = "' .. string.rep("b", 40) ..
      '",\n  nested = {\n    c = "' .. string.rep("c", 70) .. '"\n  }\n}'
    assert.are.equal(expected, repl.pretty(t))
  end)

  it("stops at the depth limit and marks cycles", function()
    assert.are.equal("{a = {b = {...}}}", repl.pretty({a = {b = {c = {}}}}, {depth = 2}))
    local t = {name = "loop"}
    t.self = t
    assert.are.equal('{name = "loop", self = <cycle>}', repl.pretty(t))
    local shared = {1}
    assert.are.equal("{a = {1}, b = {1}}", repl.pretty({a = shared, b = shared}))
  end)

  it("limits the entries shown per table", function()
    local t = {}
    for i = 1, 10 do t[i] = i end
    assert.are.equal("{1, 2, 3, ... (7 more)}", repl.pretty(t, {items = 3}))
  end)

  it("redacts secrets, nested too", function()
    local s = opsh.secret("hunter2")
    assert.are.equal("<redacted>", repl.pretty(s))
    local text = repl.pretty({user = "app", password = s})
    assert.are.equal('{password = <redacted>, user = "app"}', text)
    assert.is_nil(text:find("hunter2", 1, true))
  end)

  it("prints a structured error on one line with its kind", function()
    local e = opsh.error("http", "not\nfound", {status = 404})
    assert.are.equal("<http error: not found (status 404)>", repl.pretty(e))
  end)

  it("prints a list of records as a table", function()
    local text = repl.pretty({{name = "web", replicas = 3}, {name = "worker", replicas = 10}})
    assert.are.equal("NAME     REPLICAS\nweb      3\nworker   10", text)
    assert.is_true(repl.is_records({{a = 1}}))
    assert.is_false(repl.is_records({{a = 1}, {2}}))
    assert.is_false(repl.is_records({{a = 1}, x = 1}))
    assert.is_false(repl.is_records({1, 2}))
    assert.is_false(repl.is_records({}))
  end)

  it("shows several values on one line, or one per line when any spans lines", function()
    assert.are.equal('1\t"a"\tnil', repl.show(table.pack(1, "a", nil)))
    assert.are.equal("1\n[[\na\nb]]", repl.show(table.pack(1, "a\nb")))
    assert.is_nil(repl.show(table.pack()))
  end)

  it("prints a function with its parameters and where it is defined", function()
    assert.are.equal("function: builtin print", repl.pretty(print))
    assert.are.equal("function: builtin", repl.pretty(coroutine.wrap(function() end)))
    assert.matches("^function%(a, b, %.%.%.%) at .*repl_spec%.lua:%d+$", repl.pretty(function(a, b, ...) end))
  end)

  it("prints an opsh function with the signature its stub gives", function()
    assert.are.equal("function opsh.pg.connect(target?, overrides?)", repl.pretty(require("opsh.pg").connect))
    assert.are.equal("function opsh.sleep(seconds)", repl.pretty(opsh.sleep))
    assert.matches("connect = function opsh%.pg%.connect%(target%?, overrides%?%)", repl.pretty((require("opsh.pg"))))
  end)
end)

describe("opsh.repl completion", function()
  after_each(function()
    _G.repl_cfg, _G.repl_s, _G.repl_task, _G.repl_runaway = nil, nil, nil, nil
  end)

  it("completes globals and keywords", function()
    assert.are.same({"print"}, repl.complete("prin"))
    assert.are.same({"function"}, repl.complete("functio"))
    local all = repl.complete("")
    assert.is_truthy(#all > 30)
  end)

  it("completes fields of a dotted path", function()
    _G.opsh = _G.opsh or opsh
    assert.are.same({"opsh.spawn"}, repl.complete("opsh.spa"))
    assert.are.same({"string.format"}, repl.complete("string.fo"))
    _G.repl_cfg = {db = {host = "h", hostname = "x", port = 1}}
    assert.are.same({"repl_cfg.db.host", "repl_cfg.db.hostname"}, repl.complete("repl_cfg.db.ho"))
    assert.are.same({"repl_cfg.db"}, repl.complete("repl_cfg."))
  end)

  it("completes modules that load on first use, before they are loaded", function()
    _G.lazy_cfg = setmetatable({}, {__fields = {redis = true, http = true},
      __index = function(t, k) return "loaded " .. k end})
    assert.are.same({"lazy_cfg.redis"}, repl.complete("lazy_cfg.re"))
    assert.are.same({"lazy_cfg.http", "lazy_cfg.redis"}, repl.complete("lazy_cfg."))
    _G.opsh = _G.opsh or opsh
    local found = {}
    for _, c in ipairs(repl.complete("opsh.")) do found[c] = true end
    assert.is_true(found["opsh.pg"] and found["opsh.yaml"] and found["opsh.twin"])
  end)

  it("completes methods through the metatable's __index: strings and userdata", function()
    _G.repl_s = "text"
    assert.are.same({"repl_s:upper"}, repl.complete("repl_s:up"))
    _G.repl_task = opsh.spawn(function() end)
    assert.are.same({"repl_task:wait"}, repl.complete("repl_task:wa"))
    _G.repl_task:wait()
  end)

  it("offers only callables after a colon", function()
    _G.repl_cfg = {name = "x", run = function() end}
    assert.are.same({"repl_cfg:run"}, repl.complete("repl_cfg:"))
  end)

  it("returns nothing for what is not a path", function()
    assert.are.same({}, repl.complete("nosuch.x"))
    assert.are.same({}, repl.complete("a..b"))
    assert.are.same({}, repl.complete("1abc"))
  end)

  it("gives up on an __index that never returns", function()
    _G.repl_runaway = setmetatable({}, {__index = function() while true do end end})
    assert.are.same({}, repl.complete_guarded("repl_runaway.x.y"))
  end)
end)

describe("opsh.repl chunks", function()
  it("tries a first line as an expression, and =expr", function()
    local fn = repl.compile("1 + 1", true)
    assert.are.equal(2, fn())
    fn = repl.compile("=2 * 3", true)
    assert.are.equal(6, fn())
    local f2, src = repl.compile("x_repl_spec = 5", true)
    assert.is_function(f2)
    assert.are.equal("x_repl_spec = 5", src)
  end)

  it("recognises an incomplete chunk as lua.c does", function()
    local fn, err, incomplete, source = repl.compile("function f(a,", true)
    assert.is_nil(fn)
    assert.is_true(incomplete)
    assert.are.equal("function f(a,", source)
    fn = repl.compile(source .. "\nb) return a + b end", false)
    assert.is_function(fn)
    fn, err, incomplete = repl.compile("x = = 1", true)
    assert.is_nil(fn)
    assert.is_false(incomplete)
    assert.matches("unexpected symbol", err)
  end)

  it("trims the REPL's own frames and the message off a traceback", function()
    local tb = "repl:1: x\nstack traceback:\n\t[C]: in function 'error'\n\trepl:1: in upvalue 'fn'\n" ..
      "\tlua/opsh/repl/init.lua:134: in function <lua/opsh/repl/init.lua:133>\n" ..
      "\t/src/opsh/lua/opsh/repl/locals.lua:98: in metamethod 'newindex'"
    assert.are.equal("stack traceback:\n\t[C]: in function 'error'\n\trepl:1: in upvalue 'fn'",
      repl.trim_traceback(tb))
  end)

  it("describes a failure in one line", function()
    assert.are.equal("error: not found (status 404)",
      repl.describe(opsh.error("http", "not found", {status = 404})))
    assert.are.equal("interrupted", repl.describe(opsh.error("interrupted", "interrupted")))
    assert.are.equal("error: repl:1: a b", repl.describe("repl:1: a\nb"))
    assert.are.equal("error: {code = 1}", repl.describe({code = 1}))
  end)
end)

describe("opsh.repl history", function()
  local dir
  before_each(function() dir = fs.tmpdir("opsh-repl-spec-") end)
  after_each(function() fs.rmtree(dir) end)

  it("keeps credentials and lines starting with a space out of the file", function()
    assert.is_true(repl.keep_in_history("opsh.sleep(1)"))
    assert.is_true(repl.keep_in_history("for i = 1, 3 do\nprint(i)\nend"))
    assert.is_false(repl.keep_in_history('c = pg.connect{password = "x"}'))
    assert.is_false(repl.keep_in_history('s = opsh.secret("hunter2")'))
    assert.is_false(repl.keep_in_history('h = {Authorization = "Bearer abc"}'))
    assert.is_false(repl.keep_in_history('u = "postgres://app:pw@db/x"'))
    assert.is_false(repl.keep_in_history('k = API_KEY'))
    assert.is_false(repl.keep_in_history(' x = 1'))
  end)

  it("creates private directories and file, and reads back what was appended", function()
    local path = dir .. "/state/opsh/history"
    assert.are.same({}, C.history_load(path, 10))
    assert.are.equal("700", sh("stat -c %a '" .. dir .. "/state/opsh'"))
    assert.are.equal("600", sh("stat -c %a '" .. path .. "'"))
    assert.is_true(C.history_append(path, "x = 1"))
    assert.is_true(C.history_append(path, "f(a,\nb) -- back\\slash"))
    assert.are.same({"x = 1", "f(a,\nb) -- back\\slash"}, C.history_load(path, 10))
  end)

  it("narrows a history file others can read", function()
    fs.write(dir .. "/h", "", {mode = "0644"})
    C.history_load(dir .. "/h", 10)
    assert.are.equal("600", sh("stat -c %a '" .. dir .. "/h'"))
  end)

  it("loads the last entries and compacts a file grown past twice the limit", function()
    local path = dir .. "/h"
    C.history_load(path, 3)
    for i = 1, 7 do C.history_append(path, "line " .. i) end
    assert.are.same({"line 5", "line 6", "line 7"}, C.history_load(path, 3))
    assert.are.equal("line 5\nline 6\nline 7", sh("cat '" .. path .. "'"))
    assert.are.equal("600", sh("stat -c %a '" .. path .. "'"))
  end)

  it("reports a path it cannot create", function()
    local entries, err = C.history_load("/proc/opsh-no/history", 10)
    assert.is_nil(entries)
    assert.matches("cannot create the directory of /proc/opsh%-no/history", err)
  end)
end)

describe("opsh.repl chunk-level locals", function()
  local function run(env, source)
    local fn, err = repl.compile(source, true, env)
    assert(fn, err)
    local res = table.pack(fn())
    getmetatable(env).__repl.finish()
    return table.unpack(res, 1, res.n)
  end

  after_each(function()
    _G.repl_inc, _G.repl_g, _G.repl_shadowed, _G.repl_fact = nil, nil, nil, nil
  end)

  it("rewrites chunk-level locals into the session and leaves nested ones alone", function()
    local D = '_ENV["(local)"]'
    assert.are.same({D .. '{"a","b"}; a, b = 1, 2', {"a", "b"}}, {repl.rewrite_locals("local a, b = 1, 2")})
    assert.are.same({D .. '{"x"}; x = nil', {"x"}}, {repl.rewrite_locals("local x")})
    assert.are.same({D .. '{"f"}; function f() local y = 1 return y end', {"f"}},
      {repl.rewrite_locals("local function f() local y = 1 return y end")})
    assert.are.same({D .. '{"c"}; c         = 1', {"c"}}, {repl.rewrite_locals("local c <const> = 1")})
    local nested = "do local a = 1 end if x then local b = 2 end for i = 1, 2 do local c = i end " ..
      "repeat local d = 1 until d while false do local e end f = function() local g end"
    assert.are.same({nested, {}}, {repl.rewrite_locals(nested)})
    local own_env = "local a = 1 local _ENV = {a = a} local b = a"
    assert.are.same({own_env, {}}, {repl.rewrite_locals(own_env)})
    local closing = "local h <close> = nil"
    assert.are.same({closing, {}}, {repl.rewrite_locals(closing)})
    local quoted = 's = "local x = 1" -- local y\nlocal z = [[local w]]'
    assert.are.same({'s = "local x = 1" -- local y\n' .. D .. '{"z"}; z = [[local w]]', {"z"}},
      {repl.rewrite_locals(quoted)})
  end)

  it("keeps each line where it was, so that errors point at the line typed", function()
    local env = repl.environment()
    local fn = repl.compile("local a,\nb = 1,\n2\nerror('third')", false, env)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.are.equal("repl:4: third", err)
  end)

  it("shares a local between chunks and the functions that captured it", function()
    local env = repl.environment()
    run(env, "local n = 0; function repl_inc() n = n + 1 return n end")
    run(env, "repl_inc()")
    assert.are.equal(2, run(env, "repl_inc()"))
    assert.are.equal(2, run(env, "n"))
    run(env, "n = 10")
    assert.are.equal(11, run(env, "repl_inc()"))
    assert.is_nil(rawget(_G, "n"))
  end)

  it("keeps a pasted local function, recursive, for the next lines", function()
    local env = repl.environment()
    run(env, "local function fact(k)\n  if k <= 1 then return 1 end\n  return k * fact(k - 1)\nend")
    assert.are.equal(120, run(env, "fact(5)"))
    assert.is_nil(rawget(_G, "fact"))
  end)

  it("reads the outer value on the right side; a bare local shadows a global with nil", function()
    local env = repl.environment()
    _G.repl_shadowed = "global"
    run(env, "local repl_shadowed = repl_shadowed .. '+local'")
    assert.are.equal("global+local", run(env, "repl_shadowed"))
    assert.are.equal("global", _G.repl_shadowed)
    run(env, "local repl_shadowed")
    assert.is_nil(run(env, "repl_shadowed"))
    run(env, "repl_shadowed = 5")
    assert.are.equal("global", _G.repl_shadowed)
    assert.are.equal(5, run(env, "repl_shadowed"))
  end)

  it("sends assignments to other names to the globals, which other code sees", function()
    local env = repl.environment()
    run(env, "repl_g = 1")
    assert.are.equal(1, _G.repl_g)
    run(env, "local t = {} function repl_fact() return t end")
    assert.are.equal(run(env, "t"), _G.repl_fact())
  end)

  it("does not declare a local whose chunk failed before assigning it", function()
    local env = repl.environment()
    local fn = repl.compile("local repl_g = error('no')", false, env)
    assert.is_false(pcall(fn))
    getmetatable(env).__repl.finish()
    run(env, "repl_g = 7")
    assert.are.equal(7, _G.repl_g)
  end)

  it("keeps <close> locals closing at the end of their chunk", function()
    local env = repl.environment()
    local closed = false
    _G.repl_g = function() closed = true end
    run(env, "local c <close> = setmetatable({}, {__close = repl_g})")
    assert.is_true(closed)
    assert.is_nil(run(env, "c"))
  end)
end)

describe("opsh.repl help", function()
  after_each(function()
    repl.META_DIRS = nil
    repl.reset_stubs()
  end)

  it("parses a ---@meta stub: classes, signatures, parameter types, returns and doc lines", function()
    local parsed = repl.parse_stub([[
---@meta
-- Stubs for `x`. See docs/x.md.

---@class x.handle
---@field id integer the handle's id
local handle = {}
---Close it.
---@param how? {force?: boolean, wait: fun(t: number): boolean} how to close
---@return boolean ok, string? err
function handle:close(how) end

---@class x
local x = {}
---Open one.
---@param path string
---@param ... any
---@return x.handle
function x.open(path, ...) end
return x
]])
    assert.are.equal("docs/x.md", parsed.see)
    assert.are.same({{name = "id", type = "integer", optional = false, desc = "the handle's id"}},
      parsed.classes["x.handle"].fields)
    local close, open = parsed.entries[1], parsed.entries[2]
    assert.are.equal("x.handle:close", close.name)
    assert.is_true(close.method)
    assert.are.same({"Close it."}, close.doc)
    assert.are.same({name = "how", type = "{force?: boolean, wait: fun(t: number): boolean}", optional = true,
      desc = "how to close"}, close.param.how)
    assert.are.equal("boolean ok, string? err", close.returns)
    assert.are.equal("x.open(path, ...)", repl.signature(open))
    assert.are.equal("x.open(path: string, ...: any) -> x.handle", repl.signature(open, true))
  end)

  it("shows the signature, doc line and parameters of an opsh function", function()
    local text = repl.help_text(require("opsh.pg").connect)
    assert.are.equal(table.concat({
      "opsh.pg.connect(target?: string|opsh.pg.options, overrides?: opsh.pg.options) -> opsh.pg.conn",
      'Connect (suspends the task): TLS verify-full unless a weaker sslmode is named; host names resolved',
      'off the loop. Raises {kind="pg_connect", host, port, dbname, user} on failure.',
      "  target     a URI, a conninfo string or a table",
      "  overrides  with a string target",
      "See docs/pg.md."}, "\n"), text)
  end)

  it("finds a method through the object's class, by name, or across classes", function()
    local t = opsh.spawn(function() end)
    t:wait()
    assert.matches("^opsh%.task:wait%(timeout%?: number%) %-> any %.%.%.\nWait for the task", repl.help_text(t, "wait"))
    -- a method several classes have: each of them, one after another
    local across = repl.help_text(nil, "query")
    assert.matches("\nopsh%.pg%.conn:query%(sql: string", "\n" .. across)
    assert.matches("\nopsh%.azure%.query%.client:query%(kql: string", "\n" .. across)
    assert.matches("^opsh%.pg%.conn:query%(sql: string", repl.help_text("opsh.pg.conn:query"))
    assert.matches("opsh%.pg%.pool%(opts%)\n", repl.help_text("pg.pool") .. "\n")
  end)

  it("lists a module's functions with their first doc line", function()
    local text = repl.help_text((require("opsh.pg")))
    assert.matches("^opsh%.pg — see docs/pg%.md\n", text)
    assert.matches("\n  opsh%.pg%.connect%(target%?, overrides%?%) %-> opsh%.pg%.conn\n      Connect %(", text)
  end)

  --- add_one(n): a function no stub declares,
  -- documented by the comments above it.
  local function add_one(n) return n + 1 end

  it("falls back to the parameters and source comments of functions without a stub", function()
    local info = debug.getinfo(add_one, "S")
    assert.are.equal("function(n) at " .. info.short_src .. ":" .. info.linedefined ..
      "\nadd_one(n): a function no stub declares,\ndocumented by the comments above it.",
      repl.help_text(add_one))
    assert.are.equal("function: builtin string.format\nLua's standard library: see the Lua 5.4 reference manual.",
      repl.help_text(string.format))
    assert.are.equal("42  (number)", repl.help_text(42))
  end)

  it("works without the stubs: functions print with their parameters", function()
    repl.META_DIRS = {"/nonexistent"}
    repl.reset_stubs()
    local ok, rt = pcall(require, "opsh.runtime")
    if ok and #rt.embedded("meta:") > 0 then return end   -- the build embeds them: nothing to miss
    assert.matches("^function%(target, overrides%) at ", repl.pretty(require("opsh.pg").connect))
    assert.matches("no docs/meta stubs found", repl.help_text(function() end))
  end)

  it("turns ?x and ?obj:method into help calls, other lines not", function()
    assert.are.equal('_ENV["(help path)"]("opsh.pg.connect")', repl.help_line("?opsh.pg.connect"))
    assert.are.equal('_ENV["(help path)"]("conn:query")', repl.help_line("  ? conn:query "))
    assert.are.equal('_ENV["(help)"](f(1), "query")', repl.help_line("?f(1):query"))
    assert.are.equal('_ENV["(help)"](t[1])', repl.help_line("?t[1]"))
    assert.are.equal('_ENV["(help)"](f -- the function\n)', repl.help_line("?f -- the function"))
    assert.are.equal('_ENV["(help)"]()', repl.help_line("?"))
    assert.is_nil(repl.help_line("x = '?'"))
    local env = repl.environment()
    local printed = {}
    local real = io.stdout
    io.stdout = {write = function(_, ...) for _, s in ipairs({...}) do printed[#printed + 1] = s end end}
    local ok, err = pcall(function() repl.compile(repl.help_line("?opsh.sleep"), true, env)() end)
    io.stdout = real
    assert(ok, err)
    assert.are.equal("opsh.sleep(seconds: number)\nSuspend the current task for `seconds` (math.huge: until it is cancelled).\n", table.concat(printed))
    printed = {}
    io.stdout = {write = function(_, ...) for _, s in ipairs({...}) do printed[#printed + 1] = s end end}
    ok, err = pcall(function()
      repl.compile(repl.help_line("?opsh.pg.conn:query"), true, env)()   -- no such value: by name
      repl.compile(repl.help_line("?nosuch_name"), true, env)()
    end)
    io.stdout = real
    assert(ok, err)
    assert.matches("^opsh%.pg%.conn:query%(sql: string, %.%.%.: any%) %-> opsh%.pg%.result\n", table.concat(printed))
    assert.matches('\nno help for "nosuch_name"\n$', table.concat(printed))
  end)
end)

describe("opsh.repl completion of keys, locals and string methods", function()
  after_each(function() _G.repl_t = nil end)

  it("completes string keys after t[ and t[\"", function()
    _G.repl_t = {foo = 1, food = 2, ["not id"] = 3, bar = 4, [1] = 5, ['q"uote'] = 6}
    assert.are.same({'foo"]', 'food"]'}, repl.complete("fo", 'x = repl_t["'))
    assert.are.same({"foo']", "food']"}, repl.complete("fo", "repl_t['"))
    assert.are.same({'id"]'}, repl.complete("i", 'repl_t["not '))
    assert.are.same({'"bar"]', '"foo"]', '"food"]', '"not id"]'}, repl.complete("", "repl_t["))
    assert.are.same({"repl_t"}, repl.complete("repl_", "x["))
  end)

  it("completes the session's locals and their fields and methods", function()
    local env = repl.environment()
    local ctl = getmetatable(env).__repl
    ctl.declare("my_str", "text")
    ctl.declare("my_cfg", {host = "h"})
    assert.are.same({"my_cfg", "my_str"}, repl.complete("my_", "", env))
    assert.are.same({"my_str:upper"}, repl.complete("my_str:up", "", env))
    assert.are.same({"my_cfg.host"}, repl.complete("my_cfg.h", "", env))
    assert.are.same({'host"]'}, repl.complete("h", 'my_cfg["', env))
  end)

  it("completes after ? at the start of a line", function()
    _G.opsh = _G.opsh or opsh
    assert.are.same({"?opsh.spawn"}, repl.complete("?opsh.spa", ""))
    assert.are.same({}, repl.complete("?opsh.spa", "x = "))
  end)

  it("completes string methods after a string literal in parentheses, not after a call", function()
    assert.are.same({":upper"}, repl.complete(":up", '("abc")'))
    assert.are.same({":format"}, repl.complete(":forma", "x = ('%d')"))
    assert.are.same({}, repl.complete(":up", 'f("abc")'))
  end)
end)

describe("opsh.repl completion of Kubernetes resource names", function()
  local complete = require("opsh.repl.complete")
  local fs = require("opsh.fs")
  local disc = require("opsh.k8s.discovery")
  local dir, saved

  setup(function()
    dir = fs.tmpdir("opsh-k8s-complete-")
    saved = disc.default_cache_dir
    disc.default_cache_dir = function() return dir end
    disc.write_cache(disc.cache_path(disc.default_cache_dir(), "https://127.0.0.1:6443"),
      {{resource = "pods", short_names = {"po"}, kind = "Pod"},
       {resource = "deployments", short_names = {"deploy"}, kind = "Deployment"},
       {resource = "pods/log", short_names = {}}})
  end)
  teardown(function()
    disc.default_cache_dir = saved
    fs.rmtree(dir)
  end)

  it("offers plural and short names from the discovery cache inside a k8s call's string", function()
    assert.are.same({"po", "pods"}, complete.complete("p", 'k8s.get("'))
    assert.are.same({"deploy", "deployments"}, complete.complete("de", "opsh.k8s.list('"))
    local env = setmetatable({c = setmetatable({}, {__tostring = function() return "opsh.k8s.client (x)" end})},
      {__index = _G})
    assert.are.same({"po", "pods"}, complete.complete("p", 'c:get("', env))
    -- not a k8s call: no resource names
    for _, name in ipairs(complete.complete("p", 'print("')) do assert.are_not.equal("pods", name) end
  end)
end)
