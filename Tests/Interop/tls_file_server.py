#!/usr/bin/env python3
"""An HTTPS static file server for end-to-end tests, such as a key server whose certificate a
private CA signs.

Usage: tls_file_server.py DIR CERT KEY  — serves the files of DIR over TLS with the PEM
certificate chain CERT and key KEY on 127.0.0.1, on a port the OS picks, and prints
`listening PORT` on stdout once it is ready."""
import os
import signal
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Files(BaseHTTPRequestHandler):
    def do_GET(self):
        root = self.server.root
        path = os.path.normpath(os.path.join(root, self.path.split("?")[0].lstrip("/")))
        if not path.startswith(root) or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        with open(path, "rb") as file:
            body = file.read()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    # A test runner's threads block most signals, and children inherit the mask: take SIGTERM
    # back, so that stopping the server stops it at once.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    root, certificate, key = sys.argv[1:4]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.root = os.path.abspath(root)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
