local net = require("opsh.net")
local opsh = require("opsh")

describe("opsh.net", function()
  it("finds a free port and sees it closed, then open while a server listens", function()
    local port = net.free_port()
    assert.is_true(port > 1024 and port < 65536)
    local ok, reason = net.port_open("127.0.0.1", port)
    assert.is_false(ok)
    assert.matches("refused", reason)
    local pid = io.popen("python3 -c 'import socket,time; s=socket.socket(); "
      .. "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", " .. port
      .. ")); s.listen(); time.sleep(5)' >/dev/null 2>&1 & echo $!"):read("l")
    assert.is_true(net.wait_port("127.0.0.1", port, {timeout = 5}))
    os.execute("kill " .. pid)
    assert.is_true(net.wait_closed("127.0.0.1", port, {timeout = 5}))
  end)

  it("gives up with a timeout error naming the address", function()
    local port = net.free_port()
    local ok, err = opsh.try(net.wait_port, "127.0.0.1", port, {timeout = 0.1})
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.matches("127.0.0.1:" .. port, err.message)
  end)

  it("rejects host names that are not addresses", function()
    local ok, err = opsh.try(net.port_open, "example.com", 80)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
  end)

  it("probes many ports at once", function()
    local ports = {}
    for i = 1, 50 do ports[i] = net.free_port() end
    local res = opsh.parallel(ports, function(p) return (net.port_open("127.0.0.1", p)) end)
    for i = 1, 50 do assert.is_false(res[i]) end
  end)
end)

describe("opsh.net cancellation", function()
  it("cancels a pending probe without leaking or crashing", function()
    -- a blackhole-ish target: a listening socket whose backlog is full would be needed for a truly
    -- pending connect; on loopback connects finish at once, so cancel a batch right after starting it
    local tasks = {}
    for i = 1, 20 do tasks[i] = opsh.spawn(net.port_open, "127.0.0.1", net.free_port()) end
    opsh.yield()
    for i = 1, 20 do tasks[i]:cancel() end
    opsh.sleep(0.01)
    for i = 1, 20 do assert.is_truthy(tasks[i]:status() == "cancelled" or tasks[i]:status() == "done") end
  end)
end)
