/// The open-addressing table behind `WorkloadCache`: linear probing over a dense array of slots
/// (8 bytes each: the key's hash and the entry's index), at most half full, emptied when
/// `capacity` entries are held.
///
/// Keys and policies live in entry arrays apart from the slots, so a probe reads one small array
/// and touches a key only when its hash matches; the key is compared where it is stored, not
/// copied out.
///
/// In front of it, an `IdentityMemo` finds entries by the representation of a request's namespace
/// and labels (see `DestinationIdentity`), so a destination whose label dictionary was seen before
/// is found without reading its labels.
struct DestinationTable {
    /// Per slot: the upper 32 bits of the key's hash, then the entry index + 1 (0: empty).
    private var slots: [UInt64]
    private var keys: [WorkloadKey] = []
    private var values: [WorkloadPolicies] = []
    private var memo: IdentityMemo
    private let capacity: Int
    private let mask: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        var size = 2
        while size < self.capacity * 2 { size *= 2 }
        slots = Array(repeating: 0, count: size)
        memo = IdentityMemo(size: size)
        mask = size - 1
    }

    /// The policies remembered for a destination identity, or `nil`.
    @inline(__always)
    func find(_ identity: DestinationIdentity) -> WorkloadPolicies? {
        guard let entry = memo.entry(of: identity) else { return nil }
        return values[entry]
    }

    /// The policies remembered for `key`, whose `cheapHash` is `hash`, remembering `identity`
    /// (made from `namespace` and `labels`) for them when found.
    mutating func find(
        _ key: WorkloadKey, hash: UInt64, identity: DestinationIdentity?, namespace: String, labels: [String: String]
    ) -> WorkloadPolicies? {
        guard let entry = entry(of: key, hash: hash) else { return nil }
        if let identity { memo.remember(identity, namespace: namespace, labels: labels, entry: entry) }
        return values[entry]
    }

    /// The policies remembered for `key`, whose `cheapHash` is `hash`.
    @inline(__always)
    func find(_ key: WorkloadKey, hash: UInt64) -> WorkloadPolicies? {
        guard let entry = entry(of: key, hash: hash) else { return nil }
        return values[entry]
    }

    /// The entry holding `key`, or `nil`.
    @inline(__always)
    private func entry(of key: WorkloadKey, hash: UInt64) -> Int? {
        let tag = hash >> 32
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[index]
            if slot == 0 { return nil }
            let entry = Int(truncatingIfNeeded: slot & 0xffff_ffff) - 1
            if slot >> 32 == tag && keys[entry] == key { return entry }
            index = (index + 1) & mask
        }
    }

    /// Remembers `value` for `key`, emptying the table first when it holds `capacity` entries;
    /// returns the entry holding `key` (the one already there, if any).
    @discardableResult
    mutating func insert(_ key: WorkloadKey, hash: UInt64, _ value: WorkloadPolicies) -> Int {
        if let entry = entry(of: key, hash: hash) { return entry }
        if keys.count >= capacity {
            for index in slots.indices { slots[index] = 0 }
            keys.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            memo.removeAll()
        }
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index] != 0 { index = (index + 1) & mask }
        keys.append(key)
        values.append(value)
        slots[index] = (hash >> 32) << 32 | UInt64(keys.count)
        return keys.count - 1
    }

    /// Remembers `value` for `key` as `insert` does, and `identity` (made from `namespace` and
    /// `labels`) for it.
    mutating func insert(
        _ key: WorkloadKey, hash: UInt64, _ value: WorkloadPolicies, identity: DestinationIdentity?, namespace: String,
        labels: [String: String]
    ) {
        let entry = insert(key, hash: hash, value)
        if let identity { memo.remember(identity, namespace: namespace, labels: labels, entry: entry) }
    }
}
