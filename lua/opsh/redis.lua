-- opsh.redis: Redis client on the opsh loop (hiredis async through opsh._redis).
-- Connections from a table or a redis:// / rediss:// URL, AUTH (password or ACL user) and
-- SELECT on every (re)connect, commands as methods, pipelines, pub/sub iterators, INFO parsing.
-- Reconnect policy: a command finding the connection down reconnects first (nothing was sent);
-- a read-only command whose connection broke after sending is retried once on a new
-- connection; anything else raises {kind="connect", sent=true}.
local C = require("opsh._redis")
local core = require("opsh._core")
local check = require("opsh.check")
local opsh = require("opsh")
local dryrun = require("opsh.dryrun")
local audit = require("opsh.audit")

local M = {}

do
  local ok, json = pcall(require, "opsh.json")
  if ok and type(json) == "table" and json.null ~= nil then C.set_null(json.null) end
  M.null = ok and type(json) == "table" and json.null or C.null
end
M.hiredis_version = C.hiredis_version

local function raise(kind, message, fields)
  error(core.error(kind, message, fields), 0)
end

local function usage(message) raise("usage", message) end

-- Commands that never change data: retried once on a fresh connection if the connection
-- breaks while they wait for their reply.
local READONLY = {}
for name in ([[GET MGET EXISTS TTL PTTL EXPIRETIME PEXPIRETIME TYPE STRLEN GETRANGE SUBSTR
  HGET HMGET HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN HRANDFIELD HSCAN
  LRANGE LLEN LINDEX LPOS SMEMBERS SISMEMBER SMISMEMBER SCARD SRANDMEMBER SSCAN SUNION SINTER
  SDIFF SINTERCARD ZRANGE ZRANGEBYSCORE ZRANGEBYLEX ZREVRANGE ZREVRANGEBYSCORE ZREVRANGEBYLEX
  ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK ZRANDMEMBER ZSCAN ZUNION ZINTER ZDIFF
  XRANGE XREVRANGE XLEN BITCOUNT BITPOS GETBIT GEOPOS GEODIST GEOHASH GEOSEARCH
  SCAN KEYS DBSIZE RANDOMKEY DUMP INFO PING ECHO TIME LASTSAVE ROLE]]):gmatch("%S+") do
  READONLY[name] = true
end

-- ---- options ----

local unescape = require("opsh.http.url").unescape

--- parse_url("rediss://user:pass@host:port/db") -> options table (password as a secret).
-- Messages never repeat the URL: it may hold the password.
function M.parse_url(url)
  check.string("redis.parse_url", 1, url)
  local scheme, rest = url:match("^(rediss?)://(.*)$")
  if not scheme then usage("a redis URL starts with redis:// or rediss://") end
  if rest:find("?", 1, true) or rest:find("#", 1, true) then
    usage("redis URL: query parameters are not supported; pass options in a table")
  end
  local userinfo, hostport, path = rest:match("^(.*)@([^@/]*)(.*)$")
  if not userinfo then hostport, path = rest:match("^([^/]*)(.*)$") end
  local o = {tls = scheme == "rediss"}
  if userinfo then
    local user, pass = userinfo:match("^([^:]*):(.*)$")
    if not user then user = userinfo end
    if user ~= "" then o.username = unescape(user) end
    if pass and pass ~= "" then o.password = core.secret(unescape(pass)) end
  end
  local host, port = hostport:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]*):?(%d*)$") end
  if not host then usage("redis URL: cannot read the host and port") end
  if host ~= "" then o.host = unescape(host) end
  if port ~= "" then o.port = tonumber(port) end
  local db = path:match("^/(%d+)$")
  if db then o.db = tonumber(db)
  elseif path ~= "" and path ~= "/" then usage("redis URL: the path must be a database number") end
  return o
end

local KNOWN = {url = "string", host = "string", port = "number", username = "string",
  password = "secret", db = "number", tls = "boolean", ca = "string", servername = "string",
  verify = "boolean", timeout = "number", connect_timeout = "number"}

local KNOWN_LIST = {}
for k in pairs(KNOWN) do KNOWN_LIST[#KNOWN_LIST + 1] = k end
table.sort(KNOWN_LIST)

local function config(opts)
  if type(opts) == "string" then opts = {url = opts} end
  if type(opts) ~= "table" then check.fail("redis.connect", 1, "table or URL expected, got " .. check.typename(opts)) end
  local cfg = opts.url and M.parse_url(opts.url) or {}
  for k, v in pairs(opts) do
    local want = KNOWN[k]
    if not want then check.unknown("redis.connect", 1, k, KNOWN_LIST) end
    if want == "secret" then
      if type(v) ~= "string" and not core.is_secret(v) then
        check.fail("redis.connect", 1, "must be a string or opsh.secret, got " .. check.typename(v), "password")
      end
      v = core.secret(v)
    elseif type(v) ~= want then
      check.fail("redis.connect", 1, string.format("must be a %s, got %s", want, check.typename(v)), k)
    end
    if k ~= "url" then cfg[k] = v end
  end
  cfg.host = cfg.host or "127.0.0.1"
  cfg.port = cfg.port or (cfg.tls and 6380 or 6379)
  if cfg.db and (cfg.db < 0 or math.type(cfg.db) ~= "integer") then
    check.fail("redis.connect", 1, "db must be a non-negative integer")
  end
  if cfg.username and not cfg.password then
    check.fail("redis.connect", 1, "username needs a password")
  end
  return cfg
end

-- A new C connection, authenticated and on the configured database, within connect_timeout:
-- resolving, TCP and TLS are bounded in C, AUTH and SELECT here by what is left of it.
local function open(cfg)
  local started = core.hrtime()
  local limit = cfg.connect_timeout or 10
  local c = C.connect(cfg)
  local ready = false
  local _ <close> = setmetatable({}, {__close = function() if not ready then c:close() end end})
  local function within(...)
    local name = ...
    if limit > 0 then   -- 0: no limit
      local left = limit - (core.hrtime() - started)
      if left <= 0 then
        raise("timeout", string.format("redis %s:%d: not connected within %g s (before %s)", cfg.host,
          cfg.port, limit, name), {host = cfg.host, port = cfg.port, command = name})
      end
      c:_timeout(left)
    end
    local v, err = c:call(...)
    if err and err.kind == "timeout" then
      raise("timeout", string.format("redis %s:%d: not connected within %g s (no reply to %s)", cfg.host,
        cfg.port, limit, name), {host = cfg.host, port = cfg.port, command = name})
    end
    return v, err
  end
  if cfg.password then
    local _, err
    if cfg.username then _, err = within("AUTH", cfg.username, cfg.password)
    else _, err = within("AUTH", cfg.password) end
    if err then
      if err.kind ~= "redis" then error(err, 0) end
      raise("auth", string.format("redis %s:%d: authentication%s failed: %s", cfg.host, cfg.port,
        cfg.username and (" as " .. cfg.username) or "", err.message),
        {code = err.code, host = cfg.host, port = cfg.port})
    end
  end
  if cfg.db and cfg.db ~= 0 then
    local _, err = within("SELECT", cfg.db)
    if err then error(err, 0) end
  end
  c:_timeout(cfg.timeout or 0)
  ready = true
  return c
end

-- ---- connections ----

local Conn = {}
local conn_mt = {__index = Conn, __name = "opsh.redis.connection"}

-- r:anything(...) is r:call("ANYTHING", ...)
setmetatable(Conn, {__index = function(t, k)
  if type(k) ~= "string" or k:sub(1, 1) == "_" then return nil end
  local name = k:upper()
  local f = function(self, ...) return self:call(name, ...) end
  rawset(t, k, f)
  return f
end})

local function reconnect(self)
  if self._closed then usage("the redis connection is closed") end
  self._mu:with(function()
    local c = self._c
    if c and c:status() == "ready" then return end
    local fresh = open(self._cfg)
    self._c = fresh
    if c then c:close() end
  end)
  return self._c
end

local function check_open(self)
  local c = self._c
  if not c or self._closed then usage("the redis connection is closed") end
  return c
end

local function send(self, name, ...)
  local c = check_open(self)
  local v, err = c:call(name, ...)
  if err == nil then
    if #name == 6 and name:upper() == "SELECT" then self._cfg.db = math.tointeger(...) end
    return v
  end
  if err.kind == "connect" and (err.sent == false or READONLY[name:upper()]) then
    c = reconnect(self)
    v, err = c:call(name, ...)
    if err == nil then return v end
  end
  error(err, 0)
end

-- ---- dry-run: writes are recorded, not sent ----

--- redis.dry_run: what a command returns when a dry-run recorded it instead of sending it.
M.dry_run = setmetatable({}, {__name = "opsh.redis.dry_run", __tostring = function() return "redis.dry_run" end,
  __newindex = function() error("redis.dry_run is read-only", 2) end})

local function set(words)
  local t = {}
  for w in words:gmatch("%S+") do t[w] = true end
  return t
end

-- Scripts and functions may write (their read-only variants, EVAL_RO and FCALL_RO, are flagged
-- readonly); a published message can make its subscribers act: both count as writes.
local MAY_WRITE = set("EVAL EVALSHA FCALL PUBLISH SPUBLISH SCRIPT|FLUSH SCRIPT|KILL SCRIPT|LOAD "
  .. "FUNCTION|KILL MEMORY|PURGE")
-- Administrative commands change the server unless they only read it.
local ADMIN_READS = set("CONFIG|GET CONFIG|HELP CLIENT|LIST CLIENT|HELP SLOWLOG|GET SLOWLOG|LEN SLOWLOG|HELP "
  .. "LATENCY|LATEST LATENCY|HISTORY LATENCY|DOCTOR LATENCY|GRAPH LATENCY|HISTOGRAM LATENCY|HELP ACL|LIST "
  .. "ACL|GETUSER ACL|USERS ACL|LOG ACL|CAT ACL|DRYRUN ACL|WHOAMI ACL|HELP MODULE|LIST MODULE|HELP")
-- Connection state, not data: sent even when COMMAND INFO cannot be had.
local CONNECTION = set("AUTH SELECT HELLO PING ECHO QUIT RESET MULTI EXEC DISCARD WATCH UNWATCH READONLY "
  .. "READWRITE CLIENT|SETNAME CLIENT|GETNAME CLIENT|ID CLIENT|INFO COMMAND")
-- Commands whose first argument names what they do (Redis before 7 has no subcommand entries).
local CONTAINERS = set("ACL CLIENT CLUSTER COMMAND CONFIG DEBUG FUNCTION LATENCY MEMORY MODULE OBJECT PUBSUB "
  .. "SCRIPT SLOWLOG XGROUP XINFO")

-- COMMAND INFO per server: "host:port" -> {["set"] = {flags = {write = true}, sub = bool} | false
-- (unknown to the server)}. A connection whose user may not run COMMAND remembers it.
local command_info = {}

-- The flags of a command ("set", "config|set"), nil when COMMAND INFO cannot be had.
local function flags_of(self, name)
  if self._no_command_info then return nil end
  local key = self._cfg.host .. ":" .. self._cfg.port
  local cache = command_info[key]
  if not cache then
    cache = {}
    command_info[key] = cache
  end
  local hit = cache[name]
  if hit ~= nil then return hit end
  local ok, v = pcall(send, self, "COMMAND", "INFO", name)
  if not ok then
    if core.is_error(v, "redis") then   -- refused (this user's ACL, a renamed COMMAND): decide without it
      self._no_command_info = true
      return nil
    end
    error(v, 0)
  end
  local e = type(v) == "table" and v[1]
  hit = false
  if type(e) == "table" then
    hit = {flags = {}, sub = type(e[10]) == "table" and #e[10] > 0}
    for _, f in ipairs(type(e[3]) == "table" and e[3] or {}) do hit.flags[f] = true end
  end
  cache[name] = hit
  return hit
end

-- Would this command change anything? Decided by its COMMAND INFO flags: `write`; scripts,
-- functions and PUBLISH; `admin` unless it only reads. Without COMMAND INFO, anything that is not
-- a known read or connection state counts as a write.
local function is_write(self, name, sub, arg2)
  local NAME = name:upper()
  local info = flags_of(self, NAME:lower())
  local full = NAME
  if type(sub) == "string" and (CONTAINERS[NAME] or (info and info.sub)) then
    full = NAME .. "|" .. sub:upper()
    if info and info.sub then
      local si = flags_of(self, full:lower())
      if si then info = si end
    end
  end
  if full == "ACL|LOG" and type(arg2) == "string" and arg2:upper() == "RESET" then return true end
  if info == nil then return not (READONLY[NAME] or CONNECTION[NAME] or CONNECTION[full] or ADMIN_READS[full]) end
  if info == false then return false end   -- unknown to the server: it answers with an error
  local f = info.flags
  if f.write then return true end
  if f.readonly then return false end
  if MAY_WRITE[NAME] or MAY_WRITE[full] then return true end
  if f.admin then return not ADMIN_READS[full] end
  return false
end

-- One line for the plan: the command, its subcommand, and the key (never the values).
local function describe(name, args)
  local parts = {name:upper()}
  local n = CONTAINERS[name:upper()] and 2 or 1
  for i = 1, math.min(n, args.n) do
    local a = args[i]
    if core.is_secret(a) then a = "<redacted>" end
    a = tostring(a):gsub("%c", function(ch) return string.format("\\x%02x", ch:byte()) end)
    if #a > 120 then a = a:sub(1, 117) .. "..." end
    parts[#parts + 1] = i < n and a:upper() or a
  end
  return table.concat(parts, " ")
end

local function record(self, name, args)
  local cfg = self._cfg
  local request = {command = name:upper(), args = {table.unpack(args, 1, args.n)},
    server = cfg.host .. ":" .. cfg.port, db = cfg.db or 0}
  return dryrun.record{kind = "redis", action = describe(name, args), target = request.server,
    request = request, secrets = {cfg.password}}
end

-- a write sent outside a dry run: its audit line, with how it ended
local function audited(self, name, args, result)
  local cfg = self._cfg
  audit.record{kind = "redis", action = describe(name, args), target = cfg.host .. ":" .. cfg.port,
    result = result, secrets = {cfg.password}}
end

--- r:call(name, ...) -> the reply; raises {kind="redis", code=} for an error reply.
-- In a dry-run, a write is recorded instead: redis.dry_run, the record.
function Conn:call(name, ...)
  if type(name) ~= "string" then check.fail("r:call", 1, "command name expected, got " .. check.typename(name)) end
  if dryrun.active() and is_write(self, name, ...) then
    check_open(self)
    return M.dry_run, record(self, name, table.pack(...))
  end
  local reply = send(self, name, ...)
  if audit.recording() and is_write(self, name, ...) then audited(self, name, table.pack(...), "ok") end
  return reply
end

--- r:select(db): later reconnects select it again.
function Conn:select(db)
  if math.type(db) ~= "integer" then check.integer("r:select", 1, db) end
  return self:call("SELECT", db)
end

--- r:pipeline(function(p) p:set(k, v) ... end) -> {reply1, reply2, ..., n=}
-- Everything is sent at once, then every reply read. Error replies are error objects in place,
-- nil replies are redis.null. A pipeline is never retried once sent.
local function run_pipeline(self, p)
  local c = check_open(self)
  local res, err = c:pipeline(p)
  if err and err.sent == false then
    c = reconnect(self)
    res, err = c:pipeline(p)
  end
  if err then error(err, 0) end
  return res
end

-- what fn is given to queue commands: they go into the batch `all` (which checks the arguments) and are
-- kept as Lua values too (cmds), for a dry run's records and for the audit lines of the writes
local function keeping(all)
  local cmds = {}
  local proxy = {}
  function proxy.call(_, name, ...)
    all:call(name, ...)
    cmds[#cmds + 1] = table.pack(name, ...)
  end
  setmetatable(proxy, {__len = function() return #cmds end, __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local name = k:upper()
    local f = function(_, ...) return t.call(t, name, ...) end
    rawset(t, k, f)
    return f
  end})
  return proxy, cmds
end

-- In a dry-run the reads are sent and the writes recorded; each write's place in the results holds
-- redis.dry_run.
local function dry_pipeline(self, fn, all)
  local proxy, cmds = keeping(all)
  fn(proxy)
  local reads, writes = C.batch(), {}
  for i, cmd in ipairs(cmds) do
    if is_write(self, cmd[1], cmd[2], cmd[3]) then writes[i] = true
    else reads:call(table.unpack(cmd, 1, cmd.n)) end
  end
  if next(writes) == nil then return run_pipeline(self, all) end
  check_open(self)
  for i, cmd in ipairs(cmds) do
    if writes[i] then record(self, cmd[1], table.pack(table.unpack(cmd, 2, cmd.n))) end
  end
  local got = run_pipeline(self, reads)
  local res, j = {n = #cmds}, 0
  for i = 1, #cmds do
    if writes[i] then res[i] = M.dry_run
    else
      j = j + 1
      res[i] = got[j]
    end
  end
  return res
end

function Conn:pipeline(fn)
  if type(fn) ~= "function" then check.func("r:pipeline", 1, fn) end
  check_open(self)
  local p = C.batch()
  if dryrun.active() then return dry_pipeline(self, fn, p) end
  if not audit.recording() then
    fn(p)
    return run_pipeline(self, p)
  end
  local proxy, cmds = keeping(p)
  fn(proxy)
  local ok, res = pcall(run_pipeline, self, p)
  for i, cmd in ipairs(cmds) do
    if is_write(self, cmd[1], cmd[2], cmd[3]) then
      local reply = ok and res[i]
      audited(self, cmd[1], table.pack(table.unpack(cmd, 2, cmd.n)),
        not ok and ("error: pipeline " .. tostring(core.is_error(res) and res.message or res))
          or (core.is_error(reply) and ("error: " .. tostring(reply.message)) or "ok"))
    end
  end
  if not ok then error(res, 0) end
  return res
end

-- subscriptions: their own connection, iterated
local Sub = {}
local sub_mt = {__index = Sub, __name = "opsh.redis.subscription"}

--- sub:next([timeout]) -> {channel=, payload=[, pattern=]} | nil when nothing came in time.
function Sub:next(timeout)
  local c = self._c
  if not c then usage("the subscription is closed") end
  local m, err = c:message(timeout or self._timeout)
  if err then error(err, 0) end
  return m
end

function Sub:close()
  local c = self._c
  self._c = nil
  if c then c:close() end
end

sub_mt.__call = function(self) return self:next() end
sub_mt.__close = Sub.close

local function subscribe(self, kind, ...)
  local n = select("#", ...)
  local names = {...}
  local opts = {}
  if type(names[n]) == "table" then
    opts = names[n]
    names[n] = nil
    n = n - 1
  end
  local fname = "r:" .. kind:lower()
  if n == 0 then check.fail(fname, 1, "channel expected") end
  for i = 1, n do check.string(fname, i, names[i]) end
  if opts.timeout ~= nil then check.duration(fname, n + 1, opts.timeout, nil, "timeout") end
  check_open(self)
  local c = open(self._cfg)
  local ok, err = c:subscribe(kind, table.unpack(names, 1, n))
  if not ok then
    c:close()
    error(err, 0)
  end
  local sub = setmetatable({_c = c, _timeout = opts.timeout}, sub_mt)
  return sub, nil, nil, sub
end

--- r:subscribe(ch, ...[, {timeout=}]) -> an iterator of messages (also sub:next(), sub:close()).
-- `for msg in r:subscribe("ch") do ... end`; with a timeout the loop ends when nothing comes.
function Conn:subscribe(...) return subscribe(self, "SUBSCRIBE", ...) end
function Conn:psubscribe(...) return subscribe(self, "PSUBSCRIBE", ...) end

local function typed(v)
  if v:match("^%-?%d+$") then return math.tointeger(tonumber(v)) or v end
  if v:match("^%-?%d+%.%d+$") then return tonumber(v) end
  return v
end

-- "keys=1,expires=0" -> {keys=1, expires=0}; nil unless every part is name=value
local function fields(v)
  if not v:find("=", 1, true) then return nil end
  local t = {}
  for part in (v .. ","):gmatch("([^,]*),") do
    local name, value = part:match("^([%w_%-]+)=(.*)$")
    if not name then return nil end
    t[name] = typed(value)
  end
  return t
end

--- parse_info(text) -> {section = {field = value}}: lower-case section names, numbers typed,
-- "a=1,b=2" values (keyspace, commandstats, replicas) as tables.
function M.parse_info(text)
  check.string("redis.parse_info", 1, text)
  local res, cur = {}, nil
  for line in text:gmatch("[^\r\n]+") do
    local section = line:match("^#%s*(.-)%s*$")
    if section then
      cur = {}
      res[section:lower()] = cur
    else
      local k, v = line:match("^([^:]+):(.*)$")
      if k then
        if not cur then
          cur = {}
          res.default = cur
        end
        cur[k] = fields(v) or typed(v)
      end
    end
  end
  return res
end

--- r:info([section]) -> parsed INFO (see parse_info)
function Conn:info(section)
  if section ~= nil and type(section) ~= "string" then
    check.string("r:info", 1, section)
  end
  local text
  if section then text = self:call("INFO", section) else text = self:call("INFO") end
  return M.parse_info(text)
end

function Conn:close()
  self._closed = true
  local c = self._c
  self._c = nil
  if c then c:close() end
end

conn_mt.__close = Conn.close
conn_mt.__tostring = function(self)
  local cfg = self._cfg
  return string.format("redis connection %s:%d%s%s", cfg.host, cfg.port, cfg.tls and " (tls)" or "",
    self._closed and " (closed)" or "")
end

--- connect(opts | url) -> r. Options: host, port, username, password (string or opsh.secret),
-- db, tls, ca (PEM text or file), servername, verify (default true), timeout (per command,
-- seconds; none by default), connect_timeout (default 10).
function M.connect(opts)
  local cfg = config(opts)
  local c = open(cfg)
  return setmetatable({_c = c, _cfg = cfg, _mu = opsh.mutex()}, conn_mt)
end

M.READONLY = READONLY

return M
