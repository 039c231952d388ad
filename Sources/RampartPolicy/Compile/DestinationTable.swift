/// The open-addressing table behind `WorkloadCache`: one array of slots holding the hash, the key
/// and the policies together (so a hit touches one slot), linear probing, at most half full,
/// emptied when `capacity` entries are held.
struct DestinationTable {
    private struct Slot {
        let hash: UInt64
        let key: WorkloadKey
        let value: WorkloadPolicies
    }

    private var slots: [Slot?]
    private var count = 0
    private let capacity: Int
    private let mask: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        var size = 2
        while size < self.capacity * 2 { size *= 2 }
        slots = Array(repeating: nil, count: size)
        mask = size - 1
    }

    /// The policies remembered for `key`, whose `cheapHash` is `hash`.
    @inline(__always)
    func find(_ key: WorkloadKey, hash: UInt64) -> WorkloadPolicies? {
        var index = Int(truncatingIfNeeded: hash) & mask
        while let slot = slots[index] {
            if slot.hash == hash && slot.key == key { return slot.value }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Remembers `value` for `key`, emptying the table first when it holds `capacity` entries.
    mutating func insert(_ key: WorkloadKey, hash: UInt64, _ value: WorkloadPolicies) {
        if find(key, hash: hash) != nil { return }
        if count >= capacity {
            for index in slots.indices { slots[index] = nil }
            count = 0
        }
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index] != nil { index = (index + 1) & mask }
        slots[index] = Slot(hash: hash, key: key, value: value)
        count += 1
    }
}
