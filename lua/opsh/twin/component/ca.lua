-- twin component "ca": the twin's certificate authority and the one server certificate every
-- component serves TLS with (SANs localhost and 127.0.0.1). The CA survives `down`, so clients
-- that were told to trust it keep working across restarts; `reset` makes a new one.
local crypto = require("opsh.crypto")
local fs = require("opsh.fs")

local M = {name = "ca", phase = 1, required = true}

local PRIVATE = tonumber("600", 8)

function M.start(tw)
  local dir = tw.dir .. "/ca"
  fs.mkdir(dir, {parents = true, mode = tonumber("700", 8)})
  local ca_pem, ca_key = dir .. "/ca.pem", dir .. "/ca.key"
  if not (fs.exists(ca_pem) and fs.exists(ca_key)) then
    local ca = crypto.x509.create_ca({cn = "opsh twin CA", org = "opsh twin", days = 3650})
    fs.write(ca_key, ca.key_pem, {mode = PRIVATE})
    fs.write(ca_pem, ca.cert_pem)
  end
  local server = crypto.x509.create_cert({ca_cert = fs.read(ca_pem), ca_key = fs.read(ca_key),
    cn = "localhost", sans = {"localhost", "127.0.0.1"}, days = 825, server = true})
  fs.write(dir .. "/server.key", server.key_pem, {mode = PRIVATE})
  fs.write(dir .. "/server.pem", server.cert_pem)
  return {ca = ca_pem, ca_key = ca_key, cert = dir .. "/server.pem", key = dir .. "/server.key"}
end

function M.check(tw, rec)
  if fs.exists(rec.ca) and fs.exists(rec.cert) then return true, "certificates in " .. tw.dir .. "/ca" end
  return false, "certificates missing"
end

return M
