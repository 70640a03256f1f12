---@meta opsh.redact
-- Editor stubs for `opsh.redact` (lua/opsh/redact.lua). See docs/dryrun.md.

---@class opsh.redact
local redact = {}
---The opsh.secret values inside a value.
---@param value any
---@param into? opsh.secret[]
---@return opsh.secret[]
function redact.collect(value, into) end
---s without any of the secrets (raw, percent-encoded, JSON-escaped, base64 at any alignment).
---@param s string
---@param secrets (string|opsh.secret)[]
---@return string
function redact.text(s, secrets) end
---err with every string field scrubbed (nested too).
---@generic E
---@param err E
---@param secrets (string|opsh.secret)[]
---@return E
function redact.error(err, secrets) end
---fn's results; an error fn raises is scrubbed first.
---@param secrets (string|opsh.secret)[]
---@param fn fun(...): ...
---@return ...
function redact.guard(secrets, fn, ...) end

return redact
