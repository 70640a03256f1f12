#!/usr/bin/env python3
"""A test HTTP(S) server that is not opsh's own, for tests/http/http_spec.lua.

Python standard library only. Binds 127.0.0.1 on a free port and writes "listening PORT"
to --port-file once it accepts connections. Threaded, HTTP/1.1 keep-alive.

Routes (any method):
  /echo                 JSON {method, path, query, raw_query, headers, body, client_cn,
                        absolute_uri (true when asked as a proxy: GET http://host/echo)}
  /status/CODE          that status; ?echo=1 puts the request (headers, path) in the body, ?echo=body
                        the request's body
  /bearer/TOKEN         200 (as /echo) for "Authorization: Bearer TOKEN", else 401 with a
                        WWW-Authenticate challenge; /count/bearer-TOKEN counts the requests
  /ratelimit/ID         ?remaining=N: 200 with x-ms-ratelimit-remaining-subscription-reads: N;
                        /count/ID counts the requests
  /secret               ?status=S: a Key Vault-like JSON body with secrets in "value" members
  /flaky/ID             ?fail=N&status=S&retry_after=X|date: the first N requests for ID get S
                        (with Retry-After), later ones 200 "ok"
  /count/ID             JSON {count, times} of the requests /flaky/ID received
  /slow                 ?delay=S: waits, then 200
  /stream/ID            chunked text lines ?lines=N; after the first line it waits until
                        /release/ID is requested, so only a client that streams can finish
  /release/ID           releases /stream/ID
  /drip/ID              sends headers and then a byte every 50 ms until the client goes away;
                        /state/ID says "sending", then "closed"
  /state/ID             the state of /drip/ID
  /upload               reads the body (Content-Length or chunked) and answers {"bytes": N}
  /notjson              200 with a body that is not JSON
  /big                  ?size=N bytes of 'x'
  /redirect             302 to /echo
  /cut-head             part of a response head, then the connection is closed
  /page/CODE            an error page as servers send them: ?type=html (an nginx-like page),
                        azure ({"error": {"code", "message"}}), k8s (a Status), with X-Request-Id
  /ka/N                 reads the body and answers {"bytes": N} on a keep-alive connection; every
                        Nth connection (default: each) is then reset when the client sends its next
                        request on it (a server that closed an idle keep-alive connection just as
                        the client reused it: its FIN, then a reset); at most 2 such connections
                        per N wait at a time; /count/ka-resets counts the resets
"""
import argparse
import email.utils
import json
import os
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
COUNTS = {}      # flaky id -> [times]
KA_DOOMED_MAX = 2
STATES = {}      # drip id -> state
RELEASES = {}    # stream id -> threading.Event


def release_event(key):
    with LOCK:
        return RELEASES.setdefault(key, threading.Event())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_one_request(self):
        if getattr(self, "reset_next", False):
            # what a client sees when it reuses a keep-alive connection the server closed as idle
            # just before: the server's FIN, then a reset for the request that came after it
            select.select([self.connection], [], [], 60)
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            with LOCK:
                COUNTS["ka-doomed-" + self.reset_next] -= 1
                COUNTS.setdefault("ka-resets", []).append(time.time())
            return
        super().handle_one_request()

    # ---- helpers ----
    def read_body(self, sink=None):
        total = 0
        chunks = []
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, 1 << 20))
                    remaining -= len(data)
                    total += len(data)
                    if sink is None:
                        chunks.append(data)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                data = self.rfile.read(min(remaining, 1 << 20))
                if not data:
                    break
                remaining -= len(data)
                total += len(data)
                if sink is None:
                    chunks.append(data)
        return total, b"".join(chunks)

    def reply(self, status, body=b"", ctype="text/plain", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if "X-Request-Id" not in (headers or {}):
            self.send_header("X-Request-Id", "req-%d" % threading.get_ident())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def client_cn(self):
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            return None
        if not cert:
            return None
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    # ---- routes ----
    def handle_any(self):
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = {k: (v[0] if len(v) == 1 else v) for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        route = parts[0]
        key = parts[1] if len(parts) > 1 else ""
        if route == "upload":
            n, _ = self.read_body(sink=True)
            return self.reply(200, json.dumps({"bytes": n}), "application/json")
        if route == "ka":
            n, _ = self.read_body(sink=True)
            self.reply(200, json.dumps({"bytes": n}), "application/json")
            if not hasattr(self, "ordinal"):
                with LOCK:
                    COUNTS["ka-connections"] = COUNTS.get("ka-connections", 0) + 1
                    self.ordinal = COUNTS["ka-connections"]
            every = key or "1"
            if not getattr(self, "reset_next", False) and self.ordinal % int(every) == 0:
                # at most KA_DOOMED_MAX doomed connections idle at once: curl reconnects a request whose
                # reused connection died up to 5 times, so one request must not meet 5 of them in a row
                with LOCK:
                    if COUNTS.get("ka-doomed-" + every, 0) < KA_DOOMED_MAX:
                        COUNTS["ka-doomed-" + every] = COUNTS.get("ka-doomed-" + every, 0) + 1
                        self.reset_next = every
            return None
        if route == "cut-head":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Len")
            self.wfile.flush()
            self.close_connection = True
            return None
        if route == "page":
            return self.page(int(key), query.get("type", "html"))
        _, body = self.read_body()
        if route == "echo":
            doc = {
                "method": self.command, "path": url.path, "query": query, "raw_query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"), "client_cn": self.client_cn(),
                "absolute_uri": self.path.startswith("http://"),
            }
            return self.reply(200, json.dumps(doc), "application/json")
        if route == "status":
            text = "status %s" % key
            if query.get("echo") == "body":
                text += " for body %s" % body.decode("utf-8", "replace")
            elif query.get("echo"):
                text += " for %s with %s" % (self.path, dict(self.headers.items()))
            return self.reply(int(key), text)
        if route == "bearer":
            with LOCK:
                COUNTS.setdefault("bearer-" + key, []).append(time.time())
            if self.headers.get("Authorization") != "Bearer " + key:
                return self.reply(401, json.dumps({"error": {"code": "Unauthorized", "message": "no valid token"}}),
                                  "application/json", headers={
                                      "WWW-Authenticate": 'Bearer realm="opsh-test", scope="read"'})
            doc = {"path": url.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
            return self.reply(200, json.dumps(doc), "application/json")
        if route == "ratelimit":
            with LOCK:
                COUNTS.setdefault(key, []).append(time.time())
            return self.reply(200, "ok", headers={
                "x-ms-ratelimit-remaining-subscription-reads": query.get("remaining", "100")})
        if route == "secret":
            doc = {"value": "kv-s3cr3t-\"q\"\u00e9/\n", "id": "https://vault/secrets/db/1",
                   "attributes": {"enabled": True}, "tags": {"value": "not-a-string-key"},
                   "keys": [{"keyName": "key1", "value": "acct-key-one=="},
                            {"keyName": "key2", "value": "acct-key-two=="}],
                   "list": [{"value": 5}]}
            return self.reply(int(query.get("status", "200")), json.dumps(doc, ensure_ascii=True),
                              "application/json")
        if route == "flaky":
            with LOCK:
                times = COUNTS.setdefault(key, [])
                times.append(time.time())
                n = len(times)
            if n <= int(query.get("fail", "1")):
                headers = {}
                ra = query.get("retry_after")
                if ra == "date":
                    headers["Retry-After"] = email.utils.formatdate(time.time() + 2, usegmt=True)
                elif ra:
                    headers["Retry-After"] = ra
                return self.reply(int(query.get("status", "503")), "try again", headers=headers)
            return self.reply(200, "ok")
        if route == "count":
            with LOCK:
                times = list(COUNTS.get(key, []))
            return self.reply(200, json.dumps({"count": len(times), "times": times}), "application/json")
        if route == "slow":
            time.sleep(float(query.get("delay", "5")))
            return self.reply(200, "slow")
        if route == "notjson":
            return self.reply(200, "<html>not json</html>", "application/json")
        if route == "big":
            return self.reply(200, b"x" * int(query.get("size", "1000")))
        if route == "redirect":
            return self.reply(302, "", headers={"Location": "/echo"})
        if route == "release":
            release_event(key).set()
            return self.reply(200, "released")
        if route == "stream":
            return self.stream(key, int(query.get("lines", "5")))
        if route == "drip":
            return self.drip(key)
        if route == "state":
            with LOCK:
                state = STATES.get(key, "none")
            return self.reply(200, state)
        return self.reply(404, "no route %s" % url.path)

    def page(self, code, kind):
        reason = self.responses.get(code, ("Error",))[0]
        if kind == "azure":
            body = json.dumps({"error": {"code": "ResourceNotFound", "message":
                               "The Resource 'Microsoft.Web/sites/legal' under resource group 'rg' was not found."}})
            ctype = "application/json"
        elif kind == "k8s":
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": 'pods "web-0" not found', "reason": "NotFound", "code": code})
            ctype = "application/json"
        else:
            body = ("<!DOCTYPE html>\r\n<html>\r\n<head><title>%d %s</title>\r\n"
                    "<style>body { font-family: sans-serif; }</style></head>\r\n<body>\r\n"
                    "<center><h1>%d %s</h1></center>\r\n"
                    "<p>The requested method is not supported for this resource.</p>\r\n"
                    "<hr><center>test-server/1.0</center>\r\n</body>\r\n</html>\r\n" + "<!-- padding -->\r\n" * 20) % (
                        code, reason, code, reason)
            ctype = "text/html"
        return self.reply(code, body, ctype, headers={"X-Request-Id": "page-req-%d" % code})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stream(self, key, lines):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        text = "".join("line %d of %d\r\n" % (i, lines) for i in range(1, lines + 1)).encode()
        first = text.index(b"\n") + 1
        # the first line whole, then the rest cut across chunk boundaries mid-line
        self.chunk(text[:first])
        release_event(key).wait(30)
        rest = text[first:]
        for i in range(0, len(rest), 7):
            self.chunk(rest[i:i + 7])
            time.sleep(0.002)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drip(self, key):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        with LOCK:
            STATES[key] = "sending"
        try:
            for _ in range(20 * 60):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        with LOCK:
            STATES[key] = "closed"
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    ssl_context = None

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        self.RequestHandlerClass(request, client_address, self)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca", help="require a client certificate signed by this CA")
    args = ap.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        server.ssl_context = ctx
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("listening %d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
