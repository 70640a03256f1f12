local yaml = require("opsh.yaml")
local json = require("opsh.json")
local opsh = require("opsh")
local fs = require("opsh.fs")
local proc = require("opsh.proc")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local strict_same, assert_strict, raises = S.strict_same, S.assert_strict, S.catch

-- yaml.decode(yaml.encode(v)) reads back and equals v; label names v in the failure
local function assert_round_trip(v, label)
  local text = yaml.encode(v)
  local ok, back = pcall(yaml.decode, text)
  assert(ok, string.format("%s did not read back: %s\n%s", label, tostring(back), text))
  local same, why = strict_same(v, back)
  assert(same, string.format("%s: %s\n%s", label, why, text))
end

local kubeconfig = [[
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://aks-prod-dns-4f2a.hcp.westeurope.azmk8s.io:443
  name: aks-prod
- cluster:
    insecure-skip-tls-verify: true
    server: "https://127.0.0.1:6443"
  name: kind-local
contexts:
- context:
    cluster: aks-prod
    namespace: production
    user: clusterUser_rg-prod_aks-prod
  name: aks-prod
- context:
    cluster: kind-local
    user: kind-local
  name: kind-local
current-context: aks-prod
preferences: {}
users:
- name: clusterUser_rg-prod_aks-prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - get-token
      - --login
      - azurecli
      - --server-id
      - 6dae42f8-4368-4678-94ff-3960e28e3630
      command: kubelogin
      env: null
      provideClusterInfo: false
- name: kind-local
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==
]]

local manifest = [[
# the api, its service and its config
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: &labels
    app.kubernetes.io/name: api
    app.kubernetes.io/part-of: contoso
spec:
  replicas: 3
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9090"
    spec:
      containers:
      - name: api
        image: contoso.azurecr.io/api:1.4.2
        args: ["--port", "8080", "--verbose"]
        env:
        - name: FEATURE_X
          value: "on"
        - name: RETRIES
          value: "3"
        resources: &resources
          limits: {cpu: "2", memory: 2Gi}
          requests: {cpu: 250m, memory: 512Mi}
      - name: sidecar
        image: contoso.azurecr.io/proxy:2.0
        resources:
          <<: *resources
          limits: {cpu: 500m, memory: 256Mi}
      volumes:
      - name: config
        configMap:
          name: api-config
          defaultMode: 0644
---
apiVersion: v1
kind: Service
metadata:
  name: api
  labels: &labels
    app.kubernetes.io/name: api
    app.kubernetes.io/part-of: contoso
spec:
  selector: *labels
  ports:
  - port: 80
    targetPort: 8080
    protocol: TCP
---
# nothing here
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: api-config
data:
  config.yaml: |
    listen: :8080
    debug: false
  motd: >
    folded
    text
  empty: ""
---
]]

describe("opsh.yaml", function()
  describe("decode", function()
    it("reads a kubeconfig", function()
      local kc = yaml.decode(kubeconfig)
      assert.are.equal("Config", kc.kind)
      assert.are.equal("aks-prod", kc["current-context"])
      assert.are.equal(2, #kc.clusters)
      assert.is_true(json.is_array(kc.clusters))
      assert.are.equal("https://aks-prod-dns-4f2a.hcp.westeurope.azmk8s.io:443", kc.clusters[1].cluster.server)
      assert.are.equal(true, kc.clusters[2].cluster["insecure-skip-tls-verify"])
      assert.are.equal("production", kc.contexts[1].context.namespace)
      local exec = kc.users[1].user.exec
      assert.are.same({"get-token", "--login", "azurecli", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"}, exec.args)
      assert.are.equal(json.null, exec.env)
      assert.are.equal(false, exec.provideClusterInfo)
      assert.are.equal("LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==", kc.users[2].user["client-key-data"])
      -- preferences: {} stays an object through JSON
      assert.matches('"preferences":{}', json.encode(kc), 1, true)
    end)

    it("reads a multi-document manifest with anchors, aliases and merge keys", function()
      local docs = yaml.decode_all(manifest)
      assert.are.equal(3, #docs)
      assert.is_true(json.is_array(docs))
      local deploy, svc, cm = docs[1], docs[2], docs[3]
      assert.are.same({"Deployment", "Service", "ConfigMap"}, {deploy.kind, svc.kind, cm.kind})
      local labels = {["app.kubernetes.io/name"] = "api", ["app.kubernetes.io/part-of"] = "contoso"}
      assert.are.same(labels, deploy.spec.selector.matchLabels)
      assert.are.same(labels, deploy.spec.template.metadata.labels)
      -- anchors are per document: the Service defines its own &labels
      assert.are.same(labels, svc.spec.selector)
      assert.are.equal(svc.metadata.labels, svc.spec.selector)
      local err = raises(yaml.decode_all, "a: &x 1\n---\nb: *x\n")
      assert.are.equal("unknown alias '*x' (anchors must be defined before, and outside, their aliases) at line 3 column 4",
        err.message)
      assert.are.equal(deploy.metadata.labels, deploy.spec.selector.matchLabels)
      local c = deploy.spec.template.spec.containers
      assert.are.same({"--port", "8080", "--verbose"}, c[1].args)
      assert.are.equal("on", c[1].env[1].value)
      assert.are.equal("3", c[1].env[2].value)
      assert.are.same({limits = {cpu = "2", memory = "2Gi"}, requests = {cpu = "250m", memory = "512Mi"}}, c[1].resources)
      -- the merge key brings requests; the sidecar's own limits win
      assert.are.same({limits = {cpu = "500m", memory = "256Mi"}, requests = {cpu = "250m", memory = "512Mi"}}, c[2].resources)
      assert.are.equal(420, deploy.spec.template.spec.volumes[1].configMap.defaultMode)
      assert.are.equal(80, svc.spec.ports[1].port)
      assert.are.equal("listen: :8080\ndebug: false\n", cm.data["config.yaml"])
      assert.are.equal("folded text\n", cm.data.motd)
      assert.are.equal("", cm.data.empty)
      assert.are.equal("true", deploy.spec.template.metadata.annotations["prometheus.io/scrape"])
    end)

    it("gives the first document with decode, nil for an empty stream", function()
      assert.are.equal("Deployment", yaml.decode(manifest).kind)
      assert.is_nil(yaml.decode(""))
      assert.is_nil(yaml.decode("# just a comment\n"))
      assert.are.equal(json.null, yaml.decode("---\n"))
      assert.are.same({}, yaml.decode_all(""))
      assert.are.same({{a = 1}, {b = 2}}, yaml.decode_all("a: 1\n---\n---\nb: 2\n--- ~\n"))
    end)

    it("types plain scalars as Kubernetes (sigs.k8s.io/yaml, go-yaml v2) does", function()
      local cases = {
        {"true", true}, {"True", true}, {"TRUE", true}, {"false", false}, {"FALSE", false},
        {"yes", true}, {"Yes", true}, {"on", true}, {"ON", true}, {"y", true}, {"Y", true},
        {"no", false}, {"off", false}, {"Off", false}, {"n", false}, {"N", false},
        {"null", json.null}, {"Null", json.null}, {"~", json.null}, {"", json.null},
        {"0", 0}, {"-0", 0}, {"42", 42}, {"-17", -17}, {"+12", 12}, {"1_000", 1000},
        {"0644", 420}, {"0777", 511}, {"0o17", 15}, {"0x1F", 31}, {"0X1f", 31}, {"0b101", 5}, {"-0b101", -5},
        {"9223372036854775807", math.maxinteger}, {"-9223372036854775808", math.mininteger},
        {"9223372036854775808", 9.2233720368547758e18}, {"08", 8.0}, {"1.5", 1.5}, {"-2.5e-3", -0.0025},
        {"1e3", 1000.0}, {"1.", 1.0}, {".5", 0.5}, {"1.0", 1.0},
        {".inf", math.huge}, {"-.Inf", -math.huge}, {"+.INF", math.huge},
        -- out of a double's range: strconv.ParseFloat fails, so go-yaml keeps the text
        {"1e400", "1e400"}, {"-1e400", "-1e400"}, {"1e-400", 0.0},
        {"yess", "yess"}, {"onion", "onion"}, {"nulls", "nulls"}, {"0x", "0x"}, {"0xZZ", "0xZZ"}, {"1_", 1},
        {"12:30", "12:30"}, {"2024-01-31", "2024-01-31"}, {"2001-12-14T21:59:43.10-05:00", "2001-12-14T21:59:43.10-05:00"},
        {"1.2.3", "1.2.3"}, {"-x", "-x"}, {"v1", "v1"}, {"250m", "250m"}, {"2Gi", "2Gi"}, {"=", "="},
        {"[a]", {"a"}}, {"[]", json.empty_array}, {"{}", {}},
      }
      for _, c in ipairs(cases) do
        local v = yaml.decode("v: " .. c[1]).v
        local ok, why = strict_same(c[2], v)
        assert(ok, string.format("v: %s -> %s", c[1], why))
      end
      assert.is_true(yaml.decode("v: .nan").v ~= yaml.decode("v: .NaN").v)
    end)

    it("keeps quoted and block scalars strings", function()
      local doc = yaml.decode([[
a: "on"
b: '0777'
c: "123"
d: "true"
e: 'null'
f: "~"
g: ""
h: "1.5"
i: |
  true
j: >-
  123
k: "0x10"
]])
      assert_strict({a = "on", b = "0777", c = "123", d = "true", e = "null", f = "~", g = "", h = "1.5",
        i = "true\n", j = "123", k = "0x10"}, doc)
    end)

    it("honours explicit tags", function()
      local doc = yaml.decode("a: !!str 123\nb: !!int '42'\nc: !!float 1\nd: !!bool yes\ne: !!null x\n" ..
        "f: ! 12\ng: !Ref name\nh: !!binary aGk=\n")
      assert_strict({a = "123", b = 42, c = 1.0, d = true, e = json.null, f = "12", g = "name", h = "aGk="}, doc)
      local err = raises(yaml.decode, "replicas: !!int three")
      assert.are.equal("yaml", err.kind)
      assert.are.equal("'three' is not a valid !!int at line 1 column 11", err.message)
    end)

    it("keeps mapping keys as their text", function()
      local doc = yaml.decode("on: push\n1: one\n0x10: hex\n~: tilde\n'quoted': q\n")
      assert.are.same({on = "push", ["1"] = "one", ["0x10"] = "hex", ["~"] = "tilde", quoted = "q"}, doc)
    end)

    it("gives null as json.null, so YAML converts to JSON", function()
      local doc = yaml.decode("a: null\nb: [1, ~, 3]\nc:\nd: []\n")
      assert.are.equal('{"a":null,"b":[1,null,3],"c":null,"d":[]}', json.encode(doc))
    end)

    it("reports where the input is wrong, by line and column", function()
      local cases = {
        {"a: b: c", "mapping values are not allowed in this context at line 1 column 5", 1, 5},
        {"a: [1, 2\nb: 3\n", "did not find expected ',' or ']' at line 2 column 2, while parsing a flow sequence at line 1 column 4", 2, 2},
        {"a:\n  b: 1\n c: 2\n", "did not find expected key at line 3 column 2, while parsing a block mapping at line 1 column 1", 3, 2},
        {"a: 1\nb: 2\na: 3\n", "duplicate key 'a' at line 3 column 1", 3, 1},
        {"a: *nope", "unknown alias '*nope' (anchors must be defined before, and outside, their aliases) at line 1 column 4", 1, 4},
        {"a: &x [1, *x]", "unknown alias '*x' (anchors must be defined before, and outside, their aliases) at line 1 column 11", 1, 11},
        {"? [1]\n: 2\n", "a mapping key must be a scalar (complex keys are not supported) at line 1 column 3", 1, 3},
        {"a:\n\t- b\n", "found character that cannot start any token at line 2 column 1, while scanning for the next token at line 2 column 1", 2, 1},
        {"k: \"open", "found unexpected end of stream at line 1 column 9, while scanning a quoted scalar at line 1 column 4", 1, 9},
        {"base: 1\nm:\n  <<: 5\n", "a '<<' merge key needs a mapping or a list of mappings at line 3 column 3", 3, 3},
      }
      for _, c in ipairs(cases) do
        local err = raises(yaml.decode, c[1])
        assert.are.equal("yaml", err.kind)
        assert.are.equal(c[2], err.message)
        assert.are.equal(c[3], err.line)
        assert.are.equal(c[4], err.column)
        assert.are.equal(c[2], tostring(err))
      end
      local err = raises(yaml.decode, "a: \xff\n")
      assert.are.equal("yaml", err.kind)
      assert.matches("UTF%-8", err.message)
    end)

    it("limits nesting to exactly 1000 levels, as json.decode does", function()
      local function nest(n, inner) return string.rep("[", n) .. (inner or "") .. string.rep("]", n) end
      assert.are.equal(1, #yaml.decode(nest(1000)))
      assert.are.equal(1, #yaml.decode(nest(1000, "1")))
      local json_err = raises(json.decode, nest(1001))
      local maps = string.rep("{a: ", 1001) .. "1" .. string.rep("}", 1001)
      for doc, column in pairs({[nest(1001)] = 1001, [nest(1001, "1")] = 1001, [maps] = 4001}) do
        local err = raises(yaml.decode, doc)
        assert.are.equal("yaml", err.kind)
        assert.are.equal("nesting deeper than 1000 levels at line 1 column " .. column, err.message)
      end
      assert.matches("nesting deeper than 1000 levels at line 1 column 1001", json_err.message)
      local ok = string.rep("{a: ", 1000) .. "1" .. string.rep("}", 1000)
      assert.are.equal("table", type(yaml.decode(ok).a))
    end)

    it("refuses a document whose aliases expand it without bound (billion laughs)", function()
      local lines = {'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'}
      for i = 2, 9 do
        local prev = string.char(96 + i - 1)
        local name = string.char(96 + i)
        lines[i] = string.format("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]", name, name,
          prev, prev, prev, prev, prev, prev, prev, prev, prev)
      end
      local err = raises(yaml.decode, table.concat(lines, "\n") .. "\n")
      assert.are.equal("yaml", err.kind)
      assert.matches("^aliases expand the document past the limit", err.message)
      assert.matches(" at line %d+ column %d+$", err.message)
      assert.is_number(err.line)
      -- the same through decode_all, across documents of one stream
      err = raises(yaml.decode_all, "x: 1\n---\n" .. table.concat(lines, "\n") .. "\n")
      assert.matches("^aliases expand the document past the limit", err.message)
      -- a long string repeated through aliases counts by its size, not as one node
      local big = string.rep("x", 100000)
      local doc = "s: &s " .. big .. "\nl: [" .. string.rep("*s,", 30) .. "*s]\n"
      err = raises(yaml.decode, doc)
      assert.matches("^aliases expand the document past the limit", err.message)
    end)

    it("accepts the aliasing real manifests use", function()
      -- a shared block reused by 500 containers, and merge keys in each
      local parts = {"base: &base {image: nginx, env: [{name: A, value: '1'}, {name: B, value: '2'}]}", "items:"}
      for i = 1, 500 do parts[#parts + 1] = string.format("- {<<: *base, name: c%d, shared: *base}", i) end
      local doc = yaml.decode(table.concat(parts, "\n") .. "\n")
      assert.are.equal(500, #doc.items)
      assert.are.equal("nginx", doc.items[500].image)
      assert.are.equal(doc.base, doc.items[1].shared)
      assert.are.equal(500, #yaml.decode(yaml.encode(doc)).items)
    end)

    it("raises a usage error for a non-string argument", function()
      assert.matches("bad argument #1 to 'yaml.decode' %(string expected, got nil%)", raises(yaml.decode))
      assert.matches("bad argument #1 to 'yaml.decode_all' %(string expected, got table%)", raises(yaml.decode_all, {}))
    end)
  end)

  describe("encode", function()
    it("writes block style with sorted keys, as kubectl does", function()
      local pod = {apiVersion = "v1", kind = "Pod",
        metadata = {name = "api-1", labels = {tier = "web", app = "api"}, annotations = {}},
        spec = {containers = {{name = "api", image = "api:1.0", ports = {{containerPort = 8080}},
          args = json.array()}}, priority = 0, ratio = 0.5}}
      assert.are.equal([[
apiVersion: v1
kind: Pod
metadata:
  annotations: {}
  labels:
    app: api
    tier: web
  name: api-1
spec:
  containers:
  - args: []
    image: api:1.0
    name: api
    ports:
    - containerPort: 8080
  priority: 0
  ratio: 0.5
]], yaml.encode(pod))
    end)

    it("quotes strings that would read back as another type", function()
      local out = yaml.encode({"true", "on", "Off", "y", "N", "null", "~", "", "123", "0777", "0x1F", "1_000",
        "1e3", ".inf", "1.5", "2024-01-31T10:00:00Z", "<<"})
      assert.are.equal([[
- "true"
- "on"
- "Off"
- "y"
- "N"
- "null"
- "~"
- ""
- "123"
- "0777"
- "0x1F"
- "1_000"
- "1e3"
- ".inf"
- "1.5"
- "2024-01-31T10:00:00Z"
- "<<"
]], out)
      assert.are.equal('"on": push\n"yes": 1\n', yaml.encode({on = "push", yes = 1}))
    end)

    it("quotes strings that plain style cannot hold, and keeps plain ones plain", function()
      assert.are.equal([[
- 'a: b'
- '#comment'
- '- item'
- ' padded '
- "tab\there"
- "cr\rhere"
- 'key: [x]'
- plain text
- é€
- "\U0001F600"
- 250m
- v1.2.3
]], yaml.encode({"a: b", "#comment", "- item", " padded ", "tab\there", "cr\rhere", "key: [x]", "plain text",
        "é€", "😀", "250m", "v1.2.3"}))
    end)

    it("writes multi-line strings as literal blocks", function()
      assert.are.equal("data:\n  config.yaml: |\n    listen: :8080\n    debug: false\n  note: |-\n    two\n    lines\n",
        yaml.encode({data = {["config.yaml"] = "listen: :8080\ndebug: false\n", note = "two\nlines"}}))
    end)

    it("writes numbers exactly, booleans, null and secrets", function()
      local s = opsh.secret("p@ss-hunter2")
      local out = yaml.encode({big = (1 << 53) + 1, f = 0.1, whole = 2.0, neg = -0.0, inf = -math.huge, nan = 0 / 0,
        t = true, n = json.null, pw = s})
      assert.are.equal("big: 9007199254740993\nf: 0.1\ninf: -.inf\n\"n\": null\nnan: .nan\nneg: -0.0\npw: <redacted>\n" ..
        "t: true\nwhole: 2.0\n", out)
      assert.is_nil(out:find("hunter2", 1, true))
    end)

    it("writes scalars and empty collections as documents of their own", function()
      assert.are.equal("hello\n", yaml.encode("hello"))
      assert.are.equal("42\n", yaml.encode(42))
      assert.are.equal("null\n", yaml.encode(nil))
      assert.are.equal("{}\n", yaml.encode({}))
      assert.are.equal("[]\n", yaml.encode(json.empty_array))
    end)

    it("writes a stream with encode_all", function()
      assert.are.equal("a: 1\n---\n- x\n---\nb: true\n", yaml.encode_all({{a = 1}, {"x"}, {b = true}}))
      assert.are.equal("", yaml.encode_all({}))
      local docs = yaml.decode_all(yaml.encode_all(yaml.decode_all(manifest)))
      assert_strict(yaml.decode_all(manifest), docs)
    end)

    it("can keep insertion-independent but unsorted order, and another indentation", function()
      local v = {b = {c = {1, 2}}, a = 1}
      assert_strict(v, yaml.decode(yaml.encode(v, {sort_keys = false})))
      assert.are.equal("a: 1\nb:\n    c:\n    - 1\n    - 2\n", yaml.encode(v, {indent = 4}))
      assert.matches("option 'indent' must be an integer from 2 to 9", raises(yaml.encode, v, {indent = 1}))
      assert.matches("option 'sort_keys' must be a boolean", raises(yaml.encode, v, {sort_keys = 1}))
    end)

    it("refuses values YAML output cannot hold, naming the path", function()
      local t = {spec = {}}
      t.spec.self = t
      local cases = {
        {{spec = {containers = {{command = print}}}}, "cannot encode a value of type function at .spec.containers[1].command"},
        {t, "cannot encode a table that contains itself (cycle) at .spec.self"},
        {{data = {bin = "\xff\xfe"}}, "cannot encode a string that is not valid UTF-8 (encode binary data, e.g. base64) at .data.bin"},
        {{[true] = 1}, "cannot encode an object key of type boolean"},
        {{items = {[1] = 1, [50] = 2}}, "cannot encode a sparse array (2 values, largest index 50) at .items"},
      }
      for _, c in ipairs(cases) do
        local err = raises(yaml.encode, c[1])
        assert.are.equal("yaml", err.kind)
        assert.are.equal(c[2], err.message)
      end
      local err = raises(yaml.encode_all, {{a = 1}, {b = print}})
      assert.are.equal("cannot encode a value of type function at [2].b", err.message)
    end)

    it("renders opsh -o yaml output through opsh.out", function()
      local out = require("opsh.out")
      assert.are.equal("- name: hello\n  origin: bundled\n- name: \"yes\"\n  origin: user\n",
        out.render({{name = "hello", origin = "bundled"}, {name = "yes", origin = "user"}}, {format = "yaml"}))
    end)
  end)

  describe("round trips", function()
    local tricky = {
      "", " ", "  x", "x ", "true", "false", "yes", "no", "on", "off", "y", "n", "Y", "N", "null", "Null", "~",
      "0", "-0", "007", "0777", "0o17", "0x1F", "0b11", "1_000", "1e3", "1.", ".5", "-.inf", ".nan", "+1", "12:30",
      "2024-01-31", "2024-01-31T10:00:00Z", "<<", "=", "-", "--", "---", "...", "- a", "? x", ": x", "a: b", "a:b",
      "a #b", "#", "@x", "`x", "!x", "&x", "*x", "|", ">", "%x", "'", '"', "\\", "[x]", "{x}", ",", "a,b",
      "line\n", "line1\nline2", "line1\nline2\n\n", "\n", "\nlead", " lead\nx", "trail \nx", "a\r\nb", "tab\tx",
      "\0", "\1\2\31", "é€😀", "\u{FEFF}bom", "\u{2028}", "\u{85}", "x\u{A0}", ("long "):rep(60),
    }

    it("decode(encode(v)) equals v for tricky strings, as values and as keys", function()
      for _, s in ipairs(tricky) do
        assert_round_trip({value = s, list = {s}, [s ~= "" and s or "empty"] = "key"}, string.format("%q", s))
      end
    end)

    it("decode(encode(v)) equals v for numbers, booleans, null and nesting", function()
      local v = {ints = {0, 1, -1, 420, math.maxinteger, math.mininteger, (1 << 53) + 1},
        floats = {0.0, -0.0, 0.1, 1.0, 1e300, 5e-324, -2.5e-3, 1 / 3, math.huge, -math.huge, 0 / 0},
        bools = {true, false}, null = json.null, nulls = {json.null, json.null},
        empty_list = json.array(), empty_map = {}, nested = {{{a = {json.array()}}}, {{}}}}
      assert_strict(v, yaml.decode(yaml.encode(v)))
    end)

    it("decode(encode(v)) equals v for random documents", function()
      math.randomseed(2024)
      local function random_value(depth)
        local r = math.random(depth > 3 and 6 or 8)
        if r == 1 then return tricky[math.random(#tricky)] end
        if r == 2 then return math.random(-1000000, 1000000) end
        if r == 3 then return (math.random() - 0.5) * 10 ^ math.random(-20, 20) end
        if r == 4 then return math.random(2) == 1 end
        if r == 5 then return json.null end
        if r == 6 then
          local t = {}
          for i = 1, math.random(0, 6) do t[i] = string.char(math.random(32, 126)):rep(math.random(1, 4)) end
          return table.concat(t, math.random(2) == 1 and "\n" or " ")
        end
        if r == 7 then
          local t = json.array()
          for i = 1, math.random(0, 4) do t[i] = random_value(depth + 1) end
          return t
        end
        local t = {}
        for _ = 1, math.random(0, 4) do t[tricky[math.random(#tricky)] .. "k"] = random_value(depth + 1) end
        return t
      end
      for i = 1, 300 do
        assert_round_trip({doc = random_value(0)}, "document " .. i)
      end
    end)

    it("YAML -> JSON -> YAML keeps the manifest", function()
      local docs = yaml.decode_all(manifest)
      local again = yaml.decode_all(yaml.encode_all(json.decode(json.encode(docs))))
      assert_strict(docs, again)
    end)

    it("writes YAML that PyYAML (YAML 1.1, like go-yaml v2) reads as the same values", function()
      if proc.run({argv = {"python3", "-c", "import yaml"}, check = false}).code ~= 0 then
        pending("python3 has no PyYAML here")
        return
      end
      local v = {strings = {table.unpack(tricky, 1, 60)}, ints = {420, -7, math.maxinteger}, f = {0.1, 1.0, 1e300},
        b = {true, false}, n = json.null, empty = json.array(), obj = {}}
      local path = os.tmpname()
      fs.write(path, yaml.encode(v))
      local r = proc.run({argv = {"python3", "-c", "import json, sys, yaml; "
        .. "print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))", path}, check = false})
      fs.remove(path)
      assert(r.code == 0, "PyYAML could not read the output: " .. r.stderr)
      local out = r.stdout
      assert_strict(v, json.decode(out))
    end)
  end)
end)
