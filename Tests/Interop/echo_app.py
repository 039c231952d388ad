#!/usr/bin/env python3
"""A small HTTP application for end-to-end tests: it answers every request with 200 and a JSON
object naming the application, the method, the path and the headers it received.

Usage: echo_app.py NAME  — listens on 127.0.0.1 on a port the OS picks, and prints
`listening PORT` on stdout once it is ready."""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps({
            "app": self.server.app_name,
            "method": self.command,
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body_bytes": len(body),
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = answer

    def log_message(self, *args):
        pass


def main():
    # A test runner's threads block most signals, and children inherit the mask: take SIGTERM
    # back, so that stopping the application stops it at once.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.app_name = sys.argv[1] if len(sys.argv) > 1 else "echo"
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
