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
  local proc = require("opsh.proc")

  -- a listener whose accept queue is full: the kernel drops further SYNs, so a probe stays pending
  local function full_listener(port)
    local p = proc.spawn{argv = {"python3", "-c", string.format([[
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d))
s.listen(0)
clients = []
for _ in range(4):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", %d))
    except BlockingIOError:
        pass
    clients.append(c)
time.sleep(0.2)
print("full", flush=True)
time.sleep(60)
]], port, port)}, stdout = "pipe", stderr = "null"}
    assert.are.equal("full", p:lines()())
    return p
  end

  it("cancels a probe that is really pending, and the probe never wakes the task again", function()
    local port = net.free_port()
    local _ <close> = full_listener(port)
    local t = opsh.spawn(net.port_open, "127.0.0.1", port, 30)
    opsh.sleep(0.1)
    assert.are.equal("suspended", t:status())
    assert.is_true(t:cancel())
    assert.are.equal("cancelled", t:status())
    opsh.sleep(0.05)
    assert.are.equal("cancelled", t:status())
    -- the same pending connect, given up by its own deadline
    local ok, reason = net.port_open("127.0.0.1", port, 0.1)
    assert.is_false(ok)
    assert.are.equal("timed out", reason)
  end)

  it("cancels a batch of probes at every stage", function()
    local tasks = {}
    for i = 1, 20 do tasks[i] = opsh.spawn(net.port_open, "127.0.0.1", net.free_port()) end
    opsh.yield()
    local cancelled = 0
    for i = 1, 20 do
      local was = tasks[i]:status()
      if tasks[i]:cancel() then cancelled = cancelled + 1 end
      assert.are.equal(was == "done" and "done" or "cancelled", tasks[i]:status())
    end
    opsh.sleep(0.01)
    for i = 1, 20 do assert.are_not.equal("failed", tasks[i]:status()) end
    assert.is_true(cancelled > 0)
  end)

  it("takes math.huge as no deadline and refuses a zero one", function()
    local ok = net.port_open("127.0.0.1", net.free_port(), math.huge)
    assert.is_false(ok)
    local ok2, err = opsh.try(net.port_open, "127.0.0.1", 1, 0)
    assert.is_false(ok2)
    assert.are.equal("usage", err.kind)
  end)
end)
