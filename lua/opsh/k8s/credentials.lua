-- opsh.k8s.credentials (internal): a resolved kubeconfig context -> the TLS material and auth
-- provider of its http client, as client-go applies them: CA (file or data), insecure-skip-tls-verify
-- (warned), client certificate and key (kept in memory, the key as an opsh.secret), bearer token,
-- tokenFile (re-read when it changes and after a 401), exec plugins (v1, v1beta1; ExecCredential
-- cached until its expirationTimestamp, run again after a 401).
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local crypto = require("opsh.crypto")
local log = require("opsh.log")
local H = require("opsh._http")

local M = {}

-- seconds between two looks at a tokenFile's modification time (0: every request)
M.token_file_interval = 5

local function fail(message, fields) error(core.error("config", message, fields), 0) end

local function present(v) return v ~= nil and v ~= json.null and v ~= "" end

local function b64(v, what)
  local ok, out = pcall(crypto.base64_decode, v)
  if not ok then fail(what .. " is not valid base64") end
  return out
end

local warned = {}

--- tls(cluster) -> {ca=, insecure=} for the http client
function M.tls(cluster, server)
  local t = {}
  if present(cluster["certificate-authority-data"]) then
    t.ca = b64(cluster["certificate-authority-data"], "certificate-authority-data")
  elseif present(cluster["certificate-authority"]) then
    local pem = fs.read(cluster["certificate-authority"], {missing_ok = true})
    if not pem then fail("certificate-authority " .. cluster["certificate-authority"] .. " cannot be read") end
    t.ca = pem
  end
  if cluster["insecure-skip-tls-verify"] == true then
    t.insecure, t.ca = true, nil
    if not warned[server] then
      warned[server] = true
      log.warn("opsh.k8s: insecure-skip-tls-verify for " .. server
        .. ": the server's certificate is not checked; anyone on the path can read and change the traffic")
    end
  end
  if present(cluster["proxy-url"]) then t.proxy = cluster["proxy-url"] end
  return t
end

-- the file's text, trimmed, as a secret; nil + reason when it cannot be had
local function read_token(path)
  local text = fs.read(path, {missing_ok = true})
  if text == nil then return nil, "cannot be read" end
  text = text:gsub("^%s+", ""):gsub("%s+$", "")
  if text == "" then return nil, "is empty" end
  return core.secret(text)
end

--- token_file(path) -> an auth provider: "Bearer <contents>", re-read when the file's mtime or size
-- changes (looked at every token_file_interval seconds) and after a 401; the last good token is
-- kept when a re-read fails
function M.token_file(path)
  local value, stamp, checked
  local function load(force)
    local st = fs.stat(path)
    local now = os.time()
    local new_stamp = st and (tostring(st.mtime) .. ":" .. tostring(st.size)) or nil
    checked = now
    if not force and value and new_stamp == stamp then return end
    local tok, why = read_token(path)
    if not tok then
      if value then
        log.warn("opsh.k8s: tokenFile " .. path .. " " .. why .. "; keeping the token read before")
        return
      end
      fail("tokenFile " .. path .. " " .. why, {path = path})
    end
    value, stamp = H.concat_secret("Bearer ", tok), new_stamp
  end
  return function(ctx)
    if ctx.refresh then load(true)
    elseif not value or os.time() - checked >= M.token_file_interval then load(false) end
    return value
  end
end

-- ---- exec plugins ----

local VERSIONS = {["client.authentication.k8s.io/v1"] = true, ["client.authentication.k8s.io/v1beta1"] = true}

local function exec_info(exec, cluster, interactive)
  local spec = {interactive = interactive}
  if exec.provideClusterInfo == true then
    local c = {server = cluster.server}
    for _, k in ipairs({"tls-server-name", "insecure-skip-tls-verify", "proxy-url", "disable-compression"}) do
      if present(cluster[k]) then c[k] = cluster[k] end
    end
    if present(cluster["certificate-authority-data"]) then
      c["certificate-authority-data"] = cluster["certificate-authority-data"]
    elseif present(cluster["certificate-authority"]) then
      local pem = fs.read(cluster["certificate-authority"], {missing_ok = true})
      if pem then c["certificate-authority-data"] = crypto.base64_encode(pem) end
    end
    for _, ext in ipairs(type(cluster.extensions) == "table" and cluster.extensions or {}) do
      if type(ext) == "table" and ext.name == "client.authentication.k8s.io/exec" then c.config = ext.extension end
    end
    spec.cluster = c
  end
  return json.encode({kind = "ExecCredential", apiVersion = exec.apiVersion, spec = spec})
end

--- exec_plugin(exec, cluster, user_name) -> provider object {get = function(refresh) -> creds}
-- creds = {token = secret|nil, cert = pem|nil, key = secret|nil, expires = epoch|nil, gen = n}
function M.exec_plugin(exec, cluster, user_name)
  if type(exec.command) ~= "string" or exec.command == "" then fail("user " .. user_name .. ": exec has no command") end
  if not VERSIONS[exec.apiVersion] then
    fail(string.format("user %s: exec apiVersion %s is not supported (client.authentication.k8s.io/v1 or v1beta1)",
      user_name, tostring(exec.apiVersion)))
  end
  local mode = exec.interactiveMode
  if not present(mode) then
    if exec.apiVersion == "client.authentication.k8s.io/v1" then
      fail("interactiveMode must be specified for " .. user_name .. " to use exec authentication plugin")
    end
    mode = "IfAvailable"
  end
  if mode ~= "Never" and mode ~= "IfAvailable" and mode ~= "Always" then
    fail("user " .. user_name .. ": unknown interactiveMode " .. tostring(mode))
  end
  local runtime = require("opsh.runtime")
  local opsh = require("opsh")
  local lock = opsh.mutex()
  local P = {runs = 0, gen = 0}

  local function run()
    local tty = runtime.isatty(0)
    if mode == "Always" and not tty then
      fail("user " .. user_name .. ": the exec plugin needs a terminal (interactiveMode Always) and stdin is not one")
    end
    local interactive = mode ~= "Never" and tty
    local argv = {exec.command}
    for _, a in ipairs(type(exec.args) == "table" and exec.args or {}) do argv[#argv + 1] = tostring(a) end
    local env_add = {KUBERNETES_EXEC_INFO = exec_info(exec, cluster, interactive)}
    for _, e in ipairs(type(exec.env) == "table" and exec.env or {}) do
      if type(e) == "table" and type(e.name) == "string" then env_add[e.name] = tostring(e.value or "") end
    end
    P.runs = P.runs + 1
    local proc = require("opsh.proc")
    local ok, r = pcall(proc.run, {argv = argv, env_add = env_add, stdin_inherit = interactive or nil,
      stderr = "inherit", check = false, read = true, timeout = 300, max_output = 1024 * 1024})
    if not ok then
      local hint = present(exec.installHint) and ("\n" .. exec.installHint) or ""
      fail(string.format("exec plugin %s for user %s cannot run: %s%s", exec.command, user_name,
        core.is_error(r) and r.message or tostring(r), hint))
    end
    if r.code ~= 0 then
      fail(string.format("exec plugin %s for user %s failed (exit %s)", exec.command, user_name,
        tostring(r.code or ("signal " .. tostring(r.signal)))))
    end
    local dok, out = pcall(json.decode, r.stdout or "")
    r.stdout = nil
    if not dok or type(out) ~= "table" then
      fail(string.format("exec plugin %s for user %s wrote no ExecCredential JSON", exec.command, user_name))
    end
    if out.apiVersion ~= exec.apiVersion then
      fail(string.format("exec plugin is configured to use API version %s, plugin returned version %s",
        exec.apiVersion, tostring(out.apiVersion)))
    end
    local st = out.status
    if type(st) ~= "table" then fail("exec plugin " .. exec.command .. " returned no status") end
    local creds = {}
    if present(st.token) then creds.token = core.secret(st.token) end
    local has_cert, has_key = present(st.clientCertificateData), present(st.clientKeyData)
    if has_cert ~= has_key then
      fail("exec plugin " .. exec.command .. " returned only one of clientCertificateData and clientKeyData")
    end
    if has_cert then creds.cert, creds.key = st.clientCertificateData, core.secret(st.clientKeyData) end
    st.token, st.clientKeyData = nil, nil
    if not creds.token and not creds.cert then
      fail("exec plugin " .. exec.command .. " didn't return a token or cert/key pair")
    end
    if present(st.expirationTimestamp) then
      local tok, t = pcall(require("opsh.time").parse, st.expirationTimestamp)
      if tok then creds.expires = t end
    end
    P.gen = P.gen + 1
    creds.gen = P.gen
    return creds
  end

  --- get(refresh [, seen_gen]) -> creds: the cached ones unless expired or refresh; a refresh by a
  -- request that saw generation seen_gen reuses a newer one another request already fetched
  function P.get(refresh, seen_gen)
    return lock:with(function()
      local c = P.creds
      if c and refresh and seen_gen and c.gen > seen_gen then return c end
      if c and not refresh and (not c.expires or os.time() < c.expires) then return c end
      P.creds = run()
      return P.creds
    end)
  end
  return P
end

--- for_user(resolved) -> {ca, insecure, proxy, cert, key, auth (provider or nil), exec (plugin or nil)}
function M.for_user(r)
  local user, cluster = r.user, r.cluster
  local t = M.tls(cluster, r.server)
  local https = r.server:find("^[hH][tT][tT][pP][sS]://") ~= nil
  if not https then return t end      -- client-go sends no credentials over plain http
  if present(user["client-certificate-data"]) then
    t.cert = b64(user["client-certificate-data"], "client-certificate-data")
  elseif present(user["client-certificate"]) then
    t.cert = fs.read(user["client-certificate"], {missing_ok = true})
    if not t.cert then fail("client-certificate " .. user["client-certificate"] .. " cannot be read") end
  end
  if present(user["client-key-data"]) then
    t.key = b64(core.secret(user["client-key-data"]), "client-key-data")
    user["client-key-data"] = "<in memory>"
  elseif present(user["client-key"]) then
    local key = fs.read(user["client-key"], {missing_ok = true})
    if not key then fail("client-key " .. user["client-key"] .. " cannot be read") end
    t.key = core.secret(key)
  end
  if (t.cert == nil) ~= (t.key == nil) then fail("user " .. tostring(r.user_name) .. ": a client certificate needs its key") end
  local has_basic = present(user.username) or present(user.password)
  if present(user.token) then
    if has_basic then fail("username/password or bearer token may be set, but not both") end
    local tok = core.secret(user.token)
    user.token = "<in memory>"
    if present(user.tokenFile) then
      local file_auth = M.token_file(user.tokenFile)
      local first = H.concat_secret("Bearer ", tok)
      local refreshed = false
      t.auth = function(ctx)
        if ctx.refresh then refreshed = true end
        if refreshed then return file_auth(ctx) end
        return first
      end
    else
      local value = H.concat_secret("Bearer ", tok)
      t.auth = function() return value end
    end
  elseif present(user.tokenFile) then
    if has_basic then fail("username/password or bearer token may be set, but not both") end
    t.auth = M.token_file(user.tokenFile)
  elseif has_basic then
    local pair = H.concat_secret(tostring(user.username or "") .. ":", core.secret(tostring(user.password or "")))
    local value = H.concat_secret("Basic ", crypto.base64_encode(pair))
    user.password = "<in memory>"
    t.auth = function() return value end
  elseif type(user.exec) == "table" and not t.cert then
    local plugin = M.exec_plugin(user.exec, cluster, r.user_name or "?")
    t.exec = plugin
    local gens = setmetatable({}, {__mode = "k"})
    t.auth = function(ctx)
      local c = plugin.get(ctx.refresh, ctx.refresh and gens.last or nil)
      gens.last = c.gen
      if c.token then return H.concat_secret("Bearer ", c.token) end
      return nil
    end
  elseif type(user["auth-provider"]) == "table" then
    fail(string.format("user %s uses auth-provider %s, removed from kubectl: convert it to an exec plugin "
      .. "(kubelogin convert-kubeconfig)", tostring(r.user_name), tostring(user["auth-provider"].name)))
  end
  -- impersonation
  local imp = {}
  if present(user.as) then imp["Impersonate-User"] = user.as end
  if present(user["as-uid"]) then imp["Impersonate-Uid"] = user["as-uid"] end
  if type(user["as-groups"]) == "table" and #user["as-groups"] > 0 then
    imp["Impersonate-Group"] = table.concat(user["as-groups"], ",")
  end
  if next(imp) then t.headers = imp end
  return t
end

--- in_cluster{dir=, host=, port=} -> a resolved-like context for the service account, or nil when
-- not running in a pod (KUBERNETES_SERVICE_HOST/PORT unset or no token file)
function M.in_cluster(opts)
  opts = opts or {}
  local dir = opts.dir or "/var/run/secrets/kubernetes.io/serviceaccount"
  local host = opts.host or os.getenv("KUBERNETES_SERVICE_HOST")
  local port = opts.port or os.getenv("KUBERNETES_SERVICE_PORT")
  if not present(host) or not present(port) then return nil end
  local st = fs.stat(dir .. "/token")
  if not st or st.type ~= "file" then return nil end
  if tostring(host):find(":", 1, true) then host = "[" .. host .. "]" end
  local server = "https://" .. host .. ":" .. tostring(port)
  local ns = os.getenv("POD_NAMESPACE")
  if not present(ns) then
    ns = (fs.read(dir .. "/namespace", {missing_ok = true}) or ""):gsub("%s+", "")
    if ns == "" then ns = "default" end
  end
  local t = {auth = M.token_file(dir .. "/token")}
  local ca = fs.read(dir .. "/ca.crt", {missing_ok = true})
  if ca and ca:find("-----BEGIN CERTIFICATE-----", 1, true) then t.ca = ca end
  return {context = "in-cluster", server = server, namespace = ns}, t
end

return M
