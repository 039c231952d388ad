import Foundation

/// A read-only map from strings to small integer ids, probed with `DestinationHasher` instead of
/// SipHash: the keys come from the snapshot's own policies and every hit is compared in full, so
/// it needs speed, not flooding resistance.
///
/// Keys are kept as UTF-8 bytes in one pool, so a lookup can take a slice of a larger string (the
/// namespace inside a principal) without building a `String`.
struct InternTable: Sendable {
    /// Open-addressed slots, a power-of-two count at most half full: 0 when empty, else the high 32
    /// bits of the key's hash above the entry's index + 1, so a probe rejects other keys without
    /// leaving the slot's cache line.
    private let slots: [UInt64]
    /// Each key's place in `bytes` and its id, together so that a hit reads one entry.
    private let entries: [Entry]
    private let bytes: [UInt8]

    private struct Entry {
        let start: Int32
        let length: Int32
        let id: Int32
    }

    /// Builds the table from `dictionary`'s pairs.
    init(_ dictionary: [String: Int32]) {
        var capacity = 8
        while capacity < dictionary.count * 2 { capacity *= 2 }
        var slots = [UInt64](repeating: 0, count: capacity)
        var entries: [Entry] = []
        var bytes: [UInt8] = []
        for (key, id) in dictionary {
            let hash = Self.hash(key)
            var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            entries.append(Entry(start: Int32(bytes.count), length: Int32(key.utf8.count), id: id))
            bytes += key.utf8
            slots[slot] = (hash >> 32) << 32 | UInt64(entries.count)
        }
        self.slots = slots
        self.entries = entries
        self.bytes = bytes
    }

    /// The id of `key`, or `nil` when it was not interned.
    @inline(__always)
    func id(_ key: String) -> Int32? {
        guard !entries.isEmpty else { return nil }
        if let found = key.utf8.withContiguousStorageIfAvailable({ id(bytes: $0) }) { return found }
        var copy = key
        return copy.withUTF8 { id(bytes: $0) }
    }

    /// The id of the string made of these UTF-8 bytes, or `nil` when it was not interned.
    @inline(__always)
    func id(bytes key: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard !entries.isEmpty else { return nil }
        var hasher = DestinationHasher()
        hasher.combine(bytes: key)
        let hash = hasher.value
        let tag = hash >> 32
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let value = slots[slot]
            if value == 0 { return nil }
            if value >> 32 == tag {
                let entry = entries[Int(truncatingIfNeeded: value & 0xffff_ffff) - 1]
                if Int(entry.length) == key.count && equal(key, at: Int(entry.start)) { return entry.id }
            }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    private func equal(_ key: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        guard let base = key.baseAddress, key.count > 0 else { return true }
        return bytes.withUnsafeBufferPointer { pool in memcmp(base, pool.baseAddress! + start, key.count) == 0 }
    }

    @inline(__always)
    private static func hash(_ key: String) -> UInt64 {
        var hasher = DestinationHasher()
        hasher.combine(key)
        return hasher.value
    }
}
