-- opsh.azure.blob: Azure Blob Storage data plane over an opsh.http client. Shared Key signing
-- (the service's string-to-sign) or Entra bearer tokens; block blobs put from a string, a file or a
-- stream in blocks (Put Block + Put Block List, a bounded number in flight, so a multi-GB upload
-- holds at most parallel × block_size in memory, and none for a file); get to a file or a callback;
-- paged listing; delete; tier; containers; the blob service properties. See docs/blob.md.
local core = require("opsh._core")
local opsh = require("opsh")
local http = require("opsh.http")
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")
local dryrun = require("opsh.dryrun")

local M = {}

M.VERSION = "2023-11-03"
local MiB = 1024 * 1024
M.defaults = {block_size = 32 * MiB, stream_block_size = 8 * MiB, parallel = 4, single_put_max = 32 * MiB}

local Account = {}
Account.__index = Account

local function usage(fn, msg)
  error(core.error("usage", "bad argument to '" .. fn .. "' (" .. msg .. ")"), 3)
end

local function azure_error(msg, fields)
  fields = fields or {}
  return core.error("azure", msg, fields)
end

-- ---- Shared Key ----

local SIGNED = {"content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
  "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"}

local function url_decode(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- string_to_sign(method, path, query, headers) -> the Shared Key string-to-sign (Azure's rules:
-- the standard headers in order, Content-Length empty when 0, the x-ms-* headers lower-cased and
-- sorted, then /account/path and the query parameters sorted, lower-cased names, decoded values).
-- `path` is the URL path as sent (percent-encoded), account included; headers use lower-case names.
function M.string_to_sign(method, account, path, query, headers)
  local parts = {method:upper()}
  for _, h in ipairs(SIGNED) do
    local v = headers[h]
    if h == "content-length" and (v == 0 or v == "0") then v = nil end
    parts[#parts + 1] = v ~= nil and tostring(v) or ""
  end
  local xms = {}
  for k, v in pairs(headers) do
    if k:sub(1, 5) == "x-ms-" then xms[#xms + 1] = {k, tostring(v)} end
  end
  table.sort(xms, function(a, b) return a[1] < b[1] end)
  for _, kv in ipairs(xms) do parts[#parts + 1] = kv[1] .. ":" .. kv[2] end
  local res = "/" .. account .. path
  local names = {}
  for k in pairs(query or {}) do names[#names + 1] = k end
  table.sort(names, function(a, b) return a:lower() < b:lower() end)
  for _, k in ipairs(names) do
    local v = query[k]
    if type(v) == "table" then v = table.concat(v, ",") end
    res = res .. "\n" .. k:lower() .. ":" .. url_decode(tostring(v))
  end
  parts[#parts + 1] = res
  return table.concat(parts, "\n")
end

local function httpdate()
  return os.date("!%a, %d %b %Y %H:%M:%S GMT")
end

-- ---- the account object ----

--- account{endpoint =, account =, key = secret | token = provider, ca =, ...} -> an account object
function M.account(opts)
  if type(opts) ~= "table" then usage("account", "table expected") end
  local endpoint = opts.endpoint
  if type(endpoint) ~= "string" or not endpoint:match("^https?://") then
    usage("account", "endpoint must be the blob endpoint URL (https://<account>.blob.core.windows.net)")
  end
  endpoint = endpoint:gsub("/+$", "")
  local name = opts.account or endpoint:match("^https?://([^.:/]+)%.blob%.")
  if not name then usage("account", "account name missing (give account =)") end
  if (opts.key == nil) == (opts.token == nil) then usage("account", "give exactly one of key (Shared Key) or token (an auth provider)") end
  local key
  if opts.key ~= nil then
    key = crypto.base64_decode(opts.key)
  elseif type(opts.token) ~= "function" then
    usage("account", "token must be an auth provider function (http.bearer(fetch))")
  end
  local base_path = endpoint:match("^https?://[^/]+(/.*)$") or ""
  local client = http.client{base_url = endpoint, ca = opts.ca, auth = opts.token,
    headers = {["x-ms-version"] = M.VERSION}, retries = opts.retries, timeout = opts.timeout}
  return setmetatable({name = name, endpoint = endpoint, base_path = base_path, key = key, client = client,
    block_size = opts.block_size or M.defaults.block_size, parallel = opts.parallel or M.defaults.parallel},
    Account)
end

local function enc_path(s)
  return (s:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- one request: signs it with Shared Key when the account has a key; `clen` is the body's length
function Account:request(method, path, opts, clen)
  opts = opts or {}
  local headers = opts.headers or {}
  opts.headers = headers
  headers["x-ms-date"] = httpdate()
  -- libcurl gives a PUT without its own Content-Type a form one; it is signed, so say it
  if method == "PUT" and not headers["Content-Type"] then headers["Content-Type"] = "application/octet-stream" end
  if self.key then
    local lower = {["x-ms-version"] = M.VERSION}
    for k, v in pairs(headers) do lower[k:lower()] = v end
    lower["content-length"] = clen
    local sts = M.string_to_sign(method, self.name, self.base_path .. path, opts.query, lower)
    headers.Authorization = "SharedKey " .. self.name .. ":" .. crypto.base64_encode(crypto.hmac_sha256(self.key, sts))
  end
  opts.method, opts.url = method, path
  local ok, res = pcall(self.client.request, self.client, opts)
  if ok then return res end
  if type(res) == "table" and res.kind == "http" then
    local code = res.headers and res.headers["x-ms-error-code"] or res.code
    local msg = res.body and res.body:match("<Message>([^\n<]*)") or ""
    local hint = ""
    if self.key and (code == "AuthenticationFailed" or code == "AuthorizationFailure"
        or code == "InvalidAuthenticationInfo") then
      hint = " (wrong account key?)"
    elseif res.status == 401 then
      hint = " (token refused: expired, wrong audience or issuer?)"
    end
    error(azure_error(string.format("%s %s: HTTP %d %s%s%s", method, self.endpoint .. path, res.status,
      code or "", msg ~= "" and (": " .. msg) or "", hint),
      {status = res.status, code = code, request_id = res.request_id, method = method}), 0)
  end
  error(res, 0)
end

local function check_name(fn, what, v)
  if type(v) ~= "string" or v == "" then usage(fn, what .. " name must be a non-empty string") end
end

--- create_container(name) -> true when created, false when it existed
function Account:create_container(name)
  check_name("create_container", "container", name)
  local res = self:request("PUT", "/" .. enc_path(name), {query = {restype = "container"}, raise_for_status = false}, 0)
  if res.dry_run then return true end
  if res.status == 201 then return true end
  if res.status == 409 then return false end
  -- raise through the common path for its message
  return self:request("PUT", "/" .. enc_path(name), {query = {restype = "container"}}, 0) and true
end

--- delete_container(name) -> true, or false when it did not exist
function Account:delete_container(name)
  check_name("delete_container", "container", name)
  local res = self:request("DELETE", "/" .. enc_path(name), {query = {restype = "container"}, missing_ok = true}, 0)
  return res ~= nil
end

local function blob_path(c, b) return "/" .. enc_path(c) .. "/" .. enc_path(b) end

local function record_of(res)
  local h = res.headers or {}
  return {etag = h.etag, content_md5 = h["content-md5"], crc64 = h["x-ms-content-crc64"],
    last_modified = h["last-modified"], version_id = h["x-ms-version-id"], request_id = h["x-ms-request-id"]}
end

local function block_id(i)
  return crypto.base64_encode(string.format("%08d", i))
end

-- Put Block List of n blocks; returns the record
function Account:commit(path, n, opts)
  local xml = {'<?xml version="1.0" encoding="utf-8"?><BlockList>'}
  for i = 1, n do xml[#xml + 1] = "<Latest>" .. block_id(i) .. "</Latest>" end
  xml[#xml + 1] = "</BlockList>"
  local body = table.concat(xml)
  local headers = {["Content-Type"] = "application/xml",
    ["x-ms-blob-content-type"] = opts.content_type or "application/octet-stream"}
  if opts.tier then headers["x-ms-access-tier"] = opts.tier end
  if opts.content_md5 then headers["x-ms-blob-content-md5"] = opts.content_md5 end
  for k, v in pairs(opts.metadata or {}) do headers["x-ms-meta-" .. k] = v end
  return self:request("PUT", path, {query = {comp = "blocklist"}, body = body, headers = headers}, #body)
end

-- Put Block i from a string or a file range. A block in memory goes with its CRC-64
-- (x-ms-content-crc64: the service refuses a block whose bytes do not match it); a CRC-64 the service
-- answers for it must be the same. A file range is sent from disk unread: no CRC of it is computed.
function Account:put_block(path, i, blk)
  local o = {query = {comp = "block", blockid = block_id(i)}, headers = {["Content-Type"] = "application/octet-stream"}}
  local len, crc
  if blk.data then
    o.body, len = blk.data, #blk.data
    crc = crypto.crc64_base64(crypto.crc64(blk.data))
    o.headers["x-ms-content-crc64"] = crc
  else
    o.body_file, o.offset, o.length, len = blk.file, blk.offset, blk.length, blk.length
  end
  local res = self:request("PUT", path, o, len)
  local answered = res.headers and res.headers["x-ms-content-crc64"]
  if crc and answered and answered ~= crc then
    error(azure_error(string.format("PUT %s block %d: the service stored CRC-64 %s for a block sent as %s; "
      .. "nothing committed", path, i, answered, crc), {code = "Crc64Mismatch"}), 0)
  end
  return answered or crc
end

-- runs put(i, blk) for the blocks next() yields, at most `parallel` at once; the first failure cancels
-- the others and is raised. Returns the number of blocks and their CRC64s in order.
local function pump(parallel, next_block, put)
  local inflight, crcs, n, failure = {}, {}, 0, nil
  local function drain_one()
    local t = table.remove(inflight, 1)
    local ok, err = pcall(t.task.wait, t.task)
    if not ok and not failure then failure = err end
  end
  local ok, err = pcall(function()
    while not failure do
      local blk = next_block()
      if not blk then break end
      n = n + 1
      local i = n
      inflight[#inflight + 1] = {task = opsh.spawn(function() crcs[i] = put(i, blk) end)}
      while #inflight >= parallel and not failure do drain_one() end
    end
    while #inflight > 0 and not failure do drain_one() end
  end)
  if not ok and not failure then failure = err end
  if failure then
    for _, t in ipairs(inflight) do t.task:cancel() end
    error(failure, 0)
  end
  return n, crcs
end

-- md5_of(opts) -> {feed =, close =, result() -> base64 MD5 | nil}: a `md5sum` process (a read, so it
-- runs in a dry run too); nil when md5sum is not installed
local function md5_of(opts)
  local proc = require("opsh.proc")
  local ok, p = pcall(proc.spawn, {argv = opts.file and {"md5sum", "--", opts.file} or {"md5sum"},
    stdin_pipe = not opts.file or nil, read = true})
  if not ok then return nil end
  local m, closed = {}, false
  if not opts.file then
    function m.feed(data) p:write(data) end
    function m.close() if not closed then closed = true; p:close_stdin() end end
  end
  function m.result()
    if m.close then m.close() end
    local r = p:wait()
    p:close()
    local hex = r and r.code == 0 and r.stdout and r.stdout:match("^(%x+)")
    return hex and #hex == 32 and crypto.base64_encode(crypto.hex_decode(hex)) or nil
  end
  return m
end

--- put(container, blob, {data = string | file = path | source = fn | process = p, ...}) -> record
function Account:put(container, name, opts)
  check_name("put", "container", container)
  check_name("put", "blob", name)
  if type(opts) == "string" then opts = {data = opts} end
  if type(opts) ~= "table" then usage("put", "options table expected: data, file, source or process") end
  local given = (opts.data and 1 or 0) + (opts.file and 1 or 0) + (opts.source and 1 or 0) + (opts.process and 1 or 0)
  if given ~= 1 then usage("put", "give exactly one of data, file, source, process") end
  local path = blob_path(container, name)
  local streamed = opts.source ~= nil or opts.process ~= nil
  local block_size = opts.block_size or (streamed and math.min(self.block_size, M.defaults.stream_block_size))
    or self.block_size
  local parallel = opts.parallel or self.parallel
  if type(block_size) ~= "number" or block_size < 1 or block_size > 4000 * MiB then
    usage("put", "block_size must be 1 .. 4000 MiB")
  end
  if type(parallel) ~= "number" or parallel < 1 then usage("put", "parallel must be >= 1") end

  local size = opts.data and #opts.data or nil
  if opts.file then size = fs.stat(opts.file).size end
  if dryrun.active() and (opts.source or opts.process) then
    dryrun.record{kind = "azure", action = "PUT blob " .. container .. "/" .. name .. " (from a stream)",
      target = name, request = {method = "PUT", url = self.endpoint .. path}}
    return {dry_run = true}
  end

  if size and size <= (opts.single_put_max or M.defaults.single_put_max) then
    local headers = {["x-ms-blob-type"] = "BlockBlob",
      ["Content-Type"] = opts.content_type or "application/octet-stream"}
    if opts.tier then headers["x-ms-access-tier"] = opts.tier end
    for k, v in pairs(opts.metadata or {}) do headers["x-ms-meta-" .. k] = v end
    local o = {headers = headers}
    if opts.data then o.body = opts.data else o.body_file = opts.file end
    local res = self:request("PUT", path, o, size)
    if res.dry_run then return {dry_run = true} end
    local rec = record_of(res)
    rec.size, rec.blocks = size, 0
    return rec
  end

  local next_block
  local total = 0
  if opts.file or opts.data then
    local off = 0
    next_block = function()
      if off >= size then return nil end
      local len = math.min(block_size, size - off)
      local blk = opts.file and {file = opts.file, offset = off, length = len} or {data = opts.data:sub(off + 1, off + len)}
      off = off + len
      total = off
      return blk
    end
  else
    local src = opts.source
    if opts.process then
      local p = opts.process
      src = function()
        local _, chunk = p:read("stdout")
        return chunk
      end
    elseif type(src) ~= "function" then
      usage("put", "source must be a function() -> chunk | nil")
    end
    local pending, plen, ended = {}, 0, false
    next_block = function()
      while not ended and plen < block_size do
        local chunk = src()
        if chunk == nil then ended = true
        elseif #chunk > 0 then pending[#pending + 1] = chunk; plen = plen + #chunk end
      end
      if plen == 0 then return nil end
      local all = table.concat(pending)
      local blk = all:sub(1, block_size)
      local rest = all:sub(block_size + 1)
      pending, plen = (#rest > 0) and {rest} or {}, #rest
      total = total + #blk
      return {data = blk}
    end
  end
  -- the whole blob's MD5 (Azure keeps none for a block list): md5sum reads the file beside the upload,
  -- or is fed each block of a string or stream as it is cut
  local md5 = opts.md5 ~= false and md5_of(opts) or nil
  local cut = next_block
  if md5 and md5.feed then
    next_block = function()
      local blk = cut()
      if blk then md5.feed(blk.data) else md5.close() end
      return blk
    end
  end
  local n, crcs = pump(parallel, next_block, function(i, blk) return self:put_block(path, i, blk) end)
  if md5 then opts.content_md5 = md5.result() end
  if opts.process then
    local st = opts.process:wait()
    if type(st) == "table" and st.code and st.code ~= 0 then
      error(azure_error("put " .. container .. "/" .. name .. ": the process producing the blob failed (exit "
        .. tostring(st.code) .. "); no blob committed", {code = "SourceFailed"}), 0)
    end
  end
  if n == 0 then
    -- an empty stream: an empty blob
    return self:put(container, name, {data = "", content_type = opts.content_type, tier = opts.tier,
      metadata = opts.metadata})
  end
  local res = self:commit(path, n, opts)
  if res.dry_run then return {dry_run = true} end
  local rec = record_of(res)
  rec.size, rec.blocks, rec.block_crc64 = total, n, crcs
  return rec
end

--- get(container, blob [, {file = path | on_data = fn, missing_ok}]) -> string, or the record for a file or a callback
function Account:get(container, name, opts)
  check_name("get", "container", container)
  check_name("get", "blob", name)
  opts = opts or {}
  local path = blob_path(container, name)
  if opts.file then
    local tmp = opts.file .. ".part"
    local f = assert(io.open(tmp, "wb"))
    local ok, res = pcall(self.request, self, "GET", path, {on_data = function(chunk) f:write(chunk) end,
      missing_ok = opts.missing_ok}, 0)
    f:close()
    if not ok then os.remove(tmp); error(res, 0) end
    if res == nil then os.remove(tmp); return nil end
    assert(os.rename(tmp, opts.file))
    local rec = record_of(res)
    rec.size = tonumber(res.headers["content-length"])
    return rec
  elseif opts.on_data then
    local res = self:request("GET", path, {on_data = opts.on_data, missing_ok = opts.missing_ok}, 0)
    if res == nil then return nil end
    return record_of(res)
  end
  local res = self:request("GET", path, {missing_ok = opts.missing_ok}, 0)
  if res == nil then return nil end
  return res.body, record_of(res)
end

--- properties(container, blob) -> {size, content_md5, content_type, tier, etag, last_modified, metadata} or nil
function Account:properties(container, name)
  local res = self:request("HEAD", blob_path(container, name), {missing_ok = true}, 0)
  if res == nil then return nil end
  local h = res.headers
  local rec = record_of(res)
  rec.size = tonumber(h["content-length"])
  rec.content_type = h["content-type"]
  rec.tier = h["x-ms-access-tier"]
  rec.metadata = {}
  for k, v in pairs(h) do
    local m = type(k) == "string" and k:match("^x%-ms%-meta%-(.+)$")
    if m then rec.metadata[m] = v end
  end
  return rec
end

--- delete(container, blob) -> true, or false when there was no such blob
function Account:delete(container, name)
  local res = self:request("DELETE", blob_path(container, name), {missing_ok = true}, 0)
  return res ~= nil
end

--- set_tier(container, blob, tier)
function Account:set_tier(container, name, tier)
  if tier ~= "Hot" and tier ~= "Cool" and tier ~= "Cold" and tier ~= "Archive" then
    usage("set_tier", "tier must be Hot, Cool, Cold or Archive")
  end
  self:request("PUT", blob_path(container, name), {query = {comp = "tier"}, headers = {["x-ms-access-tier"] = tier}}, 0)
  return true
end

local function xml_unescape(s)
  return (s:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'"):gsub("&amp;", "&"))
end

local function tag(x, name)
  local v = x:match("<" .. name .. ">(.-)</" .. name .. ">")
  return v and xml_unescape(v)
end

--- list(container [, {prefix =, page_size =, on_page =}]) -> list of {name, size, last_modified, etag, content_md5, tier}
function Account:list(container, opts)
  check_name("list", "container", container)
  opts = opts or {}
  local out, marker = {}, nil
  repeat
    local q = {restype = "container", comp = "list", prefix = opts.prefix, maxresults = opts.page_size, marker = marker}
    local res = self:request("GET", "/" .. enc_path(container), {query = q}, 0)
    local body = res.body
    for b in body:gmatch("<Blob>(.-)</Blob>") do
      local props = b:match("<Properties>(.-)</Properties>") or ""
      out[#out + 1] = {name = tag(b, "Name"), size = tonumber(tag(props, "Content%-Length")),
        last_modified = tag(props, "Last%-Modified"), etag = tag(props, "Etag"),
        content_md5 = tag(props, "Content%-MD5"), tier = tag(props, "AccessTier"),
        content_type = tag(props, "Content%-Type")}
    end
    marker = tag(body, "NextMarker")
    if opts.on_page then opts.on_page(marker) end
  until not marker or marker == ""
  return out
end

--- service_properties() -> {delete_retention = {enabled, days}, versioning, raw}
function Account:service_properties()
  local res = self:request("GET", "/", {query = {restype = "service", comp = "properties"}}, 0)
  local body = res.body
  local dr = body:match("<DeleteRetentionPolicy>(.-)</DeleteRetentionPolicy>") or ""
  return {delete_retention = {enabled = tag(dr, "Enabled") == "true", days = tonumber(tag(dr, "Days"))},
    versioning = tag(body, "IsVersioningEnabled") == "true", xml = body}
end

--- set_service_properties{delete_retention_days = n | false}. Versioning is not a data-plane
-- setting (the service ignores it there): it is ARM's blobServices/default isVersioningEnabled.
function Account:set_service_properties(p)
  if type(p) ~= "table" then usage("set_service_properties", "table expected") end
  local x = {'<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties>'}
  if p.delete_retention_days ~= nil then
    if p.delete_retention_days then
      local d = p.delete_retention_days
      if math.type(d) ~= "integer" or d < 1 or d > 365 then usage("set_service_properties", "delete_retention_days must be 1..365 or false") end
      x[#x + 1] = "<DeleteRetentionPolicy><Enabled>true</Enabled><Days>" .. d .. "</Days></DeleteRetentionPolicy>"
    else
      x[#x + 1] = "<DeleteRetentionPolicy><Enabled>false</Enabled></DeleteRetentionPolicy>"
    end
  end
  if p.versioning ~= nil then
    usage("set_service_properties", "versioning is set through ARM (blobServices/default isVersioningEnabled), not the data plane")
  end
  x[#x + 1] = "</StorageServiceProperties>"
  local body = table.concat(x)
  self:request("PUT", "/", {query = {restype = "service", comp = "properties"}, body = body,
    headers = {["Content-Type"] = "application/xml"}}, #body)
  return true
end

--- of(env) -> the environment's storage account with Entra tokens (audience storage): endpoint
-- endpoints.blob, storage.endpoint or https://<storage.account>.blob.core.windows.net
function M.of(envt)
  local st = envt.storage or {}
  local e = envt.endpoints or {}
  local endpoint = e.blob or st.endpoint or (st.account and "https://" .. st.account .. ".blob.core.windows.net")
  if not endpoint then
    error(core.error("config", string.format("environment '%s': no storage.account or endpoints.blob",
      tostring(envt.name))), 0)
  end
  return M.account{endpoint = endpoint, account = st.account, ca = e.ca,
    token = require("opsh.azure").credential(envt):auth("storage")}
end

return M
