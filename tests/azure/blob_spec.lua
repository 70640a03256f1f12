-- opsh.azure.blob against a real Azurite started here (HTTPS with a test CA, `--oauth basic` so
-- bearer tokens are checked for issuer, audience and expiry): Shared Key string-to-sign rules,
-- containers, puts from a string / file / process stream in blocks, gets to a string / file /
-- callback, paged listing, tier, delete, service properties, auth failures, dry-run, and the
-- real az CLI reading what opsh wrote and the reverse.
local opsh = require("opsh")
local proc = require("opsh.proc")
local net = require("opsh.net")
local fs = require("opsh.fs")
local crypto = require("opsh.crypto")
local dryrun = require("opsh.dryrun")
local http = require("opsh.http")
local azurite = require("opsh.twin.component.azurite")
local blob = require("opsh.azure.blob")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/azure"
local S = dofile(here .. "/../support/helpers.lua")

local NAME = azurite.account
local KEY = opsh.secret(azurite.account_key)

describe("opsh.azure.blob", function()
  local tmp, server, endpoint, certs, signer

  local function account(opts)
    opts = opts or {}
    opts.endpoint, opts.account, opts.ca = endpoint, NAME, certs.ca
    if opts.token == nil and opts.key == nil then opts.key = KEY end
    return blob.account(opts)
  end

  local function token(claims)
    local c = {aud = "https://storage.azure.com", iss = "https://sts.windows.net/3b5e8c1a-7d2f-4e9b-a6c0-1f4d8e2b9a73/",
      oid = "0f6d2b7e-5c1a-4d3e-9b8f-7a6c5d4e3f21", tid = "3b5e8c1a-7d2f-4e9b-a6c0-1f4d8e2b9a73",
      iat = os.time() - 60, nbf = os.time() - 60, exp = os.time() + 3600}
    for k, v in pairs(claims or {}) do c[k] = v end
    return crypto.jwt.sign(c, signer)
  end

  lazy_setup(function()
    tmp = fs.tmpdir("opsh-blob-spec")
    certs = S.server_certs(tmp .. "/certs")
    signer = crypto.keys.generate{type = "rsa", bits = 2048}
    local port = net.free_port()
    fs.mkdir(tmp .. "/data")
    server = proc.spawn{argv = {azurite.binary(), "--blobHost", "127.0.0.1", "--blobPort", port,
      "--location", tmp .. "/data", "--silent", "--skipApiVersionCheck", "--loose", "--oauth", "basic",
      "--cert", certs.cert, "--key", certs.key}, stdout_file = tmp .. "/azurite.log", stderr = "stdout"}
    S.wait_until(function() return net.port_open("127.0.0.1", port) end, "azurite", 30)
    endpoint = string.format("https://127.0.0.1:%d/%s", port, NAME)
  end)

  lazy_teardown(function()
    if server then server:kill(); server:wait() end
    if tmp then fs.rmtree(tmp) end
  end)

  describe("Shared Key string-to-sign", function()
    it("leaves Content-Length empty when it is 0, sorts x-ms headers and decoded query parameters", function()
      local sts = blob.string_to_sign("put", "acct", "/acct/c/b%20x", {comp = "block", blockid = "AA%3D%3D", Restype = "x"},
        {["content-length"] = 0, ["content-type"] = "text/plain", ["x-ms-version"] = "2023-11-03",
         ["x-ms-date"] = "Sat, 05 Dec 2026 13:54:06 GMT", ["x-ms-blob-type"] = "BlockBlob", range = "bytes=0-1"})
      assert.equal(table.concat({"PUT", "", "", "", "", "text/plain", "", "", "", "", "", "bytes=0-1",
        "x-ms-blob-type:BlockBlob", "x-ms-date:Sat, 05 Dec 2026 13:54:06 GMT", "x-ms-version:2023-11-03",
        "/acct/acct/c/b%20x", "blockid:AA==", "comp:block", "restype:x"}, "\n"), sts)
      local with_len = blob.string_to_sign("PUT", "a", "/a", nil, {["content-length"] = 12})
      assert.equal("PUT\n\n\n12\n", with_len:sub(1, 9))
    end)
  end)

  describe("with Shared Key", function()
    it("creates a container only when it is missing", function()
      local a = account()
      assert.is_true(a:create_container("backups"))
      assert.is_false(a:create_container("backups"))
    end)

    it("puts and gets a small blob, recording the service's Content-MD5", function()
      local a = account()
      a:create_container("small")
      local rec = a:put("small", "dir/hello world.txt", {data = "hello, blob", content_type = "text/plain",
        metadata = {origin = "spec"}})
      -- MD5("hello, blob"), as `printf 'hello, blob' | openssl md5 -binary | base64` gives it
      assert.equal(proc.run{argv = {"sh", "-c", "printf 'hello, blob' | openssl md5 -binary | base64"}}.stdout:gsub("%s", ""),
        rec.content_md5)
      local body = a:get("small", "dir/hello world.txt")
      assert.equal("hello, blob", body)
      local p = a:properties("small", "dir/hello world.txt")
      assert.equal(11, p.size)
      assert.equal("text/plain", p.content_type)
      assert.equal("spec", p.metadata.origin)
      assert.is_nil(a:get("small", "nope", {missing_ok = true}))
      assert.is_nil(a:properties("small", "nope"))
    end)

    it("puts a file in parallel blocks and gets it back to a file, byte-identical", function()
      local a = account()
      a:create_container("files")
      local src = tmp .. "/src.bin"
      local f = assert(io.open(src, "wb"))
      for i = 1, 200 do f:write(crypto.sha256(tostring(i)):rep(1024)) end   -- 6.4 MB, varied
      f:close()
      local rec = a:put("files", "src.bin", {file = src, block_size = 1024 * 1024, parallel = 3, single_put_max = 0})
      assert.equal(7, rec.blocks)
      assert.equal(fs.stat(src).size, rec.size)
      assert.equal("table", type(rec.block_crc64))   -- what the service reported per block (Azurite: none)
      -- a block list gets no MD5 from the service: the client's, kept as the blob's Content-MD5
      local md5 = proc.run{argv = {"sh", "-c", "openssl md5 -binary < \"$1\" | base64", "sh", src}}.stdout:gsub("%s", "")
      assert.equal(md5, a:properties("files", "src.bin").content_md5)
      local got = a:get("files", "src.bin", {file = tmp .. "/back.bin"})
      assert.equal(rec.size, got.size)
      assert.equal(crypto.sha256_hex(fs.read(src)), crypto.sha256_hex(fs.read(tmp .. "/back.bin")))
      local n, seen = 0, 0
      a:get("files", "src.bin", {on_data = function(chunk) n = n + 1; seen = seen + #chunk end})
      assert.equal(rec.size, seen)
      assert.is_true(n >= 1)
    end)

    it("puts a process's stdout as it is produced, in blocks, and commits only when the process succeeds", function()
      local a = account()
      a:create_container("streams")
      local p = proc.spawn{argv = {"seq", "1", "700000"}, stdout = "pipe"}
      local rec = a:put("streams", "seq.txt", {process = p, block_size = 512 * 1024, parallel = 2})
      local want = proc.run{argv = {"seq", "1", "700000"}}.stdout
      assert.equal(#want, rec.size)
      assert.equal(math.ceil(#want / (512 * 1024)), rec.blocks)
      assert.equal(crypto.sha256_hex(want), crypto.sha256_hex(a:get("streams", "seq.txt")))
      assert.equal(crypto.base64_encode(crypto.hex_decode(proc.run{argv = {"md5sum"}, stdin = want}.stdout:match("%x+"))),
        a:properties("streams", "seq.txt").content_md5)

      local bad = proc.spawn{argv = {"sh", "-c", "seq 1 1000; exit 3"}, stdout = "pipe"}
      local ok, err = pcall(a.put, a, "streams", "failed.txt", {process = bad, block_size = 1024})
      assert.is_false(ok)
      assert.equal("azure", err.kind)
      assert.matches("exit 3", err.message)
      assert.is_nil(a:properties("streams", "failed.txt"))
    end)

    it("puts from a generator function and an empty one", function()
      local a = account()
      a:create_container("gen")
      local i = 0
      local rec = a:put("gen", "g", {source = function() i = i + 1; if i <= 10 then return ("%05d"):format(i):rep(100) end end,
        block_size = 1000})
      assert.equal(5000, rec.size)
      assert.equal(5, rec.blocks)
      assert.equal(("%05d"):format(10):rep(100), a:get("gen", "g"):sub(4501))
      rec = a:put("gen", "empty", {source = function() return nil end})
      assert.equal(0, rec.size)
      assert.equal("", a:get("gen", "empty"))
    end)

    it("lists with a prefix over several pages", function()
      local a = account()
      a:create_container("listing")
      for i = 1, 5 do a:put("listing", "logs/" .. i, {data = ("x"):rep(i)}) end
      a:put("listing", "other", {data = "o"})
      local pages = 0
      local list = a:list("listing", {prefix = "logs/", page_size = 2, on_page = function() pages = pages + 1 end})
      assert.equal(3, pages)
      assert.equal(5, #list)
      for i, b in ipairs(list) do
        assert.equal("logs/" .. i, b.name)
        assert.equal(i, b.size)
      end
      assert.equal(6, #a:list("listing"))
    end)

    it("sets the tier, deletes, and sets the delete retention policy", function()
      local a = account()
      a:create_container("tiers")
      a:put("tiers", "t", {data = "t"})
      a:set_tier("tiers", "t", "Cool")
      assert.equal("Cool", a:properties("tiers", "t").tier)
      assert.is_true(a:delete("tiers", "t"))
      assert.is_false(a:delete("tiers", "t"))
      a:set_service_properties{delete_retention_days = 7}
      local sp = a:service_properties()
      assert.is_true(sp.delete_retention.enabled)
      assert.equal(7, sp.delete_retention.days)
      a:set_service_properties{delete_retention_days = false}
      assert.is_false(a:service_properties().delete_retention.enabled)
      local ok, err = pcall(a.set_tier, a, "tiers", "t", "Lukewarm")
      assert.is_false(ok)
      assert.equal("usage", err.kind)
    end)

    it("a wrong key is one clear line, without the key", function()
      local a = account{key = opsh.secret(crypto.base64_encode(("k"):rep(64)))}
      local ok, err = pcall(a.get, a, "small", "dir/hello world.txt")
      assert.is_false(ok)
      assert.equal("azure", err.kind)
      assert.equal("azure", err.kind, err.message)
      -- Azure answers 403 AuthenticationFailed; Azurite with --oauth 400 InvalidAuthenticationInfo
      assert.is_true(err.status == 403 or err.status == 400, err.message)
      assert.is_nil(err.message:find("\n"))
    end)

    it("in a dry-run records the put and sends nothing", function()
      local a = account()
      local records = dryrun.with(function()
        a:put("dry", "x", {data = "x"})
        a:put("dry", "y", {source = function() error("must not be called") end})
      end)
      assert.equal(2, #records)
      assert.matches("PUT", records[1].action)
      assert.is_nil(a:properties("dry", "x"))
      assert.is_true(a:create_container("dry"))   -- it was not created by the dry-run
    end)
  end)

  describe("CRC-64 on Put Block", function()
    -- a server that keeps each Put Block's bytes and x-ms-content-crc64, and answers a CRC-64 of its own
    -- choosing (`answer`: nil for none, "same" for the block's, anything else as it is)
    local function capture(answer)
      local seen, committed = {}, {n = 0}
      local srv = require("opsh.server").listen{host = "127.0.0.1", port = 0}
      srv:route("PUT", "/{rest...}", function(req)
        if req.query.comp == "block" then
          local crc = req.headers["x-ms-content-crc64"]
          seen[#seen + 1] = {body = req.body, crc = crc}
          local out = answer == "same" and crc or answer
          return {status = 201, headers = {["x-ms-content-crc64"] = out}, body = ""}
        end
        committed.n = committed.n + 1
        return {status = 201, headers = {ETag = '"0x1"'}, body = ""}
      end)
      local a = blob.account{endpoint = srv.url .. "/" .. NAME, account = NAME, key = KEY}
      return a, seen, committed, srv
    end

    it("sends each block in memory with its CRC-64 and none for a file range read from disk", function()
      local a, seen, committed, srv = capture("same")
      local parts = {}
      for i = 1, 256 do parts[i] = string.format("%04d", i) end
      local data = table.concat(parts) .. "tail"   -- no 300-byte piece occurs twice
      local rec = a:put("c", "b", {data = data, block_size = 300, single_put_max = 0, parallel = 2, md5 = false})
      assert.equal(4, #seen)
      assert.equal(1, committed.n)
      local joined = {}
      for i, blk in ipairs(seen) do
        joined[i] = blk.body
        assert.equal(crypto.crc64_base64(crypto.crc64(blk.body)), blk.crc)
      end
      table.sort(joined, function(x, y) return data:find(x, 1, true) < data:find(y, 1, true) end)
      assert.equal(data, table.concat(joined))
      assert.equal(4, #rec.block_crc64)
      local file = tmp .. "/crc-range.bin"
      fs.write(file, data)
      seen[1], seen[2], seen[3], seen[4] = nil, nil, nil, nil
      a:put("c", "f", {file = file, block_size = 300, single_put_max = 0, md5 = false})
      assert.equal(4, #seen)
      for _, blk in ipairs(seen) do assert.is_nil(blk.crc) end
      srv:close()
    end)

    it("a block the service stored with another CRC-64 fails the put; nothing is committed", function()
      local a, seen, committed, srv = capture("AAAAAAAAAAA=")
      local ok, err = pcall(a.put, a, "c", "b", {data = string.rep("z", 900), block_size = 300, single_put_max = 0,
        md5 = false})
      assert.is_false(ok)
      assert.equal("azure", err.kind)
      assert.equal("Crc64Mismatch", err.code)
      assert.truthy(err.message:find("nothing committed", 1, true))
      assert.truthy(#seen >= 1)
      assert.equal(0, committed.n)
      srv:close()
    end)

    it("Azurite accepts the blocks with their CRC-64", function()
      local a = account()
      a:create_container("crc")
      local data = crypto.random_bytes(100000)
      a:put("crc", "b", {data = data, block_size = 30000, single_put_max = 0})
      assert.equal(data, a:get("crc", "b"))
    end)
  end)

  describe("with bearer tokens", function()
    it("works with a valid token and refuses an expired or wrong-audience one in one line", function()
      local good = account{token = http.bearer(function() return token() end)}
      good:create_container("oauth")
      good:put("oauth", "t", {data = "via token"})
      assert.equal("via token", good:get("oauth", "t"))
      for _, claims in ipairs({{exp = os.time() - 600, nbf = os.time() - 7200, iat = os.time() - 7200},
                               {aud = "https://vault.azure.net"}}) do
        local bad = account{token = http.bearer(function() return token(claims) end)}
        local ok, err = pcall(bad.get, bad, "oauth", "t")
        assert.is_false(ok)
        assert.equal("azure", err.kind)
        assert.is_true(err.status == 401 or err.status == 403)
        assert.is_nil(err.message:find("\n"))
        assert.is_nil(err.message:find("eyJ", 1, true))
      end
    end)
  end)

  describe("against the az CLI", function()
    local function az(args)
      local env = {AZURE_STORAGE_CONNECTION_STRING = string.format(
          "DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", NAME, azurite.account_key, endpoint),
        REQUESTS_CA_BUNDLE = certs.ca, AZURE_CONFIG_DIR = tmp .. "/az", AZURE_CORE_COLLECT_TELEMETRY = "0",
        PATH = os.getenv("PATH"), HOME = tmp}
      local argv = {"az", "storage", "blob"}
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      argv[#argv + 1] = "--only-show-errors"
      return proc.run{argv = argv, env = env, timeout = 120}
    end

    it("az downloads what opsh uploaded byte-identical, and opsh reads what az uploaded", function()
      local a = account()
      a:create_container("crosscheck")
      local src = tmp .. "/cross.bin"
      local f = assert(io.open(src, "wb"))
      for i = 1, 96 do f:write(crypto.sha256("c" .. i):rep(1024)) end  -- 3 MB
      f:close()
      a:put("crosscheck", "from-opsh", {file = src, block_size = 1024 * 1024, single_put_max = 0})
      az{"download", "-c", "crosscheck", "-n", "from-opsh", "-f", tmp .. "/az-down.bin"}
      assert.equal(crypto.sha256_hex(fs.read(src)), crypto.sha256_hex(fs.read(tmp .. "/az-down.bin")))
      az{"upload", "-c", "crosscheck", "-n", "from-az", "-f", src}
      a:get("crosscheck", "from-az", {file = tmp .. "/opsh-down.bin"})
      assert.equal(crypto.sha256_hex(fs.read(src)), crypto.sha256_hex(fs.read(tmp .. "/opsh-down.bin")))
    end)
  end)
end)
