#!/usr/bin/env python3
"""An OpenTelemetry collector for end-to-end tests: an OTLP/gRPC TraceService on loopback, built
from the opentelemetry-proto package, that writes each span it receives as one JSON line.

Usage: otlp_collector.py OUTPUT — listens on 127.0.0.1 on a port the OS picks, prints
`listening PORT` on stdout once it is ready, and appends to OUTPUT lines with the span's
resource service name, hex trace and span ids, parent id, name, kind (SPAN_KIND_*) and string
attributes."""
import json
import signal
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, output):
        self.output = output
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for resource_spans in request.resource_spans:
            service = ""
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    service = attribute.value.string_value
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    lines.append(json.dumps({
                        "service": service,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                        "status": trace_pb2.Status.StatusCode.Name(span.status.code),
                        "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
                        "attributes": {a.key: a.value.string_value for a in span.attributes},
                    }))
        with self.lock, open(self.output, "a") as f:
            for line in lines:
                f.write(line + "\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    # A test runner's threads block most signals, and children inherit the mask.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(sys.argv[1]), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
