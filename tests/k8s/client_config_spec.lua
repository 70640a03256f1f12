-- opsh.k8s configuration without a server: kubeconfig files merged by kubectl's rules, contexts and
-- namespaces, CA/cert/key from files or data, tokens and tokenFile re-reads, exec credential plugins
-- (a real script as the plugin), in-cluster config from files, k8s.from_kubeconfig.
local opsh = require("opsh")
local fs = require("opsh.fs")
local json = require("opsh.json")
local proc = require("opsh.proc")
local runtime = require("opsh.runtime")
local crypto = require("opsh.crypto")
local k8s = require("opsh.k8s")
local credentials = require("opsh.k8s.credentials")
local kubeconfig = require("opsh.k8s.kubeconfig")

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/k8s"
local S = dofile(here .. "/../support/helpers.lua")

local function resolved(text, opts)
  return kubeconfig.resolve(kubeconfig.from_string(text), opts)
end

local function config(user, cluster_extra)
  return string.format([[
apiVersion: v1
kind: Config
current-context: ctx
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
%s
contexts:
- name: ctx
  context: {cluster: c, user: u}
users:
- name: u
  user:
%s
]], cluster_extra or "", user)
end

describe("opsh.k8s configuration", function()
  local tmp

  before_each(function() tmp = fs.tmpdir("opsh-k8s-config") end)
  after_each(function() fs.rmtree(tmp) end)

  -- run a chunk in a child opsh with the given environment; returns its decoded JSON output
  local function child(chunk, env_add)
    local r = proc.run{argv = {runtime.exe(), "-e", chunk}, env_add = env_add, check = false}
    assert.are.equal(0, r.code, r.stderr)
    return json.decode(r.stdout)
  end

  it("merges KUBECONFIG files: the first file naming an entry wins it whole, missing files are skipped", function()
    fs.write(tmp .. "/a.yaml", [[
apiVersion: v1
kind: Config
current-context: ctx-a
clusters:
- name: shared
  cluster: {server: "https://a.example:6443"}
contexts:
- name: ctx-a
  context: {cluster: shared, user: red-user, namespace: prod}
users:
- name: red-user
  user: {token: from-a}
]])
    fs.write(tmp .. "/b.yaml", [[
apiVersion: v1
kind: Config
current-context: ctx-b
clusters:
- name: shared
  cluster: {server: "https://b.example:6443", insecure-skip-tls-verify: true}
- name: only-b
  cluster: {server: "https://only-b.example"}
contexts:
- name: ctx-b
  context: {cluster: only-b, user: red-user}
users:
- name: red-user
  user: {token: from-b, username: bob}
]])
    local out = child([[
      local k8s = require("opsh.k8s")
      local kc = require("opsh.k8s.kubeconfig")
      local cfg, files = kc.load()
      local a = kc.resolve(cfg, {})
      local b = kc.resolve(cfg, {context = "ctx-b", namespace = "ops"})
      print(require("opsh.json").encode({contexts = k8s.contexts(), files = #files,
        a = {server = a.server, ns = a.namespace, user = a.user.username or "none", insecure = a.cluster["insecure-skip-tls-verify"] or false},
        b = {server = b.server, ns = b.namespace}, c = k8s.client{context = "ctx-b"}.namespace}))
    ]], {KUBECONFIG = tmp .. "/a.yaml:" .. tmp .. "/missing.yaml:" .. tmp .. "/b.yaml:" .. tmp .. "/a.yaml"})
    assert.are.equal(2, out.files)
    assert.are.same({"ctx-a", "ctx-b"}, {out.contexts[1].name, out.contexts[2].name})
    assert.is_true(out.contexts[1].current)
    -- cluster "shared" and user "red-user" come whole from a.yaml: b's fields are dropped
    assert.are.same({server = "https://a.example:6443", ns = "prod", user = "none", insecure = false}, out.a)
    assert.are.same({server = "https://only-b.example", ns = "ops"}, out.b)
    assert.are.equal("default", out.c)
  end)

  it("reads ~/.kube/config without KUBECONFIG, and an explicit file must exist", function()
    fs.mkdir(tmp .. "/.kube")
    fs.write(tmp .. "/.kube/config", config("    token: t"))
    local out = child([[print(require("opsh.json").encode({ctx = require("opsh.k8s").client().context}))]],
      {HOME = tmp, KUBECONFIG = false})
    assert.are.equal("ctx", out.ctx)
    local err = S.catch(k8s.client, {kubeconfig = tmp .. "/nope.yaml"})
    assert.are.equal("config", err.kind)
    assert.matches("nope.yaml does not exist", err.message)
  end)

  it("names what is missing: an unknown context, cluster or user", function()
    local err = S.catch(k8s.from_kubeconfig, config("    token: t"), {context = "prod"})
    assert.are.equal("config", err.kind)
    assert.are.equal("context 'prod' is not in the kubeconfig (known: ctx)", err.message)
    err = S.catch(k8s.from_kubeconfig, (config("    token: t"):gsub("cluster: c,", "cluster: nope,")))
    assert.matches("names cluster 'nope', which is not in the kubeconfig", err.message)
    err = S.catch(k8s.from_kubeconfig, "apiVersion: v1\nkind: Config\n")
    assert.matches("no context is defined", err.message)
    err = S.catch(k8s.from_kubeconfig, 42)
    assert.are.equal("usage", err.kind)
    err = S.catch(k8s.client, {contxt = "x"})
    assert.are.equal("usage", err.kind)
    assert.matches("unknown option 'contxt'", err.message)
  end)

  it("resolves relative paths against the kubeconfig's directory and reads CA, cert and key files", function()
    local certs = S.server_certs(tmp)
    fs.mkdir(tmp .. "/sub")
    fs.write(tmp .. "/sub/config", config("    client-certificate: ../server.pem\n    client-key: ../server.key",
      "    certificate-authority: ../ca.pem"))
    local r = kubeconfig.resolve((kubeconfig.load(tmp .. "/sub/config")), {})
    assert.are.equal(tmp .. "/sub/../ca.pem", r.cluster["certificate-authority"])
    local t = credentials.for_user(r)
    assert.are.equal(fs.read(certs.ca), t.ca)
    assert.are.equal(fs.read(tmp .. "/server.pem"), t.cert)
    assert.is_true(opsh.is_secret(t.key))
    assert.is_nil(t.auth)
  end)

  it("takes CA, certificate and key from base64 data, the key as a secret", function()
    local ca, crt = "-----BEGIN CERTIFICATE-----\nCA\n", "-----BEGIN CERTIFICATE-----\nME\n"
    local key = "-----BEGIN PRIVATE KEY-----\nK\n"
    local t = credentials.for_user(resolved(config(string.format(
      "    client-certificate-data: %s\n    client-key-data: %s", crypto.base64_encode(crt), crypto.base64_encode(key)),
      "    certificate-authority-data: " .. crypto.base64_encode(ca))))
    assert.are.equal(ca, t.ca)
    assert.are.equal(crt, t.cert)
    assert.is_true(t.key == opsh.secret(key))
  end)

  it("honours insecure-skip-tls-verify only when set, and sends no credentials over plain http", function()
    local t = credentials.for_user(resolved(config("    token: t", "    insecure-skip-tls-verify: true")))
    assert.is_true(t.insecure)
    t = credentials.for_user(resolved(config("    token: t")))
    assert.is_nil(t.insecure)
    t = credentials.for_user(resolved((config("    token: t"):gsub("https://", "http://"))))
    assert.is_nil(t.auth)
  end)

  it("sends a token as a secret Bearer header; refuses a token with a password", function()
    local t = credentials.for_user(resolved(config("    token: abc123")))
    assert.is_true(t.auth({}) == opsh.secret("Bearer abc123"))
    local err = S.catch(credentials.for_user, resolved(config("    token: abc\n    username: u\n    password: p")))
    assert.matches("not both", err.message)
    t = credentials.for_user(resolved(config("    as: jane\n    as-groups: [ops, sre]\n    token: x")))
    assert.are.same({["Impersonate-User"] = "jane", ["Impersonate-Group"] = "ops,sre"}, t.headers)
  end)

  it("re-reads a tokenFile when it changes and after a 401, keeping the last good token", function()
    local path = tmp .. "/token"
    fs.write(path, "first\n")
    local saved = credentials.token_file_interval
    credentials.token_file_interval = 0
    local ok, err = pcall(function()
      local t = credentials.for_user(resolved(config("    tokenFile: " .. path)))
      assert.is_true(t.auth({}) == opsh.secret("Bearer first"))
      fs.write(path, "second-longer\n")
      assert.is_true(t.auth({}) == opsh.secret("Bearer second-longer"))
      fs.write(path, "")
      assert.is_true(t.auth({refresh = true}) == opsh.secret("Bearer second-longer"))
      fs.write(path, "third")
      assert.is_true(t.auth({refresh = true}) == opsh.secret("Bearer third"))
    end)
    credentials.token_file_interval = saved
    assert(ok, err)
  end)

  describe("exec plugins", function()
    local plugin

    before_each(function()
      plugin = tmp .. "/plugin.sh"
      fs.write(plugin, [[#!/bin/sh
n=$(cat "$STATE/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$STATE/count"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$STATE/info.json"
[ -n "$FAIL" ] && { echo "plugin failed" >&2; exit 3; }
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"tok-%s","expirationTimestamp":"%s"}}' \
  "${ANSWER_VERSION}" "$n" "$EXP"
]])
      fs.chmod(plugin, tonumber("755", 8))
    end)

    local function exec_user(opts)
      return string.format([[
    exec:
      apiVersion: %s
      command: %s
      args: [get-token, --server-id, x]
      %s
      provideClusterInfo: %s
      env:
      - {name: STATE, value: %s}
      - {name: EXP, value: "%s"}
      - {name: ANSWER_VERSION, value: "%s"}
      - {name: FAIL, value: "%s"}]], opts.version or "client.authentication.k8s.io/v1", opts.command or plugin,
        opts.mode == false and "" or ("interactiveMode: " .. (opts.mode or "Never")),
        tostring(opts.cluster_info or false), tmp, opts.exp or "2099-01-01T00:00:00Z",
        opts.answer or opts.version or "client.authentication.k8s.io/v1", opts.fail and "1" or "")
    end

    local function runs() return tonumber((fs.read(tmp .. "/count", {missing_ok = true}) or "0"):match("%d+")) end

    it("runs the plugin once and keeps its credential until expirationTimestamp", function()
      local ext = [[
    certificate-authority-data: ]] .. crypto.base64_encode("-----BEGIN CERTIFICATE-----\nX\n") .. [[

    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: my-audience}]]
      local t = credentials.for_user(resolved(config(exec_user{cluster_info = true}, ext)))
      assert.are.equal(0, runs())
      assert.is_true(t.auth({}) == opsh.secret("Bearer tok-1"))
      assert.is_true(t.auth({}) == opsh.secret("Bearer tok-1"))
      assert.are.equal(1, runs())
      local info = json.decode(fs.read(tmp .. "/info.json"))
      assert.are.equal("ExecCredential", info.kind)
      assert.are.equal("client.authentication.k8s.io/v1", info.apiVersion)
      assert.is_false(info.spec.interactive)
      assert.are.equal("https://127.0.0.1:6443", info.spec.cluster.server)
      assert.are.same({audience = "my-audience"}, info.spec.cluster.config)
      assert.truthy(info.spec.cluster["certificate-authority-data"])
      -- a 401 runs it again
      assert.is_true(t.auth({refresh = true}) == opsh.secret("Bearer tok-2"))
      assert.are.equal(2, runs())
    end)

    it("runs it again once the credential expired; v1beta1 works without interactiveMode", function()
      local t = credentials.for_user(resolved(config(exec_user{exp = "2001-01-01T00:00:00Z",
        version = "client.authentication.k8s.io/v1beta1", mode = false})))
      assert.is_true(t.auth({}) == opsh.secret("Bearer tok-1"))
      assert.is_true(t.auth({}) == opsh.secret("Bearer tok-2"))
      local info = json.decode(fs.read(tmp .. "/info.json"))
      assert.are.equal("client.authentication.k8s.io/v1beta1", info.apiVersion)
      assert.is_nil(info.spec.cluster)
    end)

    it("fails clearly: no interactiveMode for v1, another apiVersion back, a failing or missing plugin", function()
      local err = S.catch(credentials.for_user, resolved(config(exec_user{mode = false})))
      assert.are.equal("interactiveMode must be specified for u to use exec authentication plugin", err.message)
      local t = credentials.for_user(resolved(config(exec_user{answer = "client.authentication.k8s.io/v1beta1"})))
      err = S.catch(t.auth, {})
      assert.are.equal("config", err.kind)
      assert.matches("plugin returned version client.authentication.k8s.io/v1beta1", err.message)
      t = credentials.for_user(resolved(config(exec_user{fail = true})))
      err = S.catch(t.auth, {})
      assert.matches("failed %(exit 3%)", err.message)
      t = credentials.for_user(resolved(config(exec_user{command = tmp .. "/no-such-plugin"})))
      err = S.catch(t.auth, {})
      assert.matches("cannot run", err.message)
    end)

    it("serves concurrent requests with one run", function()
      local t = credentials.for_user(resolved(config(exec_user{})))
      local got = opsh.parallel({1, 2, 3, 4, 5}, function() return t.auth({}) == opsh.secret("Bearer tok-1") end)
      assert.are.same({true, true, true, true, true}, got)
      assert.are.equal(1, runs())
    end)
  end)

  it("builds the in-cluster config from the service account files", function()
    fs.write(tmp .. "/token", "sa-token\n")
    fs.write(tmp .. "/namespace", "payments\n")
    fs.write(tmp .. "/ca.crt", "-----BEGIN CERTIFICATE-----\nCA\n")
    local c = k8s.in_cluster{dir = tmp, host = "192.0.2.1", port = "443", cache_dir = false}
    assert.are.equal("https://192.0.2.1:443", c.server)
    assert.are.equal("payments", c.namespace)
    assert.are.equal("in-cluster", c.context)
    local r, t = credentials.in_cluster{dir = tmp, host = "fd00::1", port = 443}
    assert.are.equal("https://[fd00::1]:443", r.server)
    assert.is_true(t.auth({}) == opsh.secret("Bearer sa-token"))
    assert.are.equal("-----BEGIN CERTIFICATE-----\nCA\n", t.ca)
    assert.is_nil((credentials.in_cluster{dir = tmp .. "/nope", host = "h", port = 1}))
    local err = S.catch(k8s.in_cluster, {dir = tmp .. "/nope", host = "h", port = 1})
    assert.are.equal("config", err.kind)
  end)

  it("uses the selected environment's aks.kubeconfig and aks.context, refusing a missing context", function()
    fs.write(tmp .. "/kc.yaml", config("    token: t"))
    fs.mkdir(tmp .. "/environments")
    fs.write(tmp .. "/environments/e1.lua", string.format([[return {resource_group = "rg", namespace = "production",
      aks = {cluster = "aks-x", kubeconfig = %q, context = "ctx"}, postgres = {server = "p"}}]], tmp .. "/kc.yaml"))
    fs.write(tmp .. "/environments/e2.lua", string.format([[return {resource_group = "rg", namespace = "production",
      aks = {cluster = "aks-x", kubeconfig = %q}, postgres = {server = "p"}}]], tmp .. "/kc.yaml"))
    local out = child([[local c = require("opsh.k8s").client()
      print(require("opsh.json").encode({ctx = c.context, ns = c.namespace}))]],
      {OPSH_PATH = tmp .. ":" .. (os.getenv("OPSH_PATH") or ""), OPSH_ENV = "e1", KUBECONFIG = false})
    assert.are.same({ctx = "ctx", ns = "production"}, out)
    local r = proc.run{argv = {runtime.exe(), "-e", "require('opsh.k8s').client()"}, check = false,
      env_add = {OPSH_PATH = tmp .. ":" .. (os.getenv("OPSH_PATH") or ""), OPSH_ENV = "e2"}}
    assert.are_not.equal(0, r.code)
    assert.matches("environment e2: context 'aks%-x' is not in the kubeconfig", r.stderr)
  end)
end)
