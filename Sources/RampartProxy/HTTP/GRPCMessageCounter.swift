import NIOCore

/// Counts the gRPC messages in one direction of a call as its bytes pass, for Istio's
/// `istio_request_messages_total` and `istio_response_messages_total`: each message is a 5-byte
/// prefix (a flag byte and a big-endian length) and that many bytes, and may be split across
/// chunks anywhere. A message counts from its first byte, as Envoy's gRPC frame inspector counts it.
struct GRPCMessageCounter: Sendable {
    /// Messages begun so far.
    private(set) var count = 0
    /// Prefix bytes of the current message read so far (0 at a message boundary).
    private var prefixRead = 0
    /// The current message's length, as far as its prefix has been read.
    private var length: UInt64 = 0
    /// Bytes of the current message's payload still to come.
    private var payloadLeft: UInt64 = 0

    /// Counts what `chunk` holds of the call's bytes, which come in order.
    mutating func feed(_ chunk: ByteBuffer) {
        chunk.withUnsafeReadableBytes { feed($0) }
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count {
            if payloadLeft > 0 {
                let skipped = Int(min(payloadLeft, UInt64(bytes.count - index)))
                payloadLeft -= UInt64(skipped)
                index += skipped
                continue
            }
            if prefixRead == 0 {
                count += 1
                length = 0
            } else {
                length = length << 8 | UInt64(bytes[index])
            }
            prefixRead += 1
            index += 1
            if prefixRead == 5 {
                prefixRead = 0
                payloadLeft = length
            }
        }
    }

    /// The number of messages in a whole body.
    static func count(_ body: ByteBuffer) -> Int {
        var counter = GRPCMessageCounter()
        counter.feed(body)
        return counter.count
    }
}
