#!/usr/bin/env bash
# bench/http.sh — 20,000 keep-alive GETs of a small static file from a local nginx with 64
# connections: opsh (opsh.parallel, limit 64, over http.get) against wrk (-c 64 -t 2 -d 5s),
# both against the same nginx in the same run. Prints req/s for each and the ratio; curl's own
# --parallel client is measured too, as the floor libcurl's per-request work sets.
# The same GETs through an http.client (base URL, a default header and an auth provider) are
# measured against plain http.get carrying the same headers, alternating in the same run: the
# client's own cost.
# Usage: bench/http.sh [path/to/opsh]   (default: build/opsh)
set -euo pipefail
cd "$(dirname "$0")/.."
OPSH=${1:-build/opsh}
REQUESTS=${REQUESTS:-20000}
CONNECTIONS=64
ROUNDS=${ROUNDS:-3}

for tool in nginx wrk python3; do
  command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool is not installed" >&2; exit 2; }
done
[ -x "$OPSH" ] || { echo "bench/http.sh: $OPSH not built" >&2; exit 2; }

dir=$(mktemp -d)
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chmod 755 "$dir"
mkdir -p "$dir/www" "$dir/tmp"
head -c 512 /dev/zero | tr '\0' 'x' > "$dir/www/index.html"
cat > "$dir/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
  }
}
CONF
nginx -p "$dir" -c "$dir/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && break
  sleep 0.05
done
url="http://127.0.0.1:$port/index.html"

cat > "$dir/bench.lua" <<'LUA'
local opsh = require("opsh")
local http = require("opsh.http")
local core = require("opsh._core")
local url, n, conns, mode = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] or "get"
http.configure{max_host_connections = conns}
local items = {}
for i = 1, n do items[i] = i end
local get = function() return http.get(url) end
local token = opsh.secret("Bearer bench-token")
if mode == "plain" then      -- what a client sends, given by each call
  local opts = {headers = {["X-Team"] = "sre", Authorization = token}}
  get = function() return http.get(url, opts) end
elseif mode == "client" then
  local base, path = url:match("^(https?://[^/]+)(/.*)$")
  local c = http.client{base_url = base, headers = {["X-Team"] = "sre"}, auth = function() return token end}
  get = function() return c:get(path) end
end
-- warm up: open the connections
opsh.parallel({table.unpack(items, 1, conns)}, function() get() end)
local t0, c0 = core.hrtime(), os.clock()
local bytes = 0
opsh.parallel(items, function()
  local res = get()
  bytes = bytes + #res.body
end, {limit = conns})
local dt, cpu = core.hrtime() - t0, os.clock() - c0
assert(bytes == n * 512, "short responses")
-- with a mode: the CPU time per request too, steadier than req/s on a shared machine
print(string.format(arg[4] and "%.0f %.1f" or "%.0f", n / dt, cpu / n * 1e6))
LUA
# alternate the two clients so that load from elsewhere on the machine hits both alike
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# libcurl's own command-line client on the same requests: the floor libcurl sets per request
for _ in $(seq "$REQUESTS"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$dir/curl.cfg"
curl_rps() {
  local t0 t1
  t0=$(date +%s.%N)
  curl -s --parallel --parallel-max "$CONNECTIONS" -K "$dir/curl.cfg" 2>/dev/null
  t1=$(date +%s.%N)
  awk -v n="$REQUESTS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}
opsh_all=() wrk_all=() wrk1_all=() curl_all=() plain_all=() client_all=() plain_cpu=() client_cpu=()
for _ in $(seq "$ROUNDS"); do
  opsh_all+=("$("$OPSH" "$dir/bench.lua" "$url" "$REQUESTS" "$CONNECTIONS")")
  read -r rps cpu < <("$OPSH" "$dir/bench.lua" "$url" "$REQUESTS" "$CONNECTIONS" plain)
  plain_all+=("$rps") plain_cpu+=("$cpu")
  read -r rps cpu < <("$OPSH" "$dir/bench.lua" "$url" "$REQUESTS" "$CONNECTIONS" client)
  client_all+=("$rps") client_cpu+=("$cpu")
  wrk_all+=("$(wrk -c "$CONNECTIONS" -t 2 -d 5s "$url" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')")
  # opsh runs on one core by design; wrk with one thread is the like-for-like peer
  wrk1_all+=("$(wrk -c "$CONNECTIONS" -t 1 -d 5s "$url" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')")
  curl_all+=("$(curl_rps)")
done
wrk1_rps=$(printf '%s\n' "${wrk1_all[@]}" | median)
curl_med=$(printf '%s\n' "${curl_all[@]}" | median)
opsh_rps=$(printf '%s\n' "${opsh_all[@]}" | median)
wrk_rps=$(printf '%s\n' "${wrk_all[@]}" | median)
plain_rps=$(printf '%s\n' "${plain_all[@]}" | median)
client_rps=$(printf '%s\n' "${client_all[@]}" | median)
plain_us=$(printf '%s\n' "${plain_cpu[@]}" | median)
client_us=$(printf '%s\n' "${client_cpu[@]}" | median)

echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), 512-byte file, keep-alive, $CONNECTIONS connections, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
printf "opsh http.get (%d requests, opsh.parallel limit %d): %8d req/s  (median of %s)\n" \
  "$REQUESTS" "$CONNECTIONS" "$opsh_rps" "${opsh_all[*]}"
printf "wrk -c %d -t 2 -d 5s:                               %8d req/s  (median of %s)\n" \
  "$CONNECTIONS" "$wrk_rps" "${wrk_all[*]}"
printf "wrk -c %d -t 1 -d 5s (one thread, like opsh):       %8d req/s  (median of %s)\n" \
  "$CONNECTIONS" "$wrk1_rps" "${wrk1_all[*]}"
printf "curl --parallel --parallel-max %d (libcurl's CLI):   %8d req/s  (median of %s)\n" \
  "$CONNECTIONS" "$curl_med" "${curl_all[*]}"
awk -v a="$opsh_rps" -v b="$wrk_rps" 'BEGIN { printf "ratio opsh/wrk: %.2f (target >= 0.50)\n", a / b }'
awk -v a="$opsh_rps" -v b="$wrk1_rps" 'BEGIN { printf "ratio opsh/wrk -t 1: %.2f\n", a / b }'
awk -v a="$opsh_rps" -v b="$curl_med" 'BEGIN { printf "ratio opsh/curl: %.2f\n", a / b }'
printf "http.get with a header and a secret Authorization:     %8d req/s  (median of %s)\n" \
  "$plain_rps" "${plain_all[*]}"
printf "http.client (base_url, default header, auth provider):  %8d req/s  (median of %s)\n" \
  "$client_rps" "${client_all[*]}"
printf "CPU per request: plain %s us (median of %s), client %s us (median of %s)\n" \
  "$plain_us" "${plain_cpu[*]}" "$client_us" "${client_cpu[*]}"
awk -v a="$client_rps" -v b="$plain_rps" -v ca="$client_us" -v cb="$plain_us" 'BEGIN {
  printf "client cost over plain calls: %.1f %% in req/s, %.1f %% in CPU per request (target < 5 %%)\n",
    (b - a) / b * 100, (ca - cb) / cb * 100 }'
