-- opsh.testing: busted output handler for `opsh test`. Busted's own terminal output, then a
-- last line "N passed, N failed" (errors count as failures) that CI reads.
local runtime = require("opsh.runtime")

return function(options)
  local busted = require("busted")
  local name = runtime.isatty(1) and "utfTerminal" or "plainTerminal"
  local inner = require("busted.outputHandlers." .. name)(options)
  busted.subscribe({"suite", "end"}, function()
    local passed = inner.successesCount or 0
    local failed = (inner.failuresCount or 0) + (inner.errorsCount or 0)
    local skipped = inner.pendingsCount or 0
    io.stdout:write(string.format("\n%d passed, %d failed%s\n", passed, failed,
      skipped > 0 and string.format(", %d skipped", skipped) or ""))
    io.stdout:flush()
    return nil, true
  end)
  return inner
end
