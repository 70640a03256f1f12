-- twin component "api": the one `opsh twin serve` process. It owns the twin's state (the store, in
-- DIR/store) and serves it, and the API twins, over HTTPS with the twin's certificate. It starts right
-- after the CA: every later component records itself through it.
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local runtime = require("opsh.runtime")
local core = require("opsh._core")

local M = {name = "api", program = "opsh", phase = 2, required = true}

function M.pidfile(dir) return dir .. "/api/serve.pid" end

function M.start(tw)
  local state = require("opsh.twin.state")
  local dir = tw.dir .. "/api"
  fs.mkdir(dir, {parents = true, mode = tonumber("700", 8)})
  fs.chmod(dir, tonumber("700", 8))
  for _, stale in ipairs({state.endpoint_path(tw.dir), M.pidfile(tw.dir)}) do
    if fs.exists(stale) then fs.remove(stale) end
  end
  fs.write(state.token_path(tw.dir), core.reveal(crypto.random_password(32, {url = true})) .. "\n",
    {mode = tonumber("600", 8)})
  local log = dir .. "/api.log"
  local p = require("opsh.proc").spawn({argv = {runtime.exe(), "twin", "serve", "--dir", tw.dir}, detach = true,
    stdout_file = log, stderr = "stdout",
    env = require("opsh.twin.childenv").for_opsh({OPSH_TWIN_DIR = tw.dir})})
  local pid = p:pid()
  tw.track(M.name, pid, M.program)
  local e
  require("opsh.twin").wait_until(p, log, "its endpoint", function()
    e = state.endpoint(tw.dir)
    return e and e.pid == pid and require("opsh.net").port_open("127.0.0.1", e.port)
  end)
  local names = {}
  for name in pairs(e.listeners or {}) do names[#names + 1] = name end
  table.sort(names)
  return {pid = pid, program = M.program, host = "127.0.0.1", port = e.port, dir = dir, log = log,
    url = e.url, apis = require("opsh.json").array(names), listeners = e.listeners or {}}
end

function M.check(tw, rec)
  local ok, res = pcall(require("opsh.http").get, rec.url .. "/healthz", {ca = tw.ca.ca, timeout = 5, retries = 0})
  if not ok then return false, tostring(res) end
  local apis = {}
  for _, name in ipairs(rec.apis or {}) do
    local url = rec.listeners[name]
    apis[#apis + 1] = url ~= rec.url and (name .. " " .. url) or name
  end
  return true, rec.url .. (#apis > 0 and (" (" .. table.concat(apis, ", ") .. ")") or "")
end

function M.environment(tw, rec, env)
  env.endpoints = env.endpoints or {}
  env.endpoints.ca = tw.ca.ca
  env.twin.api = rec.url
  for _, mod in ipairs(require("opsh.twin.serve").plugins()) do
    if mod.environment then mod.environment(tw, env, tw.endpoint(mod.name)) end
  end
end

function M.shell(tw, rec, out)
  for _, mod in ipairs(require("opsh.twin.serve").plugins()) do
    if mod.shell then mod.shell(tw, out, tw.endpoint(mod.name)) end
  end
end

return M
