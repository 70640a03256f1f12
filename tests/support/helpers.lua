-- Helpers the specs share. tests/ is neither on package.path nor embedded in opsh, so a spec
-- loads this file by its own location:
--   local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
-- Everything here runs inside the spec's task: waits sleep the task, commands go through opsh.proc.
-- Failures are plain error()s, which busted reports like failed assertions.
local core = require("opsh._core")
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")

local S = {}

--- catch(fn, ...) -> the error fn raised; fails when fn returns instead
function S.catch(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error", 2) end
  return err
end

--- run(cmd) -> output (stdout and stderr), exit code of /bin/sh -c cmd
function S.run(cmd)
  local r = proc.shell(cmd, {stderr = "stdout", check = false, timeout = 120})
  return r.stdout or "", r.code or -1
end

--- sh(cmd) -> its output without the trailing newlines; fails with that output unless it exits 0
function S.sh(cmd)
  local out, code = S.run(cmd)
  if code ~= 0 then error(string.format("command failed (%d): %s\n%s", code, cmd, out), 2) end
  return (out:gsub("%s+$", ""))
end

--- poll(fetch, done [, timeout = 10]) -> the last value fetch() returned: calls it until done(value)
-- or the timeout, sleeping the task 20 ms between calls. The caller asserts on the value.
function S.poll(fetch, done, timeout)
  local deadline = core.hrtime() + (timeout or 10)
  while true do
    local v = fetch()
    if done(v) or core.hrtime() > deadline then return v end
    core.sleep(0.02)
  end
end

--- wait_until(pred, what [, timeout = 20]): until pred() is true; fails naming `what` after the timeout
function S.wait_until(pred, what, timeout)
  local deadline = core.hrtime() + (timeout or 20)
  while not pred() do
    if core.hrtime() > deadline then error("timed out waiting for " .. what, 2) end
    core.sleep(0.01)
  end
end

--- alive(pid) -> true while pid is a running process (not gone, not a zombie)
function S.alive(pid)
  -- a process that exits while /proc is read gives ESRCH: gone as well
  local ok, stat = pcall(fs.read, "/proc/" .. math.tointeger(pid) .. "/stat", {missing_ok = true})
  return ok and stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- ---- deep equality that tells integers from floats, arrays from objects, -0.0 from 0.0 ----

--- strict_same(a, b) -> true | false, where and why they differ (NaN equals NaN)
function S.strict_same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b) end
    if a ~= b and not (a ~= a and b ~= b) then return false, path .. ": " .. a .. " vs " .. b end
    if a == 0 and b == 0 and 1 / a ~= 1 / b then return false, path .. ": signed zero" end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. string.format("%q vs %q", tostring(a), tostring(b)) end
    return true
  end
  if json.is_array(a) ~= json.is_array(b) and (next(a) == nil or next(b) == nil) then
    return false, path .. ": array vs object"
  end
  for k, v in pairs(a) do
    local ok, why = S.strict_same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end

--- assert_strict(expected, actual): fails with where they differ
function S.assert_strict(expected, actual)
  local ok, why = S.strict_same(expected, actual)
  if not ok then error(why, 2) end
end

-- ---- certificates made with the openssl command line (a peer independent of opsh.crypto) ----

-- openssl <args...> [with a new key: EC P-256, or RSA 2048 with rsa] in dir
local function openssl(dir, args, key_opts)
  local argv = {"openssl"}
  table.move(args, 1, #args, 2, argv)
  if key_opts then
    local key = key_opts.rsa and {"-newkey", "rsa:2048"}
      or {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"}
    table.move(key, 1, #key, #argv + 1, argv)
  end
  local r = proc.run({argv = argv, cwd = dir, stderr = "stdout", check = false, timeout = 60})
  if r.code ~= 0 then error(table.concat(argv, " ") .. " failed: " .. r.stdout, 3) end
end

--- ca(dir, name [, {rsa = false}]) -> {cert = dir/name.pem, key = dir/name.key}: a CA as strict
-- clients want it (basicConstraints critical, keyCertSign), CN = name, valid 2 days
function S.ca(dir, name, opts)
  fs.mkdir(dir, {parents = true})
  openssl(dir, {"req", "-x509", "-nodes", "-keyout", name .. ".key", "-out", name .. ".pem", "-days", "2",
    "-subj", "/CN=" .. name, "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign"}, opts or {})
  return {cert = dir .. "/" .. name .. ".pem", key = dir .. "/" .. name .. ".key"}
end

--- cert(dir, name, ca, {subject = "/CN=...", ext = "subjectAltName=...\nextendedKeyUsage=...", rsa = false})
-- -> {cert = dir/name.pem, key = dir/name.key}: an end-entity certificate signed by ca (from S.ca),
-- basicConstraints critical CA:FALSE, digitalSignature (and keyEncipherment for RSA), valid 2 days
function S.cert(dir, name, ca, opts)
  local rsa = opts.rsa
  fs.write(dir .. "/" .. name .. ".ext", (opts.ext or "") .. "\nbasicConstraints=critical,CA:FALSE\n"
    .. "keyUsage=critical,digitalSignature" .. (rsa and ",keyEncipherment" or "") .. "\n"
    .. "authorityKeyIdentifier=keyid\n")
  openssl(dir, {"req", "-new", "-nodes", "-keyout", name .. ".key", "-out", name .. ".csr", "-subj", opts.subject},
    opts)
  openssl(dir, {"x509", "-req", "-in", name .. ".csr", "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
    "-out", name .. ".pem", "-days", "2", "-extfile", name .. ".ext"})
  return {cert = dir .. "/" .. name .. ".pem", key = dir .. "/" .. name .. ".key"}
end

--- server_certs(dir) -> {cert, key, ca, ca_key, other_ca}: a CA, an unrelated CA, and a server
-- certificate for 127.0.0.1 and localhost signed by the first (paths under dir)
function S.server_certs(dir)
  local ca = S.ca(dir, "ca")
  local other = S.ca(dir, "other-ca")
  local server = S.cert(dir, "server", ca, {subject = "/CN=localhost",
    ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"})
  return {cert = server.cert, key = server.key, ca = ca.cert, ca_key = ca.key, other_ca = other.cert}
end

--- silent_server() -> process, port: a TCP server on 127.0.0.1 that accepts every connection, reads
-- until the client hangs up and never answers (a peer that hangs a client). Stop it with process:stop().
function S.silent_server()
  local p = proc.spawn{argv = {"python3", "-c", table.concat({
    "import socket, threading",
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(64)",
    "print(s.getsockname()[1], flush=True)",
    "def hold(c):",
    "    while c.recv(65536): pass",
    "while True:",
    "    c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()"}, "\n")},
    stdout = "pipe"}
  return p, tonumber(p:lines()())
end

return S
