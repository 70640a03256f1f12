---@meta opsh.progress
-- Editor stubs for `opsh.progress` (lua/opsh/progress.lua). See docs/output.md.

---@class opsh.progress.handle
local handle = {}
---@param message string
function handle:update(message) end
---@param final? string a last line to print
function handle:done(final) end

---@class opsh.progress
---@field enabled boolean a spinner is drawn (stderr is a terminal, TERM is not dumb, not --quiet)
local progress = {}
---A spinner line on stderr while something long runs; closes with <close>.
---@param message string
---@return opsh.progress.handle
function progress.start(message) end
---@param opts {quiet?: boolean}
function progress.configure(opts) end

return progress
