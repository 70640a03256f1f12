---@meta opsh.server
-- Editor stubs for `opsh.server` (lua/opsh/server.lua + bindings/server*.c). See docs/server.md.

---@class opsh.server.tls
---@field cert string PEM text or a file path (leaf first, then intermediates)
---@field key string|opsh.secret PEM text or a file path; never appears in errors or logs
---@field client_ca? string PEM text or a file path: ask for and verify client certificates
---@field client_auth? "optional"|"require" default "optional" when client_ca is given

---@class opsh.server.options
---@field host? string IP literal; default "127.0.0.1"
---@field port? integer 0 (default) picks a free port
---@field tls? opsh.server.tls
---@field max_body? integer bytes; default 8 MiB, larger bodies get 413
---@field timeout? number seconds for an idle connection or a request to arrive; default 60
---@field routes? table[] {{method, pattern, fn}, ...}
---@field handler? fun(req: opsh.server.request): ... the catch-all

---@class opsh.server.client_cert
---@field subject string RFC 2253, e.g. "CN=jane,O=devs,O=system:masters"
---@field cn? string
---@field o string[] organizations (Kubernetes groups)
---@field sha256 string lowercase hex of the DER

---@class opsh.server.request
---@field method string
---@field path string percent-decoded, without the query
---@field raw_path string as sent
---@field target string the whole request target
---@field query table<string, string> first value per name
---@field query_all table<string, string[]>
---@field headers table<string, string> case-insensitive
---@field body string
---@field params table<string, string>
---@field client_cert? opsh.server.client_cert
---@field remote string "127.0.0.1:54321"
---@field tls boolean
---@field version string "1.1" or "1.0"
local request = {}
---Start a chunked response.
---@param status integer
---@param headers? table<string, string|string[]>
---@return opsh.server.stream
function request:stream(status, headers) end
---The body decoded as JSON.
---@return any
function request:json() end

---@class opsh.server.stream
local stream = {}
---Send one chunk; suspends until it is handed to the kernel. Raises {kind="closed"} when the client is gone.
---@param chunk string
function stream:write(chunk) end
---Send the last chunk (idempotent).
function stream:close() end
---@return boolean true when the client has gone away
function stream:closed() end

---@class opsh.server.server
---@field port? integer nil once closed
---@field url? string "http(s)://host:port"
local srv = {}
---@param method "GET"|"HEAD"|"POST"|"PUT"|"PATCH"|"DELETE"|"OPTIONS"|"*"
---@param pattern string "/apis/{group}/{version}/namespaces/{ns}/{resource}", last segment may be "{rest...}"
---@param fn fun(req: opsh.server.request): ...
---@return opsh.server.server
function srv:route(method, pattern, fn) end
---The handler for paths no route matches.
---@param fn fun(req: opsh.server.request): ...
---@return opsh.server.server
function srv:handle(fn) end
---Stop listening, close connections, cancel running handlers. Idempotent.
function srv:close() end
---Suspend until the server is closed.
function srv:wait() end
---@return {connections: integer, queued: integer, served: integer}
function srv:stats() end
---@return boolean
function srv:is_closed() end

---@class opsh.server
local server = {}
---@param opts opsh.server.options
---@return opsh.server.server
function server.listen(opts) end
---Decode a query string: first value per name, and all values per name.
---@param qs string
---@return table<string, string>, table<string, string[]>
function server.parse_query(qs) end
---Percent-decode (and "+" as space when plus is true).
---@param s string
---@param plus? boolean
---@return string
function server.unescape(s, plus) end

return server
