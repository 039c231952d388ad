#!/usr/bin/env python3
"""A TCP echo server for end-to-end tests: every byte a client sends is sent back, until it closes.

Usage: tcp_echo_app.py NAME — listens on 127.0.0.1 on a port the OS picks, and prints
`listening PORT` on stdout once it is ready."""
import signal
import socket
import threading


def serve(connection):
    with connection:
        while True:
            data = connection.recv(65536)
            if not data:
                return
            connection.sendall(data)


def main():
    # A test runner's threads block most signals, and children inherit the mask.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
