-- opsh.redact: one way for every primitive to keep the secrets a call carried out of the text it
-- writes into errors, logs and dry-run records. A call gathers its secrets (opsh.secret values,
-- and plain strings it knows to be credentials: an Authorization header, a URL's password), then
-- scrubs what it is about to show. The scrub removes each value in its raw, percent-encoded,
-- JSON-escaped and base64 forms (base64 at any alignment: the password inside "user:pw" too).
local core = require("opsh._core")

local M = {}

--- collect(value, into) -> into: every opsh.secret found in value (nested tables walked once)
function M.collect(value, into, seen)
  into = into or {}
  if core.is_secret(value) then
    into[#into + 1] = value
  elseif type(value) == "table" and not core.is_error(value) then
    seen = seen or {}
    if seen[value] then return into end
    seen[value] = true
    for k, v in pairs(value) do
      M.collect(k, into, seen)
      M.collect(v, into, seen)
    end
  end
  return into
end

--- text(s, secrets) -> s without any of the secrets
function M.text(s, secrets)
  if type(s) ~= "string" or not secrets or #secrets == 0 then return s end
  return core.scrub(s, secrets)
end

local function scrub_fields(t, secrets, seen)
  if seen[t] then return end
  seen[t] = true
  for k, v in pairs(t) do
    if type(v) == "string" then
      t[k] = core.scrub(v, secrets)
    elseif type(v) == "table" and not core.is_secret(v) then
      scrub_fields(v, secrets, seen)
    end
  end
end

--- error(err, secrets) -> err with every string field scrubbed, nested ones (cause, body) too.
-- A plain string error becomes a scrubbed string.
function M.error(err, secrets)
  if not secrets or #secrets == 0 then return err end
  if type(err) == "string" then return core.scrub(err, secrets) end
  if type(err) == "table" then scrub_fields(err, secrets, {}) end
  return err
end

--- guard(secrets, fn, ...) -> fn's results; an error fn raises is scrubbed before it goes on
function M.guard(secrets, fn, ...)
  if not secrets or #secrets == 0 then return fn(...) end
  local res = table.pack(pcall(fn, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  error(M.error(res[2], secrets), 0)
end

return M
