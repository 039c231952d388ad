import Foundation

/// A read-only map from strings to small integer ids, probed with `DestinationHasher` instead of
/// SipHash: the keys come from the snapshot's own policies and every hit is compared in full, so
/// it needs speed, not flooding resistance.
///
/// Keys are kept as UTF-8 bytes in one pool, so a lookup can take a slice of a larger string (the
/// namespace inside a principal) without building a `String`.
struct InternTable: Sendable {
    /// Slot → entry index + 1 (0 is empty); a power-of-two count, at most half full.
    private let slots: [Int32]
    /// Each entry's hash, the offset and length of its key in `bytes`, and its id.
    private let hashes: [UInt64]
    private let starts: [Int32]
    private let lengths: [Int32]
    private let ids: [Int32]
    private let bytes: [UInt8]

    /// Builds the table from `dictionary`'s pairs.
    init(_ dictionary: [String: Int32]) {
        var capacity = 8
        while capacity < dictionary.count * 2 { capacity *= 2 }
        var slots = [Int32](repeating: 0, count: capacity)
        var hashes: [UInt64] = []
        var starts: [Int32] = []
        var lengths: [Int32] = []
        var ids: [Int32] = []
        var bytes: [UInt8] = []
        for (key, id) in dictionary {
            let hash = Self.hash(key)
            var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            hashes.append(hash)
            starts.append(Int32(bytes.count))
            lengths.append(Int32(key.utf8.count))
            ids.append(id)
            bytes += key.utf8
            slots[slot] = Int32(ids.count)
        }
        self.slots = slots
        self.hashes = hashes
        self.starts = starts
        self.lengths = lengths
        self.ids = ids
        self.bytes = bytes
    }

    /// The id of `key`, or `nil` when it was not interned.
    @inline(__always)
    func id(_ key: String) -> Int32? {
        guard !ids.isEmpty else { return nil }
        if let found = key.utf8.withContiguousStorageIfAvailable({ id(bytes: $0) }) { return found }
        var copy = key
        return copy.withUTF8 { id(bytes: $0) }
    }

    /// The id of the string made of these UTF-8 bytes, or `nil` when it was not interned.
    @inline(__always)
    func id(bytes key: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard !ids.isEmpty else { return nil }
        var hasher = DestinationHasher()
        hasher.combine(bytes: key)
        let hash = hasher.value
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(slots[slot]) - 1
            if entry < 0 { return nil }
            if hashes[entry] == hash && Int(lengths[entry]) == key.count && equal(key, at: Int(starts[entry])) {
                return ids[entry]
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
