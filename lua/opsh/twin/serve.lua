-- opsh.twin.serve: the twin's API process (`opsh twin serve`). It owns the store (opsh.twin.store),
-- serves it to other processes under /_twin/ with the owner's token, and mounts the API twins: on the
-- main listener, or each on a listener of its own (its own port, as each Azure service and each
-- cluster has its own endpoint). When everything listens it writes DIR/api/endpoint.json, which is
-- what `twin up` waits for.
local core = require("opsh._core")
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local json = require("opsh.json")
local server = require("opsh.server")
local state = require("opsh.twin.state")
local store_mod = require("opsh.twin.store")

local M = {}

local function fail(message) error(core.error("twin", message), 0) end

--- The API twin modules to mount: the bundled list plus OPSH_TWIN_APIS.
function M.plugins()
  local names = {}
  for _, n in ipairs(require("opsh.twin.apis")) do names[#names + 1] = n end
  for n in (os.getenv("OPSH_TWIN_APIS") or ""):gmatch("[^,%s]+") do names[#names + 1] = n end
  local mods, seen = {}, {}
  for i, n in ipairs(names) do
    local mod = require(n)
    if type(mod) ~= "table" or type(mod.name) ~= "string" or type(mod.mount) ~= "function" then
      fail(string.format("API twin module '%s' must return {name=, mount=function}", n))
    end
    if seen[mod.name] then fail(string.format("two API twin modules are named '%s'", mod.name)) end
    seen[mod.name] = true
    mods[i] = mod
  end
  return mods
end

-- ---- mounting: a route belongs to one API twin; a clash is an error at mount time ----

local RESERVED = {"/_twin", "/healthz", "/twin/v1"}

local function shape(pattern)
  return (pattern:gsub("{[%w_]+%.%.%.}", "{...}"):gsub("{[%w_]+}", "{}"))
end

-- srv as one API twin sees it: route() and handle() remember who took what on this listener
local function mount_view(srv, owner, taken)
  local view = {}
  function view.route(_, method, pattern, fn)
    if type(method) == "string" and type(pattern) == "string" then
      for _, r in ipairs(RESERVED) do
        if pattern == r or pattern:sub(1, #r + 1) == r .. "/" then
          fail(string.format("API twin '%s' cannot route %s: %s is the twin's own", owner, pattern, r))
        end
      end
    end
    local ok, err = pcall(srv.route, srv, method, pattern, fn)
    if not ok then
      local why = tostring(core.is_error(err) and err.message or err):gsub("^bad argument #%d to 'route' %((.*)%)$", "%1")
      local prev = taken[tostring(method):upper() .. " " .. shape(tostring(pattern))] or taken["path " .. shape(tostring(pattern))]
      if prev and prev ~= owner then
        fail(string.format("API twin '%s': %s %s clashes with API twin '%s' on the same listener (%s); give one of "
          .. "them its own listener (`listener = true`)", owner, tostring(method):upper(), pattern, prev, why))
      end
      fail(string.format("API twin '%s': %s", owner, why))
    end
    taken[method:upper() .. " " .. shape(pattern)] = owner
    taken["path " .. shape(pattern)] = taken["path " .. shape(pattern)] or owner
    return view
  end
  function view.handle(_, fn)
    if taken["*catch-all"] then
      fail(string.format("API twins '%s' and '%s' both want the catch-all handler of one listener: give one "
        .. "of them its own listener (`listener = true`)", taken["*catch-all"], owner))
    end
    taken["*catch-all"] = owner
    srv:handle(fn)
    return view
  end
  return setmetatable(view, {__index = function(_, k)
    local v = srv[k]
    if type(v) == "function" then return function(_, ...) return v(srv, ...) end end
    return v
  end})
end

-- ---- the store over HTTP ----

local function answer(code, reason, message, extra)
  local body = {error = message, reason = reason}
  for k, v in pairs(extra or {}) do body[k] = v end
  return {status = code, json = body}
end

local function err_answer(err)
  if core.is_error(err) and type(err.code) == "number" then
    return answer(err.code, err.reason or "Error", err.message,
      {collection = err.collection, key = err.key, current = err.current, oldest = err.oldest})
  end
  error(err, 0)
end

local function version_arg(req)
  local v = req.query.if_version
  if v == nil then return nil end
  return math.tointeger(tonumber(v)) or store_mod.fail(400, "BadRequest", "if_version must be a whole number")
end

-- the whole store (or one collection) as JSON text, built from the stored texts
local function dump(data, version, only)
  local parts = {string.format('{"version":%d,"collections":{', version)}
  local cs = {}
  for c in pairs(data) do if not only or c == only then cs[#cs + 1] = c end end
  table.sort(cs)
  for i, c in ipairs(cs) do
    parts[#parts + 1] = (i > 1 and "," or "") .. json.encode(c) .. ":{"
    local ks = {}
    for k in pairs(data[c]) do ks[#ks + 1] = k end
    table.sort(ks)
    for j, k in ipairs(ks) do
      local e = data[c][k]
      parts[#parts + 1] = string.format('%s%s:{"o":%s,"v":%d}', j > 1 and "," or "", json.encode(k), e.text, e.v)
    end
    parts[#parts + 1] = "}"
  end
  parts[#parts + 1] = "}}"
  return table.concat(parts)
end

local function watch(store, req, collection)
  local from = req.query.from
  if from ~= nil and from ~= "" then
    from = math.tointeger(tonumber(from))
    if not from then return answer(400, "BadRequest", "from must be a whole number (a version)") end
  else
    from = nil
  end
  local ok, sub = pcall(store.subscribe, store, collection, from)
  if not ok then return err_answer(sub) end
  local _ <close> = sub
  local deadline = tonumber(req.query.timeout) and core.hrtime() + tonumber(req.query.timeout)
  local res = req:stream(200, {["Content-Type"] = "application/json"})
  local function send(text)
    local wok, werr = pcall(res.write, res, text)
    if not wok and not core.is_error(werr, "closed") then error(werr, 0) end
    return wok
  end
  while not res:closed() do
    local wait = deadline and math.min(1, math.max(0, deadline - core.hrtime())) or 1
    local eok, ev = pcall(sub.next_raw, sub, wait)
    if not eok then
      if not (core.is_error(ev) and ev.code) then error(ev, 0) end
      send(json.encode({type = "ERROR", code = ev.code, reason = ev.reason, error = ev.message}) .. "\n")
      break
    end
    if ev then
      if not send(ev.line) then break end
    elseif deadline and core.hrtime() >= deadline then
      break
    end
  end
  res:close()
end

--- routes(srv, store, token): the store's HTTP API, for the owner's token only.
--   GET    /_twin/state[?watch=1&from=N&timeout=S]           the whole store | its events as JSON lines
--   GET    /_twin/state/<collection>[?watch=1&from=N]         {version, items} | that collection's events
--   GET    /_twin/state/<collection>/<key>                    {key, version, object} | 404
--   PUT    /_twin/state/<collection>/<key>[?if_version=N]     body: the object (JSON) -> {version}
--   PATCH  /_twin/state/<collection>/<key>[?if_version=N]     body: a JSON merge patch -> {version, object}
--   DELETE /_twin/state/<collection>/<key>[?if_version=N]     -> {version} (null: there was no such key)
--   POST   /_twin/txn                                         body {ops=[{op, collection, key, object, if_version}]}
-- Errors: {error, reason} with 400, 401, 404, 409 (a version precondition failed), 410 (history expired).
function M.routes(srv, store, token)
  local expected = "Bearer " .. token
  local function guarded(fn)
    return function(req)
      local auth = req.headers.authorization or ""
      if #auth ~= #expected or not crypto.constant_time_equal(auth, expected) then
        return answer(401, "Unauthorized", "the twin's state API needs the owner's token (DIR/api/token)")
      end
      local ok, a, b, c = pcall(fn, req)
      if ok then return a, b, c end
      return err_answer(a)
    end
  end
  local function body(req, field)
    local ok, v = pcall(req.json, req)
    if not ok or v == nil then store_mod.fail(400, "BadRequest", "the body must be JSON") end
    if field == nil then return v end
    if type(v) ~= "table" or v[field] == nil then
      store_mod.fail(400, "BadRequest", "the body must be a JSON object with '" .. field .. "'")
    end
    return v[field]
  end
  srv:route("GET", "/_twin/state", guarded(function(req)
    if req.query.watch == "1" or req.query.watch == "true" then return watch(store, req, nil) end
    local data, version = store:raw()
    return {status = 200, headers = {["Content-Type"] = "application/json"}, body = dump(data, version)}
  end))
  srv:route("GET", "/_twin/state/{collection}", guarded(function(req)
    local c = req.params.collection
    if req.query.watch == "1" or req.query.watch == "true" then return watch(store, req, c) end
    local items, version = store:list(c)
    return {status = 200, json = {version = version, items = setmetatable(items, json.array_mt)}}
  end))
  srv:route("GET", "/_twin/state/{collection}/{key...}", guarded(function(req)
    local c, k = req.params.collection, req.params.key
    local object, version = store:get(c, k)
    if object == nil then return answer(404, "NotFound", string.format("%s/%s not found", c, k)) end
    return {status = 200, json = {key = k, version = version, object = object}}
  end))
  srv:route("PUT", "/_twin/state/{collection}/{key...}", guarded(function(req)
    local version = store:put(req.params.collection, req.params.key, body(req),
      {if_version = version_arg(req)})
    return {status = 200, json = {version = version}}
  end))
  srv:route("PATCH", "/_twin/state/{collection}/{key...}", guarded(function(req)
    local version, object = store:patch(req.params.collection, req.params.key, body(req),
      {if_version = version_arg(req)})
    return {status = 200, json = {version = version, object = object}}
  end))
  srv:route("DELETE", "/_twin/state/{collection}/{key...}", guarded(function(req)
    local version = store:delete(req.params.collection, req.params.key, {if_version = version_arg(req)})
    return {status = 200, json = {version = version or json.null}}
  end))
  srv:route("POST", "/_twin/txn", guarded(function(req)
    local ops = body(req, "ops")
    if type(ops) ~= "table" then store_mod.fail(400, "BadRequest", "ops must be a list") end
    for _, op in ipairs(ops) do
      if op.if_version == json.null then op.if_version = nil end
    end
    local version = store:txn(ops)
    return {status = 200, json = {version = version or json.null}}
  end))
end

-- state redacted of credentials, for the unauthenticated /twin/v1/state view
local function redacted(v)
  if type(v) ~= "table" then return v end
  local copy = {}
  for k, x in pairs(v) do
    if type(k) == "string" and (k:find("password") or k:find("key") or k:find("secret") or k:find("token")) then
      copy[k] = "<redacted>"
    else
      copy[k] = redacted(x)
    end
  end
  return copy
end

--- handle(dir, store, endpoints) -> the `twin` object API twins get in the serving process
function M.handle(dir, store, endpoints)
  local backend = {
    snapshot = function()
      local data = store:raw()
      local snap = {}
      for c, keys in pairs(data) do
        snap[c] = {}
        for k, e in pairs(keys) do snap[c][k] = {o = json.decode(e.text), v = e.v} end
      end
      return snap
    end,
    collection = function(c)
      local keys = {}
      for k, e in pairs((store:raw())[c] or {}) do keys[k] = {o = json.decode(e.text), v = e.v} end
      return keys
    end,
    txn = function(ops) return store:txn(ops) end,
  }
  return {
    dir = dir, store = store,
    ca = {ca = dir .. "/ca/ca.pem", cert = dir .. "/ca/server.pem", key = dir .. "/ca/server.key"},
    read_state = function() return state.view(backend.snapshot()) end,
    update_state = function(fn) return state.update(backend, fn) end,
    endpoint = function(name) return endpoints[name] or endpoints[""] end,
  }
end

--- serve{dir=, port=0}: open the store, listen, mount, publish the endpoint, serve until terminated.
function M.serve(opts)
  local dir = opts.dir
  local ca = {ca = dir .. "/ca/ca.pem", cert = dir .. "/ca/server.pem", key = dir .. "/ca/server.key"}
  if not fs.exists(ca.cert) then fail("the twin's certificates are missing in " .. dir .. "/ca (run `opsh twin up`)") end
  local token = fs.read(state.token_path(dir), {missing_ok = true})
  if not token then fail("the twin's API token is missing: " .. state.token_path(dir)) end
  token = token:gsub("%s+$", "")
  local store = store_mod.open(state.store_path(dir),
    {history = math.tointeger(tonumber(os.getenv("OPSH_TWIN_STORE_HISTORY") or ""))})
  local tls = {cert = ca.cert, key = ca.key, client_ca = ca.ca, client_auth = "optional"}
  local main = server.listen({host = "127.0.0.1", port = opts.port or 0, tls = tls})
  local endpoints = {[""] = main.url}
  local tw = M.handle(dir, store, endpoints)
  main:route("GET", "/healthz", function() return {status = 200, body = "ok"} end)
  main:route("GET", "/twin/v1/state", function() return redacted(tw.read_state()) end)
  M.routes(main, store, token)
  local listeners, taken_main = {main}, {}
  for _, mod in ipairs(M.plugins()) do
    if mod.listener then
      local srv = server.listen({host = "127.0.0.1", port = 0, tls = tls})
      listeners[#listeners + 1] = srv
      endpoints[mod.name] = srv.url
      mod.mount(mount_view(srv, mod.name, {}), tw)
    else
      endpoints[mod.name] = main.url
      mod.mount(mount_view(main, mod.name, taken_main), tw)
    end
  end
  local named = {}
  for k, v in pairs(endpoints) do if k ~= "" then named[k] = v end end
  fs.write_atomic(dir .. "/api/serve.pid", tostring(require("opsh.twin.proctab").self_pid()) .. "\n")
  fs.write_atomic(state.endpoint_path(dir), json.encode({url = main.url, port = main.port,
    pid = require("opsh.twin.proctab").self_pid(), listeners = named}) .. "\n", {mode = tonumber("600", 8)})
  io.stdout:write(string.format("opsh twin API serving %s on %s (store at version %d)\n", dir, main.url,
    store:current()))
  io.stdout:flush()
  main:wait()
  for _, srv in ipairs(listeners) do srv:close() end
  store:close()
end

return M
