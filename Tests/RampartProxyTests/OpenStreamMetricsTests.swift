import CoreMetrics
import Foundation
import MetricsTestKit
import NIOCore
import NIOPosix
import Testing

@testable import RampartProxy

/// Metrics of connections and calls that stay open: an open TCP connection's bytes and an open
/// gRPC stream's messages reach the counters at each reporting interval (Istio's
/// `tcp_reporting_duration`), and what is left when they end, counted once.
@Suite("metrics of open connections and streams")
struct OpenStreamMetricsTests {
    /// The process's metrics backend, recorded in memory; installed once, by the first test that
    /// reads it (nothing else in the test process installs one).
    static let metrics: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    /// The sum of the counters named `label` that the destination's proxy reported, whose labels
    /// include `dimension`.
    static func total(_ label: String, where dimension: (String, String)) -> Int64 {
        metrics.counters(label: label).filter { counter in
            counter.dimensions.contains { $0 == dimension } && counter.dimensions.contains { $0 == ("reporter", "destination") }
        }.reduce(0) { $0 + $1.totalValue }
    }

    /// Waits up to 5 s for `condition`.
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<250 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test("an open TCP connection's bytes are counted while it is open, and each byte once")
    func tcpBytes() async throws {
        _ = Self.metrics
        let workload = ("destination_workload", "tally-db")
        try await TCPAndJWTTests().withEchoProxy(name: "tally-db", reportingInterval: .milliseconds(100)) { proxy, _ in
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: proxy.inboundPort) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            try await client.executeThenClose { inbound, outbound in
                var replies = inbound.makeAsyncIterator()
                try await outbound.write(ByteBuffer(string: "\u{0}\u{1}first 12345\n"))
                _ = try await replies.next()
                // Open, and 14 bytes each way so far.
                #expect(try await Self.eventually {
                    Self.total("istio_tcp_received_bytes_total", where: workload) == 14 && Self.total("istio_tcp_sent_bytes_total", where: workload) == 14
                }, "received \(Self.total("istio_tcp_received_bytes_total", where: workload)), sent \(Self.total("istio_tcp_sent_bytes_total", where: workload))")
                #expect(Self.total("istio_tcp_connections_closed_total", where: workload) == 0)
                try await outbound.write(ByteBuffer(string: "\u{0}\u{1}second\n"))
                _ = try await replies.next()
            }
            // Closed: the rest is added, and nothing twice.
            #expect(try await Self.eventually { Self.total("istio_tcp_connections_closed_total", where: workload) == 1 })
            #expect(Self.total("istio_tcp_received_bytes_total", where: workload) == 23)
            #expect(Self.total("istio_tcp_sent_bytes_total", where: workload) == 23)
        }
    }

    @Test("an open gRPC stream's messages are counted while it is open, and each message once")
    func grpcMessages() async throws {
        _ = Self.metrics
        let workload = ("destination_workload", "tally-grpc")
        let requests = { Self.total("istio_request_messages_total", where: workload) }
        let responses = { Self.total("istio_response_messages_total", where: workload) }
        try await GRPCStreamingTests().withMesh(serverName: "tally-grpc", reportingInterval: .milliseconds(100)) { _, outboundPort, _, _ in
            try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/PingPong") { call in
                for round in 1...2 {
                    try await call.send("ping \(round)")
                    #expect(try await call.receive() == "pong: ping \(round)")
                }
                // Still open: two messages each way reach the counters.
                #expect(try await Self.eventually { requests() == 2 && responses() == 2 }, "requests \(requests()), responses \(responses())")
                #expect(Self.total("istio_requests_total", where: workload) == 0)
                try await call.send("ping 3")
                #expect(try await call.receive() == "pong: ping 3")
                #expect(try await call.finish().first(name: "grpc-status") == "0")
            }
            // Ended: the third of each is added once, with the call's own count.
            #expect(try await Self.eventually { Self.total("istio_requests_total", where: workload) == 1 })
            #expect(requests() == 3 && responses() == 3, "requests \(requests()), responses \(responses())")
            let series = Self.metrics.counters(label: "istio_request_messages_total").filter { $0.dimensions.contains { $0 == workload } }
            #expect(series.allSatisfy { counter in !counter.dimensions.contains { $0.0 == "response_code" } })
        }
    }

    @Test("a base64 gRPC-Web body that follows its head in pieces has its messages counted after decoding")
    func grpcWebUploadMessages() async throws {
        _ = Self.metrics
        let workload = ("destination_workload", "tally-web")
        try await GRPCStreamingTests().withMesh(appProtocol: .grpcWeb, serverName: "tally-web") { _, outboundPort, _, _ in
            var frames = GRPCStreamClient.frame("abc")
            var second = GRPCStreamClient.frame("defg")
            frames.writeBuffer(&second)
            let text = Array(Data(frames.readableBytesView).base64EncodedString().utf8)
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: outboundPort) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            let answer = try await client.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: """
                    POST /test.Stream/Count HTTP/1.1\r\nHost: server:8080\r\ncontent-type: application/grpc-web-text\r\n\
                    content-length: \(text.count)\r\nconnection: close\r\n\r\n
                    """))
                // The body comes after the head, split inside base64 groups.
                for piece in [text[..<5], text[5..<12], text[12...]] {
                    try await Task.sleep(for: .milliseconds(60))
                    try await outbound.write(ByteBuffer(bytes: piece))
                }
                var answer = ""
                for try await chunk in inbound { answer += String(buffer: chunk) }
                return answer
            }
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            #expect(try await Self.eventually { Self.total("istio_request_messages_total", where: workload) == 2 },
                    "\(Self.total("istio_request_messages_total", where: workload))")
            #expect(Self.total("istio_response_messages_total", where: workload) == 1)
        }
    }
}
