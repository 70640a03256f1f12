-- opsh.k8s.kubeconfig (internal): kubeconfig files read and merged as kubectl reads them
-- (client-go's loading rules), and a context resolved into {server, ca, tls, user} settings.
local core = require("opsh._core")
local fs = require("opsh.fs")
local yaml = require("opsh.yaml")
local json = require("opsh.json")

local M = {}

local function fail(message, fields) error(core.error("config", message, fields), 0) end

-- the named entries of a section as {name -> value}; the order of first appearance kept
local function named(list, key, where)
  local out = {}
  if list == nil or list == json.null then return out end
  if type(list) ~= "table" then fail(string.format("%s: '%s' must be a list", where, key)) end
  for i, item in ipairs(list) do
    if type(item) ~= "table" or type(item.name) ~= "string" then
      fail(string.format("%s: %s[%d] has no name", where, key, i))
    end
    out[item.name] = item
  end
  return out
end

-- a relative path in a file is relative to that file's directory (client-go's ResolvePaths)
local function resolve(dir, path)
  if type(path) ~= "string" or path == "" or path:sub(1, 1) == "/" or not dir then return path end
  return dir .. "/" .. path
end

local PATH_FIELDS = {
  cluster = {"certificate-authority"},
  user = {"client-certificate", "client-key", "tokenFile"},
}

-- the document of one file (or string) -> {clusters=, users=, contexts=, current=}
local function parse(text, where, dir)
  local ok, doc = pcall(yaml.decode, text)
  if not ok then fail(string.format("%s: not a kubeconfig: %s", where, core.is_error(doc) and doc.message or doc)) end
  if doc == nil or doc == json.null then doc = {} end
  if type(doc) ~= "table" then fail(where .. ": not a kubeconfig (a mapping expected)") end
  local cfg = {
    clusters = named(doc.clusters, "clusters", where),
    users = named(doc.users, "users", where),
    contexts = named(doc.contexts, "contexts", where),
    current = doc["current-context"] ~= json.null and doc["current-context"] or nil,
    order = {},
  }
  for section, fields in pairs(PATH_FIELDS) do
    for _, item in pairs(cfg[section .. "s"]) do
      local body = item[section]
      if type(body) == "table" then
        for _, f in ipairs(fields) do body[f] = resolve(dir, body[f]) end
        if section == "user" and type(body.exec) == "table" and type(body.exec.command) == "string"
          and body.exec.command:find("/", 1, true) then
          body.exec.command = resolve(dir, body.exec.command)
        end
      end
    end
  end
  for _, item in ipairs(type(doc.contexts) == "table" and doc.contexts or {}) do
    cfg.order[#cfg.order + 1] = item.name
  end
  return cfg
end
M.parse = parse

--- merge(list of parsed configs) -> one: the first file that names a cluster, user or context wins
-- it whole; the first current-context set wins
function M.merge(list)
  local out = {clusters = {}, users = {}, contexts = {}, order = {}}
  for _, cfg in ipairs(list) do
    for _, section in ipairs({"clusters", "users", "contexts"}) do
      for name, v in pairs(cfg[section]) do
        if out[section][name] == nil then out[section][name] = v end
      end
    end
    for _, name in ipairs(cfg.order) do
      if not out.seen_order then out.seen_order = {} end
      if not out.seen_order[name] then out.seen_order[name] = true; out.order[#out.order + 1] = name end
    end
    if out.current == nil and cfg.current ~= nil and cfg.current ~= "" then out.current = cfg.current end
  end
  out.seen_order = nil
  return out
end

--- paths([explicit]) -> the files to read, and whether they came from KUBECONFIG
function M.paths(explicit)
  if explicit then return {explicit}, "explicit" end
  local env = os.getenv("KUBECONFIG")
  if env and env ~= "" then
    local list, seen = {}, {}
    for p in env:gmatch("[^:]+") do
      if not seen[p] then seen[p] = true; list[#list + 1] = p end
    end
    return list, "KUBECONFIG"
  end
  local home = os.getenv("HOME")
  return {(home or "") .. "/.kube/config"}, "default"
end

--- load([explicit path]) -> the merged config, the list of files read. An explicit file must exist;
-- missing files of KUBECONFIG are skipped (kubectl's rules).
function M.load(explicit)
  local paths, origin = M.paths(explicit)
  local parsed, read = {}, {}
  for _, p in ipairs(paths) do
    local text = fs.read(p, {missing_ok = true})
    if text == nil then
      if origin == "explicit" then fail(string.format("kubeconfig %s does not exist", p), {path = p}) end
    else
      parsed[#parsed + 1] = parse(text, p, fs.dirname(fs.absolute(p)))
      read[#read + 1] = p
    end
  end
  return M.merge(parsed), read
end

--- from_string(yaml) -> a config (relative paths stay as they are)
function M.from_string(text)
  if type(text) ~= "string" then
    error(core.error("usage", "bad argument #1 to 'from_kubeconfig' (kubeconfig YAML string expected)"), 0)
  end
  return parse(text, "kubeconfig", nil)
end

local function names(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

--- resolve(cfg, {context=, namespace=}) -> {context=, cluster=<cluster body>, user=<user body>,
-- user_name=, namespace=, server=}; raises {kind="config"} when something named is missing
function M.resolve(cfg, opts)
  opts = opts or {}
  local ctx_name = opts.context or cfg.current
  if ctx_name == nil or ctx_name == "" then
    if next(cfg.contexts) == nil then fail("no kubeconfig: no context is defined (KUBECONFIG, ~/.kube/config)") end
    fail("no current-context in the kubeconfig: give a context (known: " .. names(cfg.contexts) .. ")")
  end
  local entry = cfg.contexts[ctx_name]
  if not entry then
    fail(string.format("context '%s' is not in the kubeconfig (known: %s)", ctx_name, names(cfg.contexts)),
      {context = ctx_name})
  end
  local c = type(entry.context) == "table" and entry.context or {}
  local cl = cfg.clusters[c.cluster or ""]
  if not cl or type(cl.cluster) ~= "table" then
    fail(string.format("context '%s' names cluster '%s', which is not in the kubeconfig", ctx_name,
      tostring(c.cluster)), {context = ctx_name})
  end
  local cluster = cl.cluster
  if type(cluster.server) ~= "string" or cluster.server == "" then
    fail(string.format("cluster '%s' has no server", c.cluster), {context = ctx_name})
  end
  local user = {}
  if c.user and c.user ~= "" then
    local u = cfg.users[c.user]
    if not u then
      fail(string.format("context '%s' names user '%s', which is not in the kubeconfig", ctx_name, c.user),
        {context = ctx_name})
    end
    user = type(u.user) == "table" and u.user or {}
  end
  local ns = opts.namespace or c.namespace
  if ns == nil or ns == "" or ns == json.null then ns = "default" end
  return {context = ctx_name, cluster_name = c.cluster, cluster = cluster, user_name = c.user, user = user,
    namespace = ns, server = cluster.server:gsub("/+$", "")}
end

--- contexts(cfg) -> the context names in file order
function M.contexts(cfg)
  return cfg.order
end

return M
