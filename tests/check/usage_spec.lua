-- Every public function of the Lua layer's modules, called with a wrong-typed argument in each
-- position, raises {kind="usage"} naming the function and the argument: never a plain Lua error
-- (which the CLI would print as a traceback, exit 1). A new public function without a sample
-- call here fails the walk.
local fs = require("opsh.fs")

local dir = fs.tmpdir("opsh-usage-")
local p = dir .. "/f"
local function noop() end
local URL = "http://127.0.0.1:9/"

-- module -> {function path -> {valid args...}}; ANY marks a position that takes any value
local ANY = setmetatable({}, {__name = "ANY"})
local samples = {
  ["opsh.json"] = {decode = {"1"}, encode = {ANY, {}}, array = {{}}, is_array = {ANY}},
  ["opsh.yaml"] = {decode = {"a: 1"}, decode_all = {"a: 1"}, encode = {ANY, {}}, encode_all = {{}, {}}},
  ["opsh.server"] = {listen = {{}}, parse_query = {"a=1"}, unescape = {"a%20b", true}},
  ["opsh.crypto"] = {
    random_bytes = {16}, random_password = {16, {}}, base64_encode = {"x"}, base64_decode = {"eA=="},
    base64url_encode = {"x"}, base64url_decode = {"eA"}, hex_encode = {"x", {}}, hex_decode = {"78"},
    sha1 = {"x"}, sha256 = {"x"}, sha384 = {"x"}, sha512 = {"x"}, sha1_hex = {"x"}, sha256_hex = {"x"},
    sha384_hex = {"x"}, sha512_hex = {"x"}, hmac_sha1 = {"k", "x"}, hmac_sha256 = {"k", "x"},
    hmac_sha384 = {"k", "x"}, hmac_sha512 = {"k", "x"}, hmac_sha1_hex = {"k", "x"},
    hmac_sha256_hex = {"k", "x"}, hmac_sha384_hex = {"k", "x"}, hmac_sha512_hex = {"k", "x"},
    constant_time_equal = {"a", "b"}, seal = {"k", "x", "aad"}, open = {"k", "x", "aad"},
    crc64 = {"x", 0}, crc64_base64 = {0},
    ["keys.read"] = {"x", {}}, ["keys.load"] = {"x", {}}, ["keys.generate"] = {{}}, ["keys.info"] = {"x"},
    ["keys.public_pem"] = {"x"}, ["keys.matches"] = {"x", "x"}, ["keys.jwk"] = {"x", {}},
    ["x509.parse"] = {"x"}, ["x509.parse_all"] = {"x"}, ["x509.create_ca"] = {{}}, ["x509.create_cert"] = {{}},
    ["jwt.sign"] = {{}, "x", {}}, ["jwt.decode_unverified"] = {"a.b.c"}, ["jwt.verify"] = {"a.b.c", "x", {}},
  },
  ["opsh.http"] = {get = {URL, {}}, head = {URL, {}}, delete = {URL, {}}, post = {URL, {}}, put = {URL, {}},
    patch = {URL, {}}, request = {{}}, client = {{}}, budget = {{}}, bearer = {noop, {}}, configure = {{}},
    redact = {URL}, retry_after = {"5", 0}, stats = {}, curl_version = {}},
  ["opsh.pg"] = {connect = {"host=127.0.0.1", {}}, pool = {{}}},
  ["opsh.redis"] = {connect = {{}}, parse_url = {"redis://127.0.0.1"}, parse_info = {"a:1"}},
  ["opsh.fs"] = {dirname = {"a/b"}, basename = {"a/b"}, join = {"a", "b"}, open = {p, "r", {}}, read = {p, {}},
    append = {p, "x", {}}, write_atomic = {p, "x", {}}, write = {p, "x", {}}, stat = {p}, lstat = {p},
    exists = {p}, mkdir = {p, {}}, tmpdir = {"x"}, rmtree = {p}, remove = {p}, cwd = {}, absolute = {"a"},
    rename = {p, p}, list = {dir}, glob = {p}, chmod = {p, "0644"}},
  ["opsh.time"] = {now = {}, monotonic = {}, parse = {"2024-01-01T00:00:00Z", {}}, format = {0, {}},
    duration = {"PT5M"}, format_duration = {5}, parse_duration = {"5m"}, ago = {"5m", {}},
    days_from_civil = {2024, 1, 1}, civil_from_days = {0}},
  ["opsh.proc"] = {run = {{argv = {"true"}}}, shell = {"true", {}}, spawn = {{argv = {"true"}}},
    signal_pid = {1, "TERM"}, alive = {1}, cmdline = {1}},
  ["opsh.net"] = {free_port = {}, port_open = {"127.0.0.1", 9}, wait_port = {"127.0.0.1", 9, {}},
    wait_closed = {"127.0.0.1", 9, {}}},
}

-- every function of a module, by path ("keys.read"), one level of sub-tables deep
local function functions(mod)
  local out = {}
  for k, v in pairs(mod) do
    if type(v) == "function" and not k:match("^_") then out[k] = v end
    if type(v) == "table" and getmetatable(v) == nil and not k:match("^_") then
      for k2, v2 in pairs(v) do
        if type(v2) == "function" then out[k .. "." .. k2] = v2 end
      end
    end
  end
  return out
end

describe("argument checks", function()
  teardown(function() fs.rmtree(dir) end)

  for modname, calls in pairs(samples) do
    it(modname .. ": a wrong-typed argument is a usage error naming the function and the argument", function()
      local mod = require(modname)
      local short = modname:match("^opsh%.(.*)$")
      for path, fn in pairs(functions(mod)) do
        local args = calls[path]
        assert(args, modname .. "." .. path .. " has no sample call in tests/check/usage_spec.lua")
        for i = 1, #args do
          if args[i] ~= ANY then
            local call = {table.unpack(args)}
            call[i] = coroutine.create(noop)   -- a type no argument takes
            local ok, err = pcall(fn, table.unpack(call, 1, #args))
            local what = string.format("%s.%s with a thread as argument #%d", short, path, i)
            assert(not ok, what .. " did not raise")
            assert(type(err) == "table" and err.kind == "usage",
              what .. " raised a plain error, not kind usage: " .. tostring(err))
            assert(err.message:find(string.format("#%d to '", i), 1, true) and err.message:find(path, 1, true),
              what .. ": the message does not name the function and argument: " .. err.message)
            assert(not err.message:find("\n"), what .. ": the message is not one line")
          end
        end
      end
    end)
  end

  it("names the nearest option for an unknown one", function()
    local ok, err = pcall(require("opsh.http").get, URL, {timout = 5})
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("unknown option 'timout'; did you mean 'timeout'%?", err.message)
  end)
end)
