#!/usr/bin/env python3
"""A grpcio client for end-to-end tests of streaming calls through the proxies (see
grpc_stream_app.py). It prints one JSON object with what each call did.

Usage: grpc_stream_client.py HOST:PORT AUTHORITY [--wait SECONDS]
  --wait  retries the first call until it succeeds or SECONDS pass (a mesh still starting up).

- pingpong: a bidirectional call whose client sends each message only once the reply to the one
  before has arrived; a proxy that held the request until its end would stall it;
- countdown: a server-streaming call of 3 messages sent 0.4 s apart, with the seconds between
  the first and the last arrival; a proxy that held the response until its end would give ~0;
- upload: a client-streaming call of 20 MiB in 1 MiB messages, past the proxies' default limit
  on bodies held whole (16 MiB)."""
import json
import queue
import sys
import time

import grpc


def identity(data):
    return data


def ping_pong(channel, rounds=3):
    call = channel.stream_stream("/test.Stream/PingPong", request_serializer=identity, response_deserializer=identity)
    outgoing = queue.Queue()

    def requests():
        while True:
            item = outgoing.get()
            if item is None:
                return
            yield item

    replies = []
    outgoing.put(b"ping 1")
    responses = call(requests(), timeout=10)
    for reply in responses:
        replies.append(reply.decode())
        if len(replies) == rounds:
            outgoing.put(None)
        else:
            outgoing.put(f"ping {len(replies) + 1}".encode())
    return replies


def countdown(channel):
    call = channel.unary_stream("/test.Stream/Countdown", request_serializer=identity, response_deserializer=identity)
    arrivals = []
    messages = []
    for message in call(b"3", timeout=10):
        arrivals.append(time.monotonic())
        messages.append(message.decode())
    return {"messages": messages, "spread": arrivals[-1] - arrivals[0] if arrivals else 0}


def upload(channel, megabytes=20):
    call = channel.stream_unary("/test.Stream/Upload", request_serializer=identity, response_deserializer=identity)
    chunk = b"u" * (1024 * 1024)
    return call(iter([chunk] * megabytes), timeout=30).decode()


def main():
    target, authority = sys.argv[1], sys.argv[2]
    wait = float(sys.argv[sys.argv.index("--wait") + 1]) if "--wait" in sys.argv else 0
    limit = 64 * 1024 * 1024
    options = [
        ("grpc.default_authority", authority),
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
    ]
    result = {}
    with grpc.insecure_channel(target, options=options) as channel:
        deadline = time.monotonic() + wait
        while True:
            try:
                result["pingpong"] = ping_pong(channel)
                break
            except grpc.RpcError as error:
                if time.monotonic() >= deadline:
                    result["pingpong"] = {"error": f"{error.code().name}: {error.details()}"}
                    break
                time.sleep(0.2)
        for name, run in (("countdown", countdown), ("upload", upload)):
            try:
                result[name] = run(channel)
            except grpc.RpcError as error:
                result[name] = {"error": f"{error.code().name}: {error.details()}"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
