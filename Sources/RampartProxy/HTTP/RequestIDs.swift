import Foundation
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Request IDs and trace context, as a sidecar keeps them.
public enum RequestIDs {
    /// The trace headers a proxy passes through unchanged (B3, W3C trace context, Envoy's own).
    public static let traceHeaders = ["x-request-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "x-ot-span-context"]

    /// Ensures `x-request-id` is set, generating a random (version 4) UUID, as Envoy does, when
    /// the client sent none; returns the value.
    @discardableResult
    public static func ensure(_ headers: inout HTTPHeaders) -> String {
        if let existing = headers.first(name: "x-request-id"), !existing.isEmpty { return existing }
        let id = randomUUID()
        headers.set(name: "x-request-id", value: id)
        return id
    }

    /// A version 4 UUID in lowercase, e.g. `0f8fad5b-d9cb-469f-a165-70867728950e`.
    static func randomUUID() -> String {
        var bytes = randomness.take16()
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let randomness = RandomBytes()
}

/// Kernel randomness fetched 4 KiB at a time.
///
/// Foundation's `UUID()` opens and reads `/dev/urandom` on every call; a proxy generating an ID
/// for every request would spend three system calls on each.
final class RandomBytes: Sendable {
    private static let chunk = 4096
    private let state = Mutex<(bytes: [UInt8], offset: Int)>(([], RandomBytes.chunk))

    /// Sixteen random bytes.
    func take16() -> [UInt8] {
        state.withLock { state in
            if state.offset + 16 > state.bytes.count {
                state.bytes = Self.fill(count: Self.chunk)
                state.offset = 0
            }
            defer { state.offset += 16 }
            return Array(state.bytes[state.offset..<state.offset + 16])
        }
    }

    /// glibc's `arc4random_buf` draws from the kernel's getrandom.
    private static func fill(count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, count) }
        return bytes
    }
}
