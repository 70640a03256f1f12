-- opsh.twin.k8s.auth: who may call the Kubernetes twin, and the kubeconfig that says how. A client
-- certificate from the twin CA (user = its CN, groups = its O), the twin's bearer token (DIR/api/k8s/token),
-- or an Entra ID token for the AKS server application when the ARM twin's identity module is present;
-- anything else is 401. The kubeconfig (DIR/api/k8s/kubeconfig, 0600) has both clusters, a client-certificate
-- user and a token user.
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local platform = require("opsh.twin.platform")
local yaml = require("opsh.yaml")

local M = {}

M.AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"

local PRIVATE_DIR, PRIVATE_FILE = tonumber("700", 8), tonumber("600", 8)

function M.kubeconfig_path(dir) return dir .. "/api/k8s/kubeconfig" end

local tokens = {}

--- user(tw, req) -> the user name, or nil (401)
function M.user(tw, req)
  local cert = req.client_cert
  if cert then return cert.cn or cert.subject end
  local h = req.headers.authorization
  if not h then return nil end
  local tok = h:match("^[Bb]earer%s+(.+)$")
  if not tok then return nil end
  for _, t in ipairs(tokens) do
    if #t == #tok and crypto.constant_time_equal(t, tok) then return "twin-token" end
  end
  local ok, identity = pcall(require, "opsh.twin.identity")
  if ok and type(identity) == "table" and identity.verify then
    local vok, claims = pcall(identity.verify, tw, h, M.AKS_SERVER_APP)
    if vok and type(claims) == "table" then return claims.oid or claims.sub or "aad-user" end
  end
  return nil
end

local function b64(s) return crypto.base64_encode(s) end

--- prepare(tw, url, clusters): the token, a client certificate and the kubeconfig
function M.prepare(tw, url, clusters)
  local dir = tw.dir .. "/api/k8s"
  fs.mkdir(dir, {parents = true, mode = PRIVATE_DIR})
  local token_file = dir .. "/token"
  local token = fs.read(token_file, {missing_ok = true})
  if not token or token == "" then
    fs.write_atomic(token_file, crypto.random_password(32, {url = true}), {mode = PRIVATE_FILE})
    token = fs.read(token_file)
  end
  token = token:gsub("%s+$", "")
  tokens = {token}
  local ca_pem = fs.read(tw.ca.ca)
  local ca_key = fs.read(tw.dir .. "/ca/ca.key")
  local admin = crypto.x509.create_cert({ca_cert = ca_pem, ca_key = ca_key, cn = "twin-admin", client = true, days = 365})
  fs.write_atomic(dir .. "/admin.key", admin.key_pem, {mode = PRIVATE_FILE})
  fs.write_atomic(dir .. "/admin.pem", admin.cert_pem, {mode = PRIVATE_FILE})
  local cfg = {apiVersion = "v1", kind = "Config", preferences = {}, clusters = {}, contexts = {}, users = {
    {name = "twin-admin", user = {["client-certificate"] = dir .. "/admin.pem", ["client-key"] = dir .. "/admin.key"}},
    {name = "twin-token", user = {token = token}}}}
  for _, name in ipairs(clusters) do
    local region = platform.region(name)
    local cname = region.aks.cluster
    local server = name == "production" and url or (url .. "/clusters/" .. name)
    cfg.clusters[#cfg.clusters + 1] = {name = cname, cluster = {server = server, ["certificate-authority-data"] = b64(ca_pem)}}
    cfg.contexts[#cfg.contexts + 1] = {name = cname, context = {cluster = cname, user = "twin-admin", namespace = platform.namespace}}
    cfg.contexts[#cfg.contexts + 1] = {name = cname .. "-token", context = {cluster = cname, user = "twin-token", namespace = platform.namespace}}
  end
  cfg["current-context"] = platform.region("production").aks.cluster
  fs.write_atomic(M.kubeconfig_path(tw.dir), yaml.encode(cfg), {mode = PRIVATE_FILE})
end

return M
