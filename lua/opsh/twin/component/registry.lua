-- twin component "registry": a real OCI registry (Debian's docker-registry, distribution 2.8) over
-- HTTPS with deletes enabled, standing for Azure Container Registry.
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")

local M = {name = "registry", program = "docker-registry"}

function M.start(tw)
  local dir = tw.dir .. "/registry"
  fs.mkdir(dir .. "/data", {parents = true, mode = tonumber("700", 8)})
  local port = net.free_port()
  fs.write(dir .. "/config.yml", table.concat({
    "# written by opsh twin",
    "version: 0.1",
    "log:",
    "  level: info",
    "storage:",
    "  filesystem:",
    "    rootdirectory: " .. dir .. "/data",
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    "  addr: 127.0.0.1:" .. port,
    "  tls:",
    "    certificate: " .. tw.ca.cert,
    "    key: " .. tw.ca.key,
  }, "\n") .. "\n")
  local p = proc.spawn({argv = {"docker-registry", "serve", dir .. "/config.yml"}, detach = true,
    stdout_file = dir .. "/registry.log", stderr = "stdout"})
  local pid = p:pid()
  tw.track(M.name, pid, M.program)
  require("opsh.twin").wait_ready(p, port, dir .. "/registry.log")
  return {pid = pid, program = M.program, host = "127.0.0.1", port = port, dir = dir,
    log = dir .. "/registry.log", login_server = "127.0.0.1:" .. port}
end

function M.check(tw, rec)
  local ok, why = net.port_open("127.0.0.1", rec.port)
  return ok, ok and ("https://" .. rec.login_server) or why
end

function M.environment(tw, rec, env)
  env.acr = {name = "acrlegaltwin", login_server = rec.login_server}
end

return M
