-- Results that know their columns (opsh.pg's): printed in their column order with their own
-- names, at the REPL (repl.pretty), through opsh.out.render/print and through ctx.out.
local opsh = require("opsh")
local repl = require("opsh.repl")
local out = require("opsh.out")
local cli = require("opsh.cli")
local json = require("opsh.json")

local function capture_stdout(fn)
  local parts, real = {}, io.stdout
  io.stdout = {write = function(self, ...)
    for _, s in ipairs({...}) do parts[#parts + 1] = s end
    return self
  end, flush = function() end}
  local ok, err = pcall(fn)
  io.stdout = real
  assert(ok, err)
  return table.concat(parts)
end

local function result()
  return {
    {zeta = 1, blob_path = "a/b", alpha = 2.5},
    {zeta = 20, blob_path = "c", alpha = json.null},
    columns = {{name = "zeta", type = 23}, {name = "blob_path", type = 25}, {name = "alpha", type = 701}},
    command = "SELECT 2", affected = 2,
  }
end

describe("results with columns", function()
  it("are recognised by a `columns` list of names or {name=} tables", function()
    assert.are.same({"zeta", "blob_path", "alpha"}, out.result_columns(result()))
    assert.are.same({"b", "a"}, out.result_columns({columns = {"b", "a"}}))
    assert.is_nil(out.result_columns({columns = {}}))
    assert.is_nil(out.result_columns({columns = "x"}))
    assert.is_nil(out.result_columns({columns = {{type = 1}}}))
    assert.is_nil(out.result_columns({{a = 1}}))
  end)

  it("render as a table of their rows in column order, names as they are", function()
    assert.are.equal("zeta   blob_path   alpha\n1      a/b         2.5\n20     c           null\n",
      out.render(result()))
  end)

  it("render their header alone when there are no rows", function()
    assert.are.equal("zeta   blob_path\n", out.render({columns = {"zeta", "blob_path"}, command = "SELECT 0"}))
  end)

  it("keep the column order in tsv, and are a list of records in json", function()
    assert.are.equal("1\ta/b\t2.5\n20\tc\tnull\n", out.render(result(), {format = "tsv"}))
    local decoded = json.decode(out.render(result(), {format = "json"}))
    assert.are.equal(2, #decoded)
    assert.are.equal("a/b", decoded[1].blob_path)
    assert.are.equal("[]\n", out.render({columns = {"a"}}, {format = "json"}))
  end)

  it("redact secrets and bold the header with color", function()
    local r = {{user = "app", password = opsh.secret("hunter2")}, columns = {"user", "password"}}
    local text = out.render(r, {color = true})
    assert.are.equal("\27[1muser   password\27[0m\napp    <redacted>\n", text)
  end)

  it("print that way through opsh.out.print and ctx.out", function()
    local expected = "zeta   blob_path   alpha\n1      a/b         2.5\n20     c           null\n"
    assert.are.equal(expected, capture_stdout(function() out.print(result()) end))
    local ctx = cli.context({no_color = true}, "spec")
    assert.are.equal(expected, capture_stdout(function() ctx.out(result()) end))
  end)

  it("print that way at the prompt", function()
    assert.are.equal("zeta   blob_path   alpha\n1      a/b         2.5\n20     c           null", repl.pretty(result()))
    assert.are.equal("zeta   blob_path   alpha\n1      a/b         2.5\n20     c           null",
      repl.show(table.pack(result())))
  end)
end)

describe("an opsh.pg result", function()
  local launcher = require("opsh.twin.postgres")
  local pg = require("opsh.pg")
  local fs = require("opsh.fs")
  local tmp, server

  setup(function()
    tmp = fs.tmpdir("opsh-repl-result-")
    fs.chmod(tmp, "0755")   -- the postgres user (when root) walks through it
    server = launcher.start({dir = tmp .. "/pg"})
  end)

  teardown(function()
    if server then server.stop() end
    if tmp then fs.rmtree(tmp) end
  end)

  it("prints in the SELECT's column order with the SELECT's names", function()
    local c <close> = pg.connect(server.connect_params())
    local r = c:query([[SELECT x AS zeta, 'p/' || x AS blob_path, NULL::text AS "Mixed Case"
      FROM generate_series(1, 2) AS x]])
    assert.are.equal("zeta   blob_path   Mixed Case\n1      p/1         null\n2      p/2         null",
      repl.pretty(r))
    assert.are.equal("zeta\tblob_path\tMixed Case", (out.render(r):match("^[^\n]*"):gsub("%s%s+", "\t")))
  end)
end)
