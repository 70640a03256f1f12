---@meta opsh.log
-- Editor stubs for `opsh.log` (lua/opsh/log.lua). See docs/output.md.

---@class opsh.log
local log = {}
---@param opts {format?: "human"|"json", verbose?: boolean, quiet?: boolean, color?: boolean, level?: "debug"|"info"|"warn"|"error"}
function log.configure(opts) end
---Would a message at this level be written?
---@param level "debug"|"info"|"warn"|"error"
---@return boolean
function log.enabled(level) end
---@param msg any
---@param fields? table secrets print as <redacted>
function log.debug(msg, fields) end
---@param msg any
---@param fields? table
function log.info(msg, fields) end
---@param msg any
---@param fields? table
function log.warn(msg, fields) end
---@param msg any
---@param fields? table
function log.error(msg, fields) end

return log
