---@meta opsh.http
-- Editor stubs for `opsh.http` (lua/opsh/http.lua + bindings/http*.c). See docs/http.md.

---@class opsh.http.options
---@field url? string http:// or https:// (set by get/post/...)
---@field method? "GET"|"HEAD"|"POST"|"PUT"|"PATCH"|"DELETE"|"OPTIONS"
---@field query? table<string, string|number|boolean|opsh.secret|(string|number|boolean|opsh.secret)[]> encoded, keys sorted
---@field headers? table<string, string|number|opsh.secret>
---@field body? string|opsh.secret
---@field json? table encoded with opsh.json (opsh.secret values as their bytes); Content-Type/Accept set
---@field body_file? string path streamed as the body
---@field offset? integer with body_file: first byte sent
---@field length? integer with body_file: bytes sent from offset; with body_source: the Content-Length
---@field body_source? fun(): string? the body in chunks (nil at the end), pulled as the network takes them; never retried
---@field timeout? number|false seconds for the whole call (300; none when streaming or uploading a file)
---@field connect_timeout? number seconds (10)
---@field idle_timeout? number seconds without a byte received or sent: kind "timeout"
---@field low_speed_limit? integer bytes per second; slower for low_speed_time seconds: kind "timeout"
---@field low_speed_time? integer seconds (30)
---@field secret_fields? string[] JSON members whose string values res:json() gives as opsh.secret
---@field ca? string PEM text or file path; only this CA is trusted
---@field cert? string client certificate, PEM text or file path
---@field key? string|opsh.secret client key, PEM text or file path
---@field insecure? boolean turn verification off
---@field proxy? string proxy URL
---@field follow? boolean follow redirects
---@field retries? integer extra attempts (3)
---@field retry_unsafe? boolean retry POST/PATCH too
---@field backoff? number first backoff, seconds (0.5)
---@field max_backoff? number (30)
---@field max_retry_after? number longest Retry-After waited for (120)
---@field on_data? fun(chunk: string): boolean? stream the body; return false to stop
---@field on_line? fun(line: string): boolean? stream the body line by line; return false to stop
---@field max_body? integer bytes (256 MiB)
---@field compressed? boolean accept gzip/br/zstd (true unless streaming)
---@field missing_ok? boolean 404 → nil
---@field raise_for_status? boolean status >= 400 raises kind "http" (true)
---@field read? boolean in a dry-run: true sends a POST-shaped read, false records a GET that changes something (default: GET/HEAD/OPTIONS are reads)
---@field dry_run? "server" the request carries the server's own dry-run (e.g. dryRun=All): sent in a dry-run, recorded by the caller

---@class opsh.http.response
---@field status integer|nil nil when not sent (dry_run)
---@field reason string status line phrase ("" over HTTP/2)
---@field headers table<string, string> lower-case names; lookup is case-insensitive
---@field body string|nil empty when streamed, nil when not sent (dry_run)
---@field version? "1.0"|"1.1"|"2"
---@field method string
---@field url string the URL with secrets redacted
---@field dry_run? true the request was recorded in a dry-run, not sent (status and body are nil)
---@field record? table the opsh.dryrun record made instead of sending it
local response = {}
---The body decoded with opsh.json (nil when empty); raises kind "protocol" if it is not JSON.
---@return any
function response:json() end

---@class opsh.http.client_options
---@field base_url? string http(s)://host[/prefix]: a call's path is appended to it
---@field headers? table<string, string|number|opsh.secret> sent with every call (a call's own win)
---@field query? table added to every call's query (a call's own win)
---@field auth? fun(ctx: opsh.http.auth_ctx): (string|opsh.secret)? the auth header's value, per request
---@field auth_header? string the header auth fills ("Authorization")
---@field throttle? opsh.http.throttle|fun(headers: table, info: opsh.http.throttle_info)|(opsh.http.throttle|fun(headers: table, info: opsh.http.throttle_info))[]
---@field timeout? number|false
---@field connect_timeout? number
---@field idle_timeout? number
---@field low_speed_limit? integer
---@field low_speed_time? integer
---@field ca? string
---@field cert? string
---@field key? string|opsh.secret
---@field insecure? boolean
---@field proxy? string
---@field follow? boolean
---@field retries? integer
---@field retry_unsafe? boolean
---@field backoff? number
---@field max_backoff? number
---@field max_retry_after? number
---@field max_body? integer
---@field compressed? boolean
---@field missing_ok? boolean
---@field raise_for_status? boolean
---@field secret_fields? string[]

---@class opsh.http.auth_ctx
---@field refresh boolean true after a 401: give a new credential
---@field status? integer 401 when refreshing
---@field challenge? string the 401's WWW-Authenticate header
---@field method string
---@field url string the URL (base joined, without the query)
---@field query? table the query table (a client's and the call's)
---@field headers table the request's headers (lower-case names)

---@class opsh.http.throttle_info
---@field method string
---@field url string redacted
---@field read boolean
---@field attempt integer
---@field status? integer in after()

---@class opsh.http.throttle
---@field before? fun(self: any, info: opsh.http.throttle_info) called before each attempt; may wait
---@field after? fun(self: any, headers: table, info: opsh.http.throttle_info) called after each response

---@class opsh.http.client
local client = {}
---@param path string a path under base_url, or an absolute URL on its origin
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function client:get(path, opts) end
---@param path string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function client:head(path, opts) end
---@param path string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function client:post(path, opts) end
---@param path string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function client:put(path, opts) end
---@param path string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function client:patch(path, opts) end
---@param path string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function client:delete(path, opts) end
---@param opts opsh.http.options url is a path or an absolute URL on the client's origin
---@return opsh.http.response|nil
function client:request(opts) end
---A new client: these settings over this one's (auth = false / throttle = false drop them).
---@param opts opsh.http.client_options
---@return opsh.http.client
function client:with(opts) end
---The URL a call with this path goes to.
---@param path? string
---@return string
function client:url(path) end

---@class opsh.http.budget: opsh.http.throttle
local budget = {}
---Take n tokens (1), waiting in turn until there are.
---@param n? number
function budget:take(n) end
---The server says n remain: the level becomes n (at most burst).
---@param n number
function budget:set(n) end
---@return number
function budget:level() end

---@class opsh.http
---Errors are opsh.error tables: kind "http" (status, body, code, headers, request_id, attempts, elapsed),
---"connect", "timeout", "tls", "protocol" (attempts, elapsed, curl_code), "io" (path), "usage".
local http = {}

---Defaults of every request, read-only (a client holds other settings).
---@type {timeout: number, connect_timeout: number, retries: integer, backoff: number, max_backoff: number, max_retry_after: number, max_body: integer}
http.defaults = {}

---A client: base URL, default headers and query, TLS material, policy, auth provider, throttles.
---@param opts opsh.http.client_options
---@return opsh.http.client
function http.client(opts) end

---A token bucket: `rate` tokens per second up to `burst`; `header`: its level from that response header.
---@param opts {rate: number, burst: number, level?: number, header?: string}
---@return opsh.http.budget
function http.budget(opts) end

---An auth provider sending "Bearer <token>" from fetch(ctx) -> token, expires_at (epoch seconds);
---one fetch at a time, kept until `margin` (300) seconds before expires_at, fetched again after a 401.
---@param fetch fun(ctx: opsh.http.auth_ctx): (string|opsh.secret), number?
---@param opts? {margin?: number}
---@return fun(ctx: opsh.http.auth_ctx): opsh.secret
function http.bearer(fetch, opts) end

---@param opts opsh.http.options
---@return opsh.http.response|nil
function http.request(opts) end
---@param url string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function http.get(url, opts) end
---@param url string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function http.head(url, opts) end
---@param url string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function http.post(url, opts) end
---@param url string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function http.put(url, opts) end
---@param url string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function http.patch(url, opts) end
---@param url string
---@param opts? opsh.http.options
---@return opsh.http.response|nil
function http.delete(url, opts) end

---The URL with user:password@ and credential query values replaced by REDACTED.
---@param url string
---@return string
function http.redact(url) end

---Seconds to wait for a Retry-After value (delta seconds or HTTP-date), or nil.
---@param value string
---@param now? integer epoch seconds
---@return number|nil
function http.retry_after(value, now) end

---@param opts {max_host_connections?: integer, max_total_connections?: integer, max_idle_connections?: integer}
function http.configure(opts) end

---@return {running: integer, pooled: integer, sockets: integer}
function http.stats() end

---@return string version, boolean http2
function http.curl_version() end

return http
