#!/usr/bin/env python3
"""A TCP echo server for end-to-end tests: every byte a client sends is sent back, and when the
client closes its sending side, `end after N bytes` follows before the server closes.

Usage: tcp_echo_app.py NAME — listens on 127.0.0.1 on a port the OS picks, and prints
`listening PORT` on stdout once it is ready."""
import signal
import socket
import threading


def serve(connection):
    total = 0
    with connection:
        try:
            while True:
                data = connection.recv(65536)
                if not data:
                    # Reaches a client that half-closed and still reads; one that closed is gone.
                    connection.sendall(f"end after {total} bytes".encode())
                    return
                total += len(data)
                connection.sendall(data)
        except OSError:
            return


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
