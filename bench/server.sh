#!/usr/bin/env bash
# opsh.server next to nginx (one worker: one thread, like opsh), same run, same machine:
# wrk with 64 keep-alive connections against GET / -> "ok", over HTTP and over HTTPS.
set -euo pipefail
OPSH=$(realpath "${1:-build/opsh}")
DURATION=${DURATION:-3s}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
rps() { wrk -t2 -c64 -d"$DURATION" "$1" | awk '/Requests\/sec/ {print $2}'; }

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1

cat >"$tmp/serve.lua" <<EOF
local server = require("opsh.server")
local plain = server.listen{port = 0}
local tls = server.listen{port = 0, tls = {cert = "$tmp/cert.pem", key = "$tmp/key.pem"}}
for _, s in ipairs({plain, tls}) do s:route("GET", "/", function() return "ok" end) end
local f = io.open("$tmp/ports", "w")
f:write(plain.port, " ", tls.port, "\n")
f:close()
plain:wait()
EOF
"$OPSH" "$tmp/serve.lua" >"$tmp/opsh.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/ports ]] && break; sleep 0.05; done
read -r op_plain op_tls <"$tmp/ports"

ng_plain=$(free_port)
ng_tls=$(free_port)
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server {
    listen 127.0.0.1:$ng_plain;
    listen 127.0.0.1:$ng_tls ssl;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    location / { return 200 "ok"; }
  }
}
EOF
nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)
wait_port "$ng_plain"
wait_port "$op_plain"

printf '%-22s %12s %12s %10s\n' "64 connections" "opsh req/s" "nginx req/s" "opsh/nginx"
o=$(rps "http://127.0.0.1:$op_plain/"); n=$(rps "http://127.0.0.1:$ng_plain/")
printf '%-22s %12.0f %12.0f %10.2f\n' "HTTP keep-alive" "$o" "$n" "$(echo "$o / $n" | bc -l)"
o=$(rps "https://127.0.0.1:$op_tls/"); n=$(rps "https://127.0.0.1:$ng_tls/")
printf '%-22s %12.0f %12.0f %10.2f\n' "HTTPS keep-alive" "$o" "$n" "$(echo "$o / $n" | bc -l)"
