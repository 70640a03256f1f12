-- opsh.progress: a spinner line on stderr for long waits, only on a terminal and never with --quiet.
--   local p <close> = progress.start("waiting for the node pool")   ...   p:done("scaled")
local core = require("opsh._core")
local runtime = require("opsh.runtime")

local M = {}

local frames = {"|", "/", "-", "\\"}
M.enabled = runtime.isatty(2) and os.getenv("TERM") ~= "dumb"

--- start(message) -> handle with :update(message), :done([final line]); closes with <close>.
function M.start(message)
  local p = {message = message, started = core.hrtime(), active = true}
  local function draw(frame)
    io.stderr:write(string.format("\r\27[K%s %s (%.0fs)", frames[frame % #frames + 1], p.message,
      core.hrtime() - p.started))
    io.stderr:flush()
  end
  if M.enabled and core.current() then
    p.task = core.spawn(function()
      local frame = 0
      while p.active do
        draw(frame)
        frame = frame + 1
        core.sleep(0.1)
      end
    end)
  end
  function p:update(msg) self.message = msg end
  function p:done(final)
    if not self.active then return end
    self.active = false
    if self.task then
      self.task:cancel()
      io.stderr:write("\r\27[K")
      if final then io.stderr:write(final, "\n") end
      io.stderr:flush()
    end
  end
  return setmetatable(p, {__close = function(self) self:done() end})
end

function M.configure(opts)
  if opts.quiet then M.enabled = false end
end

return M
