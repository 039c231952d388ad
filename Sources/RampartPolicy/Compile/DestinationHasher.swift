/// A cheap, non-cryptographic 64-bit hash of a few strings, for the destination cache.
///
/// The cache's keys come from the snapshot's own workloads and are compared in full on every hit,
/// so collisions cost a probe, never a wrong answer; it need not resist flooding, only be fast:
/// eight bytes per multiply instead of SipHash's rounds. Byte access is confined to `combine`.
struct DestinationHasher {
    private(set) var value: UInt64 = 0x243F_6A88_85A3_08D3

    /// Mixes in `string`'s UTF-8 bytes and its length (so `("ab", "c")` and `("a", "bc")` differ).
    @inline(__always)
    mutating func combine(_ string: String) {
        if let done: Void = string.utf8.withContiguousStorageIfAvailable({ combine(bytes: $0) }) { return done }
        var copy = string
        copy.withUTF8 { combine(bytes: $0) }
    }

    /// Mixes in bytes and their count, as `combine(_:)` does for a string of those UTF-8 bytes.
    @inline(__always)
    mutating func combine(bytes: UnsafeBufferPointer<UInt8>) {
        let count = bytes.count
        let raw = UnsafeRawBufferPointer(bytes)
        var offset = 0
        while offset + 8 <= count {
            mix(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        var tail: UInt64 = 0
        let left = count - offset
        if left > 0 && count >= 8 {
            // The last eight bytes in one load, shifted so that only the unread ones remain, in the
            // places the byte-by-byte loop below would put them.
            tail = raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) >> UInt64(8 * (8 - left))
        } else {
            var shift: UInt64 = 0
            while offset < count {
                tail |= UInt64(bytes[offset]) << shift
                shift += 8
                offset += 1
            }
        }
        mix(tail ^ UInt64(count) << 56)
    }

    /// Mixes in whether a value is absent, then the value.
    @inline(__always)
    mutating func combine(_ string: String?) {
        guard let string else {
            mix(0x9E37_79B9_7F4A_7C15)
            return
        }
        combine(string)
    }

    @inline(__always)
    private mutating func mix(_ word: UInt64) {
        let product = (value ^ word).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
        value = product.high ^ product.low
    }
}
