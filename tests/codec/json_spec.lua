local json = require("opsh.json")
local opsh = require("opsh")
local fs = require("opsh.fs")
local proc = require("opsh.proc")

local S = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../support/helpers.lua")
local assert_strict, raises = S.assert_strict, S.catch

-- run a Python snippet with `path` as sys.argv[1]; returns its stdout
local function python(code, path)
  return proc.run({argv = {"python3", "-c", code, path}}).stdout
end

describe("opsh.json", function()
  describe("decode", function()
    it("keeps integers as integers and floats as floats", function()
      local v = json.decode('[0, -0, 1, -7, 9007199254740993, 9223372036854775807, -9223372036854775808, 1.0, 1e3, -2.5E-3, 0.1]')
      assert_strict({0, 0, 1, -7, 9007199254740993, math.maxinteger, math.mininteger, 1.0, 1000.0, -0.0025, 0.1}, v)
      assert.are.equal("integer", math.type(v[5]))
      assert.are.equal("float", math.type(v[8]))
    end)

    it("reads integers beyond 64 bits as floats, as Lua reads such literals", function()
      local v = json.decode("[9223372036854775808, -9223372036854775809, 123456789012345678901234567890]")
      assert.are.equal("float", math.type(v[1]))
      assert.are.equal(2^63, v[1])
      assert.are.equal(-2^63, v[2])
      assert.are.equal(1.2345678901234568e29, v[3])
    end)

    it("refuses numbers beyond the range of a double, as Go's encoding/json does", function()
      for _, doc in ipairs({"1e400", "[1, -1e309]", "9223332e36854775808", string.rep("9", 400)}) do
        local err = raises(json.decode, doc)
        assert.are.equal("json", err.kind)
        assert.matches("^number out of range at line 1 column %d+ %(byte %d+%)$", err.message)
      end
      assert.are.equal(0.0, json.decode("1e-400"))   -- too small is zero, not an error
      assert.are.equal(1.7976931348623157e308, json.decode("1.7976931348623157e308"))
    end)

    it("decodes strings, escapes and surrogate pairs into UTF-8", function()
      local v = json.decode([["a\"b\\c\/d\b\f\n\r\t \u00e9\u20ac\ud83d\ude00 é"]])
      assert.are.equal('a"b\\c/d\b\f\n\r\t é€😀 é', v)
      assert.are.equal("x\0y", json.decode([["x\u0000y"]]))
    end)

    it("turns lone surrogates into U+FFFD as Go's encoding/json does", function()
      assert.are.same({"\u{FFFD}", "\u{FFFD}x"}, json.decode([=[["\ud800", "\udc00x"]]=]))
    end)

    it("gives json.null for null, also inside arrays so their length stays right", function()
      local v = json.decode('{"a": null, "b": [1, null, 3]}')
      assert.are.equal(json.null, v.a)
      assert.are.equal(3, #v.b)
      assert.are.equal(json.null, v.b[2])
      assert.are.equal("null", tostring(json.null))
      assert.are.equal(json.null, json.decode("null"))
    end)

    it("marks arrays, so [] and {} round-trip", function()
      local v = json.decode('{"items": [], "labels": {}, "list": [1, 2]}')
      assert.is_true(json.is_array(v.items))
      assert.is_true(json.is_array(v.list))
      assert.is_false(json.is_array(v.labels))
      assert.are.equal(json.array_mt, getmetatable(v.list))
      assert.are.equal('{"items":[],"labels":{},"list":[1,2]}', json.encode(v))
    end)

    it("accepts scalars at top level and surrounding white space", function()
      assert.are.equal(true, json.decode(" \t\r\n true \n"))
      assert.are.equal(false, json.decode("false"))
      assert.are.equal("s", json.decode('"s"'))
      assert.are.equal(42, json.decode("42"))
    end)

    it("lets the last of duplicate keys win", function()
      assert.are.equal(2, json.decode('{"a": 1, "a": 2}').a)
    end)

    it("reports where the input is wrong, by line, column and byte", function()
      local err = raises(json.decode, '{\n  "a": 1,\n  "b": tru\n}')
      assert.are.equal("json", err.kind)
      assert.are.equal(3, err.line)
      assert.are.equal(8, err.column)
      assert.are.equal(19, err.offset)
      assert.are.equal("unexpected character 't', expected a value at line 3 column 8 (byte 19)", err.message)
      assert.are.equal(err.message, tostring(err))
    end)

    it("counts columns in characters, not bytes", function()
      local err = raises(json.decode, '{"é€": x}')
      assert.are.equal(1, err.line)
      assert.are.equal(8, err.column)
      assert.are.equal(10, err.offset)
    end)

    it("rejects malformed documents with a structured error", function()
      local cases = {
        [""] = "unexpected end of input, expected a value at line 1 column 1 (byte 0)",
        ["[1, 2"] = "unexpected end of input, expected ',' or ']' in array at line 1 column 6 (byte 5)",
        ['{"a" 1}'] = "unexpected character '1', expected ':' after object key at line 1 column 6 (byte 5)",
        ['{"a": 1,}'] = "unexpected character '}', expected a string key in object at line 1 column 9 (byte 8)",
        ["[1,]"] = "unexpected character ']', expected a value at line 1 column 4 (byte 3)",
        ['"abc'] = "unterminated string at line 1 column 5 (byte 4)",
        ['"a\tb"'] = "control character in string at line 1 column 3 (byte 2)",
        ['"\\x"'] = "invalid escape in string at line 1 column 2 (byte 1)",
        ['"\\u12"'] = "invalid \\u escape in string at line 1 column 2 (byte 1)",
        ["01"] = "unexpected character '1', expected the end of input after the value at line 1 column 2 (byte 1)",
        ["1."] = "unexpected end of input, expected a digit after '.' at line 1 column 3 (byte 2)",
        ["1e+"] = "unexpected end of input, expected a digit in the exponent at line 1 column 4 (byte 3)",
        ["-"] = "unexpected end of input, expected a digit at line 1 column 2 (byte 1)",
        ["+1"] = "unexpected character '+', expected a value at line 1 column 1 (byte 0)",
        ["NaN"] = "unexpected character 'N', expected a value at line 1 column 1 (byte 0)",
        ["nul"] = "unexpected character 'n', expected a value at line 1 column 1 (byte 0)",
        ["[1] [2]"] = "unexpected character '[', expected the end of input after the value at line 1 column 5 (byte 4)",
        ["[1]\0"] = "unexpected byte 0x00, expected the end of input after the value at line 1 column 4 (byte 3)",
        ['"a\xffb"'] = "invalid UTF-8 in string at line 1 column 3 (byte 2)",
        ['"\xed\xa0\x80"'] = "invalid UTF-8 in string at line 1 column 2 (byte 1)",
        ["\xef\xbb\xbf{}"] = "unexpected byte 0xef, expected a value at line 1 column 1 (byte 0)",
      }
      for input, message in pairs(cases) do
        local err = raises(json.decode, input)
        assert.are.equal("json", err.kind)
        assert.are.equal(message, err.message)
      end
    end)

    it("limits nesting to 1000 levels", function()
      local ok_doc = string.rep("[", 1000) .. string.rep("]", 1000)
      assert.is_true(json.is_array(json.decode(ok_doc)))
      local err = raises(json.decode, string.rep("[", 1001) .. string.rep("]", 1001))
      assert.are.equal("json", err.kind)
      assert.matches("nesting deeper than 1000 levels at line 1 column 1001", err.message)
    end)

    it("raises a usage error for a non-string argument", function()
      local err = raises(json.decode, 42)
      assert.matches("bad argument #1 to 'json.decode' %(string expected, got number%)", err)
    end)
  end)

  describe("encode", function()
    it("writes integers exactly, including beyond 2^53", function()
      assert.are.equal("[9007199254740993,9223372036854775807,-9223372036854775808,0,-1]",
        json.encode({(1 << 53) + 1, math.maxinteger, math.mininteger, 0, -1}))
    end)

    it("writes floats with the digits they need and a .0 when integral", function()
      assert.are.equal("[0.1,1e+300,0.30000000000000004,5e-324,1.0,-0.0,1e+16,2.5]",
        json.encode({0.1, 1e300, 0.1 + 0.2, 5e-324, 1.0, -0.0, 1e16, 2.5}))
    end)

    it("round-trips doubles bit for bit", function()
      math.randomseed(7)
      local values = {}
      for i = 1, 2000 do
        local bits = string.pack("<I4I4", math.random(0, 0xffffffff), math.random(0, 0x7fefffff))
        local x = string.unpack("<d", bits)
        if x ~= x or x == math.huge then x = 0.5 end
        values[i] = (i % 2 == 0) and -x or x
      end
      local back = json.decode(json.encode(values))
      for i, x in ipairs(values) do
        assert.are.equal(string.pack("<d", x), string.pack("<d", back[i]), "value " .. i)
      end
    end)

    it("refuses NaN and infinities", function()
      local err = raises(json.encode, {ratio = 0 / 0})
      assert.are.equal("json", err.kind)
      assert.are.equal("cannot encode NaN (JSON has no NaN) at .ratio", err.message)
      assert.are.equal(".ratio", err.path)
      err = raises(json.encode, {1, math.huge})
      assert.are.equal("cannot encode an infinite number (JSON has no infinity) at [2]", err.message)
    end)

    it("escapes strings and keeps UTF-8 as is", function()
      assert.are.equal([["a\"b\\c/d\b\f\n\r\t\u0001\u001f é€😀"]], json.encode('a"b\\c/d\b\f\n\r\t\1\31 é€😀'))
      assert.are.equal([["x\u0000y"]], json.encode("x\0y"))
    end)

    it("refuses strings that are not UTF-8 and says where", function()
      for _, bad in ipairs({"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"}) do
        local err = raises(json.encode, {data = {blob = "ok" .. bad}})
        assert.are.equal("json", err.kind)
        assert.are.equal(".data.blob", err.path)
        assert.matches("not valid UTF%-8", err.message)
      end
    end)

    it("encodes an empty table as an object and a marked one as an array", function()
      assert.are.equal("{}", json.encode({}))
      assert.are.equal("[]", json.encode(json.array({})))
      assert.are.equal("[]", json.encode(json.array()))
      assert.are.equal("[]", json.encode(json.empty_array))
      assert.are.equal('{"a":[],"b":{}}', json.encode({a = json.empty_array, b = {}}))
      local t = {}
      assert.are.equal(t, json.array(t))
      assert.is_true(json.is_array(t))
      assert.is_true(json.is_array(json.empty_array))
      assert.is_false(json.is_array({}))
      assert.is_false(json.is_array("x"))
    end)

    it("keeps json.empty_array read-only", function()
      local err = raises(function() json.empty_array[1] = 1 end)
      assert.are.equal("usage", err.kind)
      assert.is_nil(next(json.empty_array))
    end)

    it("does not mark a table that has another metatable", function()
      local err = raises(json.array, setmetatable({}, {}))
      assert.matches("bad argument #1 to '[%w._]*array' %(table already has a metatable%)", tostring(err))
    end)

    it("writes a marked array by its length, ignoring other keys", function()
      local t = json.array({1, 2})
      t.extra = true
      assert.are.equal("[1,2]", json.encode(t))
    end)

    it("writes sequences as arrays, holes as null, mixed tables as objects", function()
      assert.are.equal("[1,2,3]", json.encode({1, 2, 3}))
      assert.are.equal("[1,null,3]", json.encode({1, nil, 3}))
      assert.are.equal("[null,null,3]", json.encode({[3] = 3}))
      assert.are.equal('{"1":"a","2":"b","x":true}', json.encode({"a", "b", x = true}))
      assert.are.equal('{"-1":1,"0":0}', json.encode({[0] = 0, [-1] = 1}))
      assert.are.equal('{"1.5":1}', json.encode({[1.5] = 1}))
    end)

    it("refuses excessively sparse arrays", function()
      local err = raises(json.encode, {items = {[1] = 1, [1000] = 2}})
      assert.are.equal("json", err.kind)
      assert.are.equal("cannot encode a sparse array (2 values, largest index 1000) at .items", err.message)
    end)

    it("writes json.null (and nil in arrays) as null", function()
      assert.are.equal('{"a":null}', json.encode({a = json.null}))
      assert.are.equal("null", json.encode(json.null))
      assert.are.equal("null", json.encode(nil))
    end)

    it("writes secrets as <redacted> and never their bytes", function()
      local s = opsh.secret("hunter2-token")
      local out = json.encode({password = s, list = {s}}, {pretty = true})
      assert.are.equal('{\n  "list": [\n    "<redacted>"\n  ],\n  "password": "<redacted>"\n}', out)
      assert.is_nil(out:find("hunter2", 1, true))
    end)

    it("refuses values JSON cannot hold, naming the path", function()
      local cases = {
        {{spec = {containers = {{command = print}}}}, "cannot encode a value of type function at .spec.containers[1].command"},
        {{["app.kubernetes.io/name"] = {co = coroutine.create(print)}},
          'cannot encode a value of type thread at ["app.kubernetes.io/name"].co'},
        {{[true] = 1}, "cannot encode an object key of type boolean"},
        {{nested = {[{}] = 1}}, "cannot encode an object key of type table at .nested"},
        {io.stdout, "cannot encode a value of type userdata"},
      }
      for _, c in ipairs(cases) do
        local err = raises(json.encode, c[1])
        assert.are.equal("json", err.kind)
        assert.are.equal(c[2], err.message)
      end
    end)

    it("detects cycles instead of recursing forever", function()
      local t = {name = "a", child = {}}
      t.child.parent = t
      local err = raises(json.encode, t)
      assert.are.equal("json", err.kind)
      assert.are.equal("cannot encode a table that contains itself (cycle) at .child.parent", err.message)
      -- the same table twice, not nested in itself, is fine
      local shared = {1}
      assert.are.equal('{"a":[1],"b":[1]}', json.encode({a = shared, b = shared}))
    end)

    it("limits nesting to 1000 levels", function()
      local deep = {}
      local t = deep
      for _ = 1, 1000 do t[1] = {}; t = t[1] end
      local err = raises(json.encode, deep)
      assert.matches("^cannot encode nesting deeper than 1000 levels at %[1%]", err.message)
    end)

    it("pretty-prints with sorted keys and a chosen indentation", function()
      local v = {kind = "Pod", metadata = {name = "api-1", labels = {tier = "web", app = "api"}},
        spec = {containers = {{name = "api", ports = {{containerPort = 8080}}}}, volumes = json.array()}}
      assert.are.equal([[{
  "kind": "Pod",
  "metadata": {
    "labels": {
      "app": "api",
      "tier": "web"
    },
    "name": "api-1"
  },
  "spec": {
    "containers": [
      {
        "name": "api",
        "ports": [
          {
            "containerPort": 8080
          }
        ]
      }
    ],
    "volumes": []
  }
}]], json.encode(v, {pretty = true, sort_keys = true}))
      assert.are.equal('{\n    "a": [\n        1\n    ]\n}', json.encode({a = {1}}, {pretty = true, indent = 4}))
      assert.are.equal('{\n"a": 1\n}', json.encode({a = 1}, {pretty = true, indent = 0}))
    end)

    it("gives the same text whatever order the keys were inserted in", function()
      local keys = {}
      for i = 1, 200 do keys[i] = string.format("key%03d", i) end
      local a, b = {}, {}
      for i = 1, 200 do a[keys[i]] = i end
      for i = 200, 1, -1 do b[keys[i]] = i end
      b[10] = "n"; a[10] = "n"
      assert.are.equal(json.encode(a), json.encode(b))
      assert.are.equal(json.encode(a, {pretty = true}), json.encode(b, {pretty = true}))
      assert.matches('^{"10":"n","key001":1,"key002":2,', json.encode(a))
    end)

    it("can skip sorting, still giving valid JSON", function()
      local v = {a = 1, b = {c = 2, d = {3}}}
      assert_strict(v, json.decode(json.encode(v, {sort_keys = false})))
      assert_strict(v, json.decode(json.encode(v, {sort_keys = false, pretty = true})))
    end)

    it("checks its options", function()
      assert.matches("option 'pretty' must be a boolean", raises(json.encode, {}, {pretty = "yes"}))
      assert.matches("option 'indent' must be an integer from 0 to 16", raises(json.encode, {}, {indent = 1.5}))
      assert.matches("bad argument #2 to 'json.encode' %(options table expected, got string%)", raises(json.encode, {}, "pretty"))
    end)
  end)

  describe("round trips", function()
    local corpus = {
      apiVersion = "v1", kind = "List",
      items = {
        {metadata = {name = "api-7d9f", labels = {["app.kubernetes.io/name"] = "api"}, annotations = {},
          finalizers = json.array(), resourceVersion = "12345", generation = 3},
          spec = {replicas = 0, paused = false, ratio = 0.25, big = (1 << 62) + 1, neg = -(1 << 40),
            deadline = json.null, tiny = 1e-300, whole = 3.0, text = "line1\nline2\t\"q\" é€😀 \\"},
          status = {conditions = {{type = "Ready", status = "True", lastProbeTime = json.null}}}},
        {nested = {{{}}, {json.array()}, {{1, {2, {3}}}}}},
      },
    }

    it("decode(encode(v)) equals v, types included, compact and pretty", function()
      assert_strict(corpus, json.decode(json.encode(corpus)))
      assert_strict(corpus, json.decode(json.encode(corpus, {pretty = true})))
      local again = json.decode(json.encode(corpus))
      assert.are.equal(json.encode(corpus, {pretty = true}), json.encode(again, {pretty = true}))
    end)

    it("agrees with Python's json module in both directions", function()
      local path = os.tmpname()
      fs.write(path, json.encode(corpus, {pretty = true}))
      local out = python([[
import json, sys
v = json.load(open(sys.argv[1], encoding="utf-8"))
assert v["items"][0]["spec"]["big"] == (1 << 62) + 1
assert type(v["items"][0]["spec"]["whole"]) is float
assert v["items"][0]["spec"]["deadline"] is None
print(json.dumps(v, sort_keys=True, ensure_ascii=True))
]], path)
      fs.remove(path)
      assert_strict(corpus, json.decode(out))
    end)
  end)
end)
