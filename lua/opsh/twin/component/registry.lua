-- twin component "registry": a real OCI registry (Debian's docker-registry, distribution 2.8) over
-- HTTPS with deletes enabled, standing for Azure Container Registry.
local fs = require("opsh.fs")
local net = require("opsh.net")
local proc = require("opsh.proc")

local M = {name = "registry", program = "docker-registry", phase = 3}

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
    stdout_file = dir .. "/registry.log", stderr = "stdout", env = require("opsh.twin.childenv").clean()})
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

-- Push one image (a config and one layer) through the OCI distribution API, as `docker push` does.
local function push_image(base, ca, repo, tag, created)
  local crypto = require("opsh.crypto")
  local http = require("opsh.http")
  local json = require("opsh.json")
  local function upload(blob)
    local digest = "sha256:" .. crypto.sha256_hex(blob)
    local head = http.head(base .. "/v2/" .. repo .. "/blobs/" .. digest, {ca = ca, raise_for_status = false})
    if head.status ~= 200 then
      local start = http.post(base .. "/v2/" .. repo .. "/blobs/uploads/", {ca = ca})
      local location = start.headers["location"]
      if location:sub(1, 1) == "/" then location = base .. location end
      http.put(location .. (location:find("?", 1, true) and "&" or "?") .. "digest=" .. digest,
        {ca = ca, body = blob, headers = {["Content-Type"] = "application/octet-stream"}})
    end
    return {digest = digest, size = #blob}
  end
  local layer = upload(string.format("layer of %s:%s built %s\n", repo, tag, created))
  local config = upload(json.encode({architecture = "amd64", os = "linux", created = created,
    config = {Labels = {["org.opencontainers.image.version"] = tag}},
    rootfs = {type = "layers", diff_ids = json.array({layer.digest})}}))
  local manifest = json.encode({schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
    config = {mediaType = "application/vnd.oci.image.config.v1+json", digest = config.digest, size = config.size},
    layers = json.array({{mediaType = "application/vnd.oci.image.layer.v1.tar+gzip", digest = layer.digest,
      size = layer.size}})})
  http.put(base .. "/v2/" .. repo .. "/manifests/" .. tag, {ca = ca, body = manifest,
    headers = {["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"}})
end

--- seed: every repository of opsh.twin.seed with its tags, one a week back in time (oldest first).
function M.seed(tw, rec)
  local seed = require("opsh.twin.seed")
  local base = "https://" .. rec.login_server
  local now = os.time()
  local jobs = {}
  for _, repo in ipairs(seed.repositories) do
    for i = 1, seed.tags_per_repository do
      local age_days = (seed.tags_per_repository - i) * 7
      jobs[#jobs + 1] = {repo = repo, tag = string.format("1.%d.0", i),
        created = os.date("!%Y-%m-%dT%H:%M:%SZ", now - age_days * 86400)}
    end
  end
  require("opsh").parallel(jobs, function(job)
    push_image(base, tw.ca.ca, job.repo, job.tag, job.created)
  end, {limit = 8})
end

function M.environment(tw, rec, env)
  env.acr = {name = "acrlegaltwin", login_server = rec.login_server}
end

return M
