-- opsh.twin.k8s.logs: each container's log is a deterministic function of the pod, the container and
-- time: one line every STEP seconds from the container's start until now (the last MAX lines), drawn
-- from a generator seeded by the names, with the error, timeout and slow-request lines the
-- troubleshooting procedures grep for. tailLines, sinceSeconds, sinceTime, timestamps, limitBytes,
-- previous (the run before the last restart) and follow (new lines as time passes) are honoured.
local core = require("opsh._core")
local time = require("opsh.time")
local status = require("opsh.twin.k8s.status")

local M = {}

M.STEP = 10
M.MAX = 1000

local function seed_of(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return h
end

local function rand(state)
  state = (state * 1103515245 + 12345) & 0x7fffffff
  return state
end

local PATHS = {"/api/documents", "/api/cases", "/api/clients", "/api/search", "/api/tasks", "/healthz",
  "/api/notifications", "/api/ai/summarize", "/api/integrations/sync"}
local METHODS = {"GET", "GET", "GET", "POST", "PUT"}

--- line(pod, container, i) -> the i-th line's text (without timestamp)
function M.line(pod, container, i)
  local s = rand(seed_of(pod .. "/" .. container) ~ (i * 2654435761 & 0x7fffffff))
  local kind = s % 100
  s = rand(s)
  local path = PATHS[s % #PATHS + 1]
  s = rand(s)
  local method = METHODS[s % #METHODS + 1]
  s = rand(s)
  local ms = 5 + s % 180
  if kind < 3 then
    return string.format('level=error msg="request failed" method=%s path=%s status=500 error="database query timeout after 30000ms"', method, path)
  elseif kind < 5 then
    return string.format('level=error msg="upstream error" method=%s path=%s status=502 error="connection refused"', method, path)
  elseif kind < 10 then
    return string.format('level=warn msg="slow request" method=%s path=%s status=200 duration_ms=%d', method, path, 2000 + s % 8000)
  elseif kind < 12 then
    return string.format('level=warn msg="timeout waiting for redis" op=GET key=session:%d duration_ms=%d', s % 100000, 1000 + s % 4000)
  end
  return string.format('level=info msg="request completed" method=%s path=%s status=200 duration_ms=%d', method, path, ms)
end

local function started(pod, cname, previous)
  for _, cs in ipairs(pod.status and pod.status.containerStatuses or {}) do
    if cs.name == cname then
      if previous then
        local t = cs.lastState and cs.lastState.terminated
        if not t then return nil, "previous terminated container \"" .. cname .. "\" in pod \"" .. pod.metadata.name .. "\" not found" end
        return time.parse(t.startedAt), time.parse(t.finishedAt), t.reason
      end
      local run = cs.state and cs.state.running
      if run and run.startedAt then return time.parse(run.startedAt) end
      local term = cs.state and cs.state.terminated
      if term then return time.parse(term.startedAt), time.parse(term.finishedAt), term.reason end
      return nil, "container \"" .. cname .. "\" in pod \"" .. pod.metadata.name .. "\" is waiting to start: ContainerCreating"
    end
  end
  return nil, "container \"" .. cname .. "\" in pod \"" .. pod.metadata.name .. "\" is waiting to start: ContainerCreating"
end

local function fmt_ts(t)
  return time.format(t, {utc = true, fraction = 9})
end

-- lines of the window [from, to] as {t, text}
local function lines(pod, cname, t0, t1, reason, since, tail)
  local name = pod.metadata.name
  local first = math.max(0, math.floor((t1 - t0) / M.STEP) - M.MAX + 1)
  local last = math.floor((t1 - t0) / M.STEP)
  if since then first = math.max(first, math.ceil((since - t0) / M.STEP)) end
  if tail then first = math.max(first, last - tail + 1) end
  local out = {}
  for i = first, last do
    local text = M.line(name, cname, i)
    if i == 0 then text = 'level=info msg="starting" container=' .. cname .. ' version=1.8.3' end
    out[#out + 1] = {t0 + i * M.STEP, text}
  end
  if reason == "OOMKilled" and #out > 0 then
    out[#out][2] = 'level=error msg="fatal error: runtime: out of memory" heap_mb=1021 limit_mb=1024'
  end
  return out
end

--- answer(rt, pod) -> the log response (text/plain), streamed with follow=true
function M.answer(rt, pod)
  local q = rt.req.query
  local containers = pod.spec.containers or {}
  local cname = q.container
  if not cname or cname == "" then
    if #containers ~= 1 then
      local names = {}
      for i, c in ipairs(containers) do names[i] = c.name end
      status.fail(400, string.format("a container name must be specified for pod %s, choose one of: [%s]",
        pod.metadata.name, table.concat(names, " ")))
    end
    cname = containers[1].name
  end
  local found = false
  for _, c in ipairs(containers) do if c.name == cname then found = true end end
  if not found then
    status.fail(400, string.format("container %s is not valid for pod %s", cname, pod.metadata.name))
  end
  local t0, t1, reason = started(pod, cname, q.previous == "true")
  if not t0 then status.fail(400, t1) end
  local now = time.now()
  local stop = t1 or now
  local since
  if q.sinceSeconds then since = now - (tonumber(q.sinceSeconds) or 0) end
  if q.sinceTime then since = time.parse(q.sinceTime) end
  local tail = math.tointeger(tonumber(q.tailLines or ""))
  if tail and tail < 0 then tail = nil end
  local ts = q.timestamps == "true"
  local limit = math.tointeger(tonumber(q.limitBytes or ""))
  local buf = {}
  local last_i
  for _, l in ipairs(lines(pod, cname, t0, stop, reason, since, tail)) do
    buf[#buf + 1] = (ts and (fmt_ts(l[1]) .. " ") or "") .. l[2] .. "\n"
    last_i = l[1]
  end
  local text = table.concat(buf)
  if limit and limit >= 0 and #text > limit then text = text:sub(1, limit) end
  if q.follow ~= "true" or t1 then
    return {status = 200, headers = {["Content-Type"] = "text/plain"}, body = text}
  end
  local res = rt.req:stream(200, {["Content-Type"] = "text/plain"})
  local ok = pcall(res.write, res, text)
  local next_t = (last_i or (t0 - M.STEP)) + M.STEP
  while ok and not res:closed() do
    core.sleep(math.max(0.05, math.min(1, next_t - time.now())))
    local n = time.now()
    while ok and next_t <= n do
      local i = math.floor((next_t - t0) / M.STEP + 0.5)
      ok = pcall(res.write, res, (ts and (fmt_ts(next_t) .. " ") or "") .. M.line(pod.metadata.name, cname, i) .. "\n")
      next_t = next_t + M.STEP
    end
  end
  pcall(res.close, res)
end

return M
