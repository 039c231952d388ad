#!/usr/bin/env python3
"""A gRPC application for end-to-end tests, built on grpcio's generic handlers (messages are raw
bytes, so no generated code is needed). Its methods stream:

- /test.Stream/PingPong (bidirectional): answers each message as it arrives with b"pong: " + it;
- /test.Stream/Countdown (server streaming): sends N messages b"tick K", 0.4 s apart, where N is
  the request's text;
- /test.Stream/Upload (client streaming): answers, once the client ends, with the bytes and the
  messages it received.

Usage: grpc_stream_app.py — listens on 127.0.0.1 on a port the OS picks (plaintext HTTP/2), and
prints `listening PORT` on stdout once it is ready."""
import signal
import time
from concurrent import futures

import grpc


def ping_pong(requests, context):
    for message in requests:
        yield b"pong: " + message


def countdown(request, context):
    count = int(request.decode() or "1")
    for tick in range(count, 0, -1):
        yield f"tick {tick}".encode()
        if tick > 1:
            time.sleep(0.4)


def upload(requests, context):
    size = 0
    messages = 0
    for message in requests:
        size += len(message)
        messages += 1
    return f"{size} bytes in {messages} messages".encode()


def main():
    # A test runner's threads block most signals, and children inherit the mask: take SIGTERM
    # back, so that stopping the application stops it at once.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    handlers = grpc.method_handlers_generic_handler("test.Stream", {
        "PingPong": grpc.stream_stream_rpc_method_handler(ping_pong),
        "Countdown": grpc.unary_stream_rpc_method_handler(countdown),
        "Upload": grpc.stream_unary_rpc_method_handler(upload),
    })
    limit = 64 * 1024 * 1024
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
