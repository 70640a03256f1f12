---@meta opsh.http
-- Editor stubs for `opsh.http` (lua/opsh/http.lua + bindings/http*.c). See docs/http.md.

---@class opsh.http.options
---@field url? string http:// or https:// (set by get/post/...)
---@field method? "GET"|"HEAD"|"POST"|"PUT"|"PATCH"|"DELETE"|"OPTIONS"
---@field query? table<string, string|number|boolean|opsh.secret|(string|number|boolean|opsh.secret)[]> encoded, keys sorted
---@field headers? table<string, string|number|opsh.secret>
---@field body? string|opsh.secret
---@field json? table encoded with opsh.json; Content-Type/Accept set
---@field body_file? string path streamed as the body
---@field timeout? number|false seconds for the whole call (300; none when streaming or uploading a file)
---@field connect_timeout? number seconds (10)
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

---@class opsh.http
---Errors are opsh.error tables: kind "http" (status, body, code, headers, request_id, attempts, elapsed),
---"connect", "timeout", "tls", "protocol" (attempts, elapsed, curl_code), "io" (path), "usage".
local http = {}

---Defaults for every request.
---@type {timeout: number, connect_timeout: number, retries: integer, backoff: number, max_backoff: number, max_retry_after: number, max_body: integer}
http.defaults = {}

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
