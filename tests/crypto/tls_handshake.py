#!/usr/bin/env python3
"""A TLS handshake between Python's ssl server and client on 127.0.0.1, for crypto_spec.lua.

usage: tls_handshake.py CA_PEM SERVER_CERT SERVER_KEY SERVER_HOSTNAME [CLIENT_CERT CLIENT_KEY]

The client is the default context with the CA loaded (check_hostname on, CERT_REQUIRED) plus
the flags Python 3.13 adds by default (VERIFY_X509_STRICT, VERIFY_X509_PARTIAL_CHAIN), so an
older Python judges the certificates as strictly as 3.13 does. With a client certificate the
server requires one (mutual TLS) and verifies it against the same CA.
Prints "OK <version> <peer CN seen by the server>" or "FAIL <reason>"; exits 0 either way.
"""
import socket
import ssl
import sys
import threading


def main():
    ca, cert, key, hostname = sys.argv[1:5]
    client_cert = sys.argv[5:7] if len(sys.argv) >= 7 else None

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    if client_cert:
        server_ctx.load_verify_locations(ca)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.verify_flags |= ssl.VERIFY_X509_STRICT

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen = {}

    def serve():
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                if peer:
                    seen["cn"] = dict(x[0] for x in peer["subject"]).get("commonName")
                tls.sendall(b"hello")
        except (OSError, ssl.SSLError) as e:
            seen["error"] = str(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    ctx = ssl.create_default_context(cafile=ca)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if hasattr(ssl, "VERIFY_X509_PARTIAL_CHAIN"):
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    if client_cert:
        ctx.load_cert_chain(*client_cert)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=hostname) as tls:
                data = tls.recv(5)
                version = tls.version()
        t.join(10)
        if data != b"hello":
            print("FAIL server said %r (%s)" % (data, seen.get("error")))
        else:
            print("OK %s %s" % (version, seen.get("cn", "-")))
    except (OSError, ssl.SSLError) as e:
        reason = getattr(e, "reason", None) or str(e)
        print("FAIL %s" % reason)
    finally:
        listener.close()


if __name__ == "__main__":
    main()
