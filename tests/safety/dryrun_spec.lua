-- opsh.dryrun: the run-wide record of what a dry-run would have done, and how the CLI ends one.
local core = require("opsh._core")
local dryrun = require("opsh.dryrun")
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")

describe("opsh.dryrun", function()
  after_each(function() dryrun.enable(false); dryrun.reset() end)

  it("is off unless the run asks for it", function()
    assert.is_false(dryrun.active())
  end)

  it("records what would have been done, scrubbed of the call's secrets, in order", function()
    local records = dryrun.with(function()
      assert.is_true(dryrun.active())
      dryrun.record{kind = "http", action = "POST https://h/x?sig=t0p-s3cret", target = "h",
        request = {method = "POST", headers = {Authorization = core.secret("Bearer tok-123456")},
                   body = "t0p-s3cret"},
        secrets = {"t0p-s3cret"}}
      dryrun.record{kind = "redis", action = "SET lock:a"}
    end)
    assert.is_false(dryrun.active())
    assert.equal(2, #records)
    assert.equal("POST https://h/x?sig=<redacted>", records[1].action)
    assert.equal("<redacted>", records[1].request.headers.Authorization)
    assert.equal("<redacted>", records[1].request.body)
    assert.equal(1, records[1].seq)
    assert.equal("SET lock:a", records[2].action)
    assert.equal(2, #dryrun.planned())
  end)

  it("refuses a record without kind or action", function()
    local err = S.catch(dryrun.record, {kind = "http"})
    assert.equal("usage", err.kind)
    err = S.catch(dryrun.record, "POST")
    assert.equal("usage", err.kind)
  end)

  describe("the CLI", function()
    local dir, file
    setup(function()
      dir = fs.tmpdir("opsh-dryrun-")
      file = dir .. "/mutate.lua"
      fs.write(file, [[
local dryrun = require("opsh.dryrun")
if dryrun.active() and (arg[1] or "") ~= "none" then
  dryrun.record{kind = "test", action = "change the world", target = "world"}
end
io.stdout:write("ran\n")
]])
    end)
    teardown(function() fs.rmtree(dir) end)

    local function opsh(...)
      local r = proc.run{argv = {runtime.exe(), ...}, check = false, env_add = {OPSH_ENV = false}}
      return r.code, r.stdout, r.stderr
    end

    it("exits 4 and lists the plan when changes are planned", function()
      local code, out = opsh("--dry-run", file)
      assert.equal(4, code)
      assert.truthy(out:find("ran", 1, true))
      assert.truthy(out:find("1 change(s) planned", 1, true))
      assert.truthy(out:find("change the world", 1, true))
    end)

    it("exits 0 when nothing would change", function()
      local code, out = opsh("--dry-run", file, "none")
      assert.equal(0, code)
      assert.truthy(out:find("0 change(s) planned", 1, true))
    end)

    it("gives the plan as one JSON document with -o json", function()
      local code, out = opsh("--dry-run", "-o", "json", file)
      assert.equal(4, code)
      local doc = json.decode(out:sub((out:find("{", 1, true))))
      assert.equal("change the world", doc.dry_run.planned[1].action)
    end)

    it("refuses --dry-run for the twin, which only changes this machine", function()
      local code, _, err = opsh("--dry-run", "twin", "status")
      assert.equal(2, code)
      assert.truthy(err:find("no dry-run", 1, true))
    end)

    it("records nothing and reports nothing without --dry-run", function()
      local code, out = opsh(file)
      assert.equal(0, code)
      assert.equal("ran\n", out)
    end)
  end)
end)
