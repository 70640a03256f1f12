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

  it("names functions by where they are defined", function()
    assert.are.equal("function: builtin", repl.pretty(print))
    assert.matches("^function: .*repl_spec%.lua:%d+$", repl.pretty(function() end))
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
      "\tlua/opsh/repl.lua:334: in function <lua/opsh/repl.lua:333>"
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
