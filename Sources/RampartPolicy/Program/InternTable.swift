/// A read-only map from strings to small integer ids, probed with `DestinationHasher` instead of
/// SipHash: the keys come from the snapshot's own policies and every hit is compared in full, so
/// it needs speed, not flooding resistance.
struct InternTable: Sendable {
    /// Slot → entry index + 1 (0 is empty); a power-of-two count, at most half full.
    private let slots: [Int32]
    private let keys: [String]
    private let hashes: [UInt64]
    private let ids: [Int32]

    /// Builds the table from `dictionary`'s pairs.
    init(_ dictionary: [String: Int32]) {
        var capacity = 8
        while capacity < dictionary.count * 2 { capacity *= 2 }
        var slots = [Int32](repeating: 0, count: capacity)
        var keys: [String] = []
        var hashes: [UInt64] = []
        var ids: [Int32] = []
        for (key, id) in dictionary {
            let hash = Self.hash(key)
            var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            keys.append(key)
            hashes.append(hash)
            ids.append(id)
            slots[slot] = Int32(keys.count)
        }
        self.slots = slots
        self.keys = keys
        self.hashes = hashes
        self.ids = ids
    }

    /// The id of `key`, or `nil` when it was not interned.
    @inline(__always)
    func id(_ key: String) -> Int32? {
        guard !keys.isEmpty else { return nil }
        let hash = Self.hash(key)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { return nil }
            if hashes[entry - 1] == hash && keys[entry - 1] == key { return ids[entry - 1] }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    private static func hash(_ key: String) -> UInt64 {
        var hasher = DestinationHasher()
        hasher.combine(key)
        return hasher.value
    }
}
