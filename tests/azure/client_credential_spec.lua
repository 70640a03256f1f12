-- opsh.azure credentials against the stand-in token endpoint and IMDS (tests/azure/mock_arm.lua):
-- each source of the chain, the order and the remembered source, the token cache per audience and
-- its refresh before expiry, one fetch in flight, a certificate's client assertion (x5t#S256), the
-- federated token file re-read, the az CLI through opsh.proc, and no secret in an error.
local opsh = require("opsh")
local fs = require("opsh.fs")
local crypto = require("opsh.crypto")
local credential = require("opsh.azure.credential")
local cloud = require("opsh.azure.cloud")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/azure"
local S = dofile(here .. "/../support/helpers.lua")
local mock_mod = dofile(here .. "/mock_arm.lua")

describe("opsh.azure credentials", function()
  local mock, tmp

  local function chain(order, vars, opts)
    opts = opts or {}
    local envt = mock.env({azure = {client_id = "client-1", credentials = order}})
    if opts.no_secret then envt.twin = nil; envt.secrets = {provider = "env"} end
    opts.getenv = function(name) return vars and vars[name] end
    return credential.new(envt, opts)
  end

  lazy_setup(function()
    mock = mock_mod.start()
    tmp = fs.tmpdir("opsh-azure-cred")
  end)
  lazy_teardown(function()
    mock.close()
    fs.rmtree(tmp)
  end)

  it("client secret: the form carries the encoded secret; the token is a secret, cached per audience", function()
    local c = chain({"client_secret"})
    local before = mock.count("token")
    local tok, exp = c:token("arm")
    assert.is_true(opsh.is_secret(tok))
    assert.truthy(exp > os.time() + 3000)
    local form = mock.forms[#mock.forms]
    assert.equal("s3cret+/=&x", form.client_secret)
    assert.equal("client-1", form.client_id)
    assert.equal("https://management.azure.com/.default", form.scope)
    assert.equal(tok, (c:token("arm")))
    c:token("https://management.azure.com/")
    assert.equal(before + 1, mock.count("token"))
    c:token("keyvault")
    assert.equal("https://vault.azure.net/.default", mock.forms[#mock.forms].scope)
    assert.equal(before + 2, mock.count("token"))
  end)

  it("refreshes a token that is within the margin of its expiry", function()
    mock.ttl = 100
    local c = chain({"client_secret"}, nil, {margin = 300})
    local before = mock.count("token")
    c:token("arm")
    c:token("arm")
    assert.equal(before + 2, mock.count("token"))
    mock.ttl = 3600
  end)

  it("one fetch in flight per audience however many tasks ask", function()
    local c = chain({"client_secret"})
    local before = mock.count("token")
    mock.token_delay = 0.1
    local got = opsh.parallel({1, 2, 3, 4, 5, 6, 7, 8}, function(i)
      return (c:token(i % 2 == 0 and "arm" or "storage"))
    end)
    mock.token_delay = 0
    assert.equal(before + 2, mock.count("token"))
    assert.equal(got[2], got[4])
    assert.equal(got[1], got[3])
  end)

  it("a refused secret is an azure error with Entra's code, and the secret is nowhere in it", function()
    local envt = mock.env()
    envt.twin.secrets["azure-client-secret"] = "wrong-secret-value"
    local c = credential.new(envt, {getenv = function() return nil end})
    local err = S.catch(c.token, c, "arm")
    assert.equal("azure", err.kind)
    assert.equal("invalid_client", err.code)
    assert.truthy(err.message:find("AADSTS7000215", 1, true))
    assert.is_nil(require("opsh.json").encode(err):find("wrong-secret-value", 1, true))
  end)

  it("client certificate: a PS256 assertion with x5t#S256 for the token URL", function()
    local ca = crypto.x509.create_ca{cn = "spec CA"}
    local leaf = crypto.x509.create_cert{ca_cert = ca.cert_pem, ca_key = ca.key_pem, cn = "client-1", client = true,
      key_type = "rsa", bits = 2048}
    local path = tmp .. "/client.pem"
    fs.write(path, leaf.cert_pem)
    local f = fs.open(path, "a")
    f:write(leaf.key_pem)
    f:close()
    local seen
    mock.accept = function(form)
      if form.client_assertion_type ~= "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" then return false end
      local claims, header = crypto.jwt.verify(form.client_assertion, leaf.cert_pem,
        {algs = {"PS256"}, audience = mock.url .. "/tenant-1/oauth2/v2.0/token"})
      seen = {claims = claims, header = header}
      return claims.iss == "client-1" and claims.sub == "client-1"
    end
    local c = chain({"client_certificate"}, {AZURE_CLIENT_CERTIFICATE_PATH = path})
    assert.is_true(opsh.is_secret((c:token("arm"))))
    local info = crypto.x509.parse(leaf.cert_pem)
    assert.equal(crypto.base64url_encode(crypto.hex_decode(info.sha256_thumbprint)), seen.header["x5t#S256"])
    assert.truthy(seen.claims.exp - seen.claims.nbf <= 600)
    mock.accept = function(f2) return f2.client_secret == "s3cret+/=&x" end
  end)

  it("workload identity: the federated token file is read again for the next token", function()
    local path = tmp .. "/federated"
    local assertions = {}
    mock.accept = function(form)
      assertions[#assertions + 1] = form.client_assertion
      return form.client_assertion_type ~= nil
    end
    fs.write(path, "federated-one\n")
    local c = chain({"workload_identity"}, {AZURE_FEDERATED_TOKEN_FILE = path})
    c:token("arm")
    fs.write(path, "federated-two\n")   -- the kubelet rotated it
    c:token("storage")
    assert.same({"federated-one", "federated-two"}, assertions)
    mock.accept = function(f2) return f2.client_secret == "s3cret+/=&x" end
  end)

  it("managed identity through IMDS, with the Metadata header", function()
    local c = chain({"managed_identity"})
    local before = mock.count("imds")
    local tok, exp = c:token("arm")
    assert.is_true(opsh.is_secret(tok))
    assert.truthy(exp > os.time())
    assert.equal(before + 1, mock.count("imds"))
  end)

  it("the az CLI last: az account get-access-token through opsh.proc, nothing secret on its argv", function()
    local az = tmp .. "/az"
    fs.write(az, "#!/bin/sh\necho \"$@\" > " .. tmp .. "/az.args\n"
      .. "printf '{\"accessToken\": \"cli-token\", \"expiresOn\": \"2099-01-01 00:00:00.000000\", "
      .. "\"expires_on\": 4070908800, \"tokenType\": \"Bearer\"}'\n", {mode = tonumber("755", 8)})
    local c = chain({"client_secret", "azure_cli"}, nil, {az = az, no_secret = true})
    local tok, exp = c:token("arm")
    assert.equal(opsh.secret("cli-token"), tok)
    assert.equal(4070908800, exp)
    assert.equal("azure_cli", c.chosen)
    assert.equal("account get-access-token --resource https://management.azure.com/ --output json",
      (fs.read(tmp .. "/az.args"):gsub("%s+$", "")))
  end)

  it("goes down the order, remembers the first source that works, and says why none did", function()
    local c = chain({"workload_identity", "client_certificate", "client_secret"})
    c:token("arm")
    assert.equal("client_secret", c.chosen)
    local none = chain({"workload_identity", "client_secret"}, nil, {no_secret = true})
    local err = S.catch(none.token, none, "arm")
    assert.equal("azure", err.kind)
    assert.equal("CredentialUnavailable", err.code)
    assert.truthy(err.message:find("AZURE_FEDERATED_TOKEN_FILE", 1, true))
    assert.truthy(err.message:find("AZURE_CLIENT_SECRET", 1, true))
    local bad = S.catch(credential.new, {name = "x", azure = {credentials = {"client_secrets"}}})
    assert.equal("config", bad.kind)
    assert.truthy(bad.message:find("client_secrets", 1, true))
  end)

  it("cloud endpoints per environment: public, sovereign, overridden", function()
    assert.equal("https://management.azure.com", cloud.of({}).arm)
    local gov = cloud.of({azure = {cloud = "usgov"}})
    assert.equal("https://management.usgovcloudapi.net", gov.arm)
    assert.equal("https://management.usgovcloudapi.net/", cloud.audience(gov, "arm"))
    assert.equal(mock.url, cloud.of(mock.env()).arm)
    assert.equal("config", S.catch(cloud.of, {name = "x", azure = {cloud = "mars"}}).kind)
  end)
end)
