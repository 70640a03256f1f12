-- opsh.steps: a procedure as named steps. Each step is timed, logged, shown as progress on a
-- terminal, and counted: the mutations its primitives sent (opsh.audit) or planned (opsh.dryrun)
-- are its changes, so a second run of an idempotent procedure reports "no change" without the
-- script saying so. When the run fails, the undo actions of the completed steps run in reverse
-- order and the report says what was undone and what could not be.
local core = require("opsh._core")
local audit = require("opsh.audit")

local M = {}

local function usage(message) error(core.error("usage", message), 3) end
local function script_error(message) error(core.error("script", message), 0) end

local Run = {}
Run.__index = Run

--- new(ctx) -> a run of steps for this procedure context (the CLI makes one per run: ctx.step)
function M.new(ctx)
  return setmetatable({ctx = ctx or {}, list = {}, undone = false, started = core.hrtime()}, Run)
end

local function elapsed(since) return core.hrtime() - since end

local function confirm_step(self, name)
  local ctx = self.ctx
  if ctx.dry_run or ctx.yes then return end
  if not (ctx.flags and ctx.flags.destructive) then
    script_error(string.format("step '%s' is destructive: declare flags = {\"destructive\"} so the run asks "
      .. "(or refuses without a terminal) before any change", name))
  end
  if ctx.confirm then ctx.confirm(string.format("step '%s' is destructive; go on?", name)) end
end

--- run:step(name, fn [, {undo = fn(results...), destructive = bool, target = string}]) -> fn's results
-- fn runs in the calling task; its failure fails the run (the caller's error handling decides)
-- after the row is recorded. `undo` gets fn's results and is kept for rollback.
function Run:step(name, fn, opts)
  if type(name) ~= "string" or name == "" then usage("ctx.step needs a name") end
  if type(fn) ~= "function" then usage(string.format("ctx.step('%s', fn): fn must be a function", name)) end
  opts = opts or {}
  if type(opts) ~= "table" then usage(string.format("ctx.step('%s'): options must be a table", name)) end
  for k in pairs(opts) do
    if k ~= "undo" and k ~= "destructive" and k ~= "target" then
      usage(string.format("ctx.step('%s'): unknown option '%s' (undo, destructive, target)", name, tostring(k)))
    end
  end
  if opts.undo ~= nil and type(opts.undo) ~= "function" then
    usage(string.format("ctx.step('%s'): undo must be a function", name))
  end
  if opts.destructive then confirm_step(self, name) end
  local row = {step = name, target = opts.target, status = "running", changes = 0, undo = opts.undo}
  self.list[#self.list + 1] = row
  local log = self.ctx.log
  if log then log.debug(string.format("step '%s' started", name), {target = opts.target}) end
  local progress = self.ctx.progress and not self.ctx.quiet and self.ctx.progress(name) or nil
  local before = audit.changes()
  local t0 = core.hrtime()
  local res = table.pack(pcall(audit.in_step, name, fn))
  row.seconds = elapsed(t0)
  row.changes = audit.changes() - before
  if progress then pcall(progress.done, progress) end
  if not res[1] then
    row.status, row.detail = "failed", core.describe(res[2])
    if log then log.error(string.format("step '%s' failed after %.2f s", name, row.seconds), {error = row.detail}) end
    error(res[2], 0)
  end
  row.status = row.changes > 0 and "done" or "no change"
  row.results = table.pack(table.unpack(res, 2, res.n))
  if log then
    log.debug(string.format("step '%s' %s in %.2f s", name, row.status, row.seconds), {changes = row.changes})
  end
  return table.unpack(res, 2, res.n)
end

--- run:rollback(err) -> rows undone, rows that could not be: the completed steps' undo actions, in
-- reverse order. Steps without undo that changed something are reported as not undone.
function Run:rollback()
  if self.undone then return end
  self.undone = true
  local log = self.ctx.log
  for i = #self.list, 1, -1 do
    local row = self.list[i]
    if row.status == "done" or row.status == "no change" then
      if row.undo then
        local t0 = core.hrtime()
        local ok, err = pcall(audit.in_step, "undo: " .. row.step, row.undo,
          table.unpack(row.results, 1, row.results.n))
        row.undo_seconds = elapsed(t0)
        if ok then
          row.status = "undone"
          if log then log.info(string.format("step '%s' undone", row.step)) end
        else
          row.status, row.detail = "undo failed", core.describe(err)
          if log then log.error(string.format("undo of step '%s' failed", row.step), {error = row.detail}) end
        end
      elseif row.status == "done" then
        row.status, row.detail = "not undone", "no undo action"
      end
    end
  end
end

--- run:rows() -> the report: {step, status, changes, seconds, target, detail} in order
function Run:rows()
  local rows = {}
  for i, r in ipairs(self.list) do
    rows[i] = {step = r.step, status = r.status, changes = r.changes,
      seconds = r.seconds and math.floor(r.seconds * 1000 + 0.5) / 1000 or nil, target = r.target, detail = r.detail}
  end
  return rows
end

--- run:summary() -> {steps = n, changes = n, seconds = total, failed = n, undone = n, not_undone = n}
function Run:summary()
  local s = {steps = #self.list, changes = 0, failed = 0, undone = 0, not_undone = 0,
    seconds = math.floor(elapsed(self.started) * 1000 + 0.5) / 1000}
  for _, r in ipairs(self.list) do
    s.changes = s.changes + r.changes
    if r.status == "failed" then s.failed = s.failed + 1 end
    if r.status == "undone" then s.undone = s.undone + 1 end
    if r.status == "not undone" or r.status == "undo failed" then s.not_undone = s.not_undone + 1 end
  end
  return s
end

M.columns = {"step", "status", "changes", "seconds", "target", "detail"}

return M
