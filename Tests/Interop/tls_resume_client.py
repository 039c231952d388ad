#!/usr/bin/env python3
"""An mTLS client that resumes its TLS session, as Envoy and most TLS libraries do on a second
connection to the same server.

Usage: tls_resume_client.py HOST:PORT CERT KEY ROOTS PATH [TLS_VERSION]  — makes two connections,
each sending `GET PATH` over HTTP/1.1 with the client certificate CERT (key KEY), verifying the
server's chain against ROOTS (host names are not checked: an X.509-SVID names no DNS host). The
second connection offers the first one's session. TLS_VERSION is `1.2` or `1.3` (default: the
highest both sides support). Prints one JSON object per connection:
{"reused": bool, "status": int or null, "body": str}."""
import json
import socket
import ssl
import sys


def exchange(context, host, port, path, session):
    with socket.create_connection((host, port), timeout=10) as raw:
        with context.wrap_socket(raw, session=session) as tls:
            request = f"GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            received = b""
            try:
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    received += chunk
            except (ssl.SSLError, ConnectionResetError):
                pass
            text = received.decode("utf-8", "replace")
            status = None
            if text.startswith("HTTP/1.1 "):
                status = int(text.split(" ", 2)[1])
            body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
            print(json.dumps({"reused": tls.session_reused, "status": status, "body": body}), flush=True)
            return tls.session


def main():
    address, cert, key, roots, path = sys.argv[1:6]
    version = sys.argv[6] if len(sys.argv) > 6 else None
    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(roots)
    context.load_cert_chain(cert, key)
    if version == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    session = exchange(context, host, int(port), path, None)
    exchange(context, host, int(port), path, session)


if __name__ == "__main__":
    main()
