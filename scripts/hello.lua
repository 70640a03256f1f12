-- hello: the engine's versions and a small concurrency check; needs no platform.
return {
  description = "Print opsh's versions and run a few tasks at once (needs no platform)",
  categories = {"diagnostics"},
  flags = {"read-only"},
  args = {
    tasks = {help = "how many tasks to run concurrently", type = "integer", default = 100},
    sleep = {help = "how long each task sleeps", type = "duration", default = "10ms"},
  },
  run = function(ctx, args)
    local opsh = require("opsh")
    local time = require("opsh.time")
    if args.tasks < 1 then opsh.raise("usage", "--tasks must be at least 1") end
    local started = time.monotonic()
    local items = {}
    for i = 1, args.tasks do items[i] = i end
    local results = opsh.parallel(items, function(i) opsh.sleep(args.sleep); return i end)
    local elapsed = time.monotonic() - started
    ctx.out({
      {component = "opsh", version = opsh.version},
      {component = "lua", version = _VERSION},
    }, {columns = {"component", "version"}})
    if ctx.output == "table" then
      io.stdout:write(string.format("\n%d tasks slept %.0f ms each, together in %.1f ms\n",
        #results, args.sleep * 1000, elapsed * 1000))
    end
  end,
}
