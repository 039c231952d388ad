import Foundation
import NIOCore
import Testing

@testable import RampartProxy

/// The count of gRPC messages behind `istio_request_messages_total` and
/// `istio_response_messages_total`: length-prefixed messages split anywhere across chunks.
@Suite("gRPC message counts")
struct GRPCMessageCounterTests {
    /// A body of gRPC messages with these payload sizes.
    static func body(_ sizes: [Int]) -> ByteBuffer {
        var body = ByteBuffer()
        for (index, size) in sizes.enumerated() {
            body.writeInteger(UInt8(index % 2))
            body.writeInteger(UInt32(size))
            body.writeBytes([UInt8](repeating: UInt8(truncatingIfNeeded: index), count: size))
        }
        return body
    }

    @Test("a whole body counts its messages, empty ones included")
    func whole() {
        #expect(GRPCMessageCounter.count(Self.body([])) == 0)
        #expect(GRPCMessageCounter.count(Self.body([0])) == 1)
        #expect(GRPCMessageCounter.count(Self.body([3, 0, 0, 17])) == 4)
        // Payload bytes that look like a prefix are not messages.
        #expect(GRPCMessageCounter.count(Self.body([5, 5, 5])) == 3)
        #expect(GRPCMessageCounter.count(Self.body([70_000, 1])) == 2)
    }

    @Test("the same messages count the same however the body is split, at every byte")
    func splits() {
        let sizes = [0, 7, 1, 300, 0, 2]
        let body = Self.body(sizes)
        let bytes = Array(body.readableBytesView)
        for first in 0...bytes.count {
            for second in first...bytes.count where second == first || (second - first) % 3 == 0 || second == bytes.count {
                var counter = GRPCMessageCounter()
                counter.feed(ByteBuffer(bytes: bytes[..<first]))
                counter.feed(ByteBuffer(bytes: bytes[first..<second]))
                counter.feed(ByteBuffer(bytes: bytes[second...]))
                #expect(counter.count == sizes.count, "split at \(first) and \(second)")
                if counter.count != sizes.count { return }
            }
        }
    }

    @Test("a message counts from its first byte, as Envoy's frame inspector counts it")
    func countsAtFirstByte() {
        var counter = GRPCMessageCounter()
        let body = Array(Self.body([4, 4]).readableBytesView)
        counter.feed(ByteBuffer(bytes: body[..<1]))
        #expect(counter.count == 1)
        counter.feed(ByteBuffer(bytes: body[1..<9]))
        #expect(counter.count == 1, "the first message's prefix and payload")
        counter.feed(ByteBuffer(bytes: body[9..<10]))
        #expect(counter.count == 2)
    }

    @Test("the message counters carry Istio's labels without the call's outcome")
    func messageLabels() {
        var record = RequestRecord(reporter: .destination, startTime: Date(), protocolName: "HTTP/2")
        record.isGRPC = true
        record.grpcStatus = "0"
        record.responseCode = 200
        record.sourcePrincipal = "cluster.local/ns/a/sa/a"
        record.destinationWorkload = "b"
        let names = ProxyMetrics.messageLabels(record).map(\.0)
        let all = ProxyMetrics.labels(record).map(\.0)
        #expect(Set(all).subtracting(names) == ["request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy"])
        #expect(names.contains("source_principal") && names.contains("destination_workload") && names.first == "reporter")
        let values = Dictionary(ProxyMetrics.messageLabels(record), uniquingKeysWith: { first, _ in first })
        #expect(values["source_principal"] == "spiffe://cluster.local/ns/a/sa/a")
    }
}
