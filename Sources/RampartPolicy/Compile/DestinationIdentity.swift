/// A destination's namespace and labels by their representation: the bits of the `String` and of
/// the `Dictionary` value, not their contents.
///
/// Requests for one workload usually carry the same label dictionary, shared copy-on-write from
/// wherever the workload is registered, so equal bits are found without reading the labels. Equal
/// bits mean equal values as long as the storage they refer to stays alive and unchanged, which
/// `IdentityMemo` ensures by holding a copy of both (a held copy also makes any later mutation by
/// the owner copy first). Unequal bits say nothing: equal contents in other storage miss the memo
/// and are found by content.
struct DestinationIdentity: Hashable {
    let namespaceLow: UInt64
    let namespaceHigh: UInt64
    let labels: UInt64

    /// `nil` where `String` is not two words or `Dictionary` not one (the memo is then unused).
    @inline(__always)
    init?(namespace: String, labels: [String: String]) {
        guard MemoryLayout<String>.size == 16, MemoryLayout<[String: String]>.size == 8 else { return nil }
        (namespaceLow, namespaceHigh) = withUnsafeBytes(of: namespace) {
            ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        self.labels = withUnsafeBytes(of: labels) { $0.loadUnaligned(as: UInt64.self) }
    }

    /// A cheap mix of the three words.
    @inline(__always)
    var cheapHash: UInt64 {
        let first = (namespaceLow ^ namespaceHigh).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
        let second = (first.high ^ first.low ^ labels).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
        return second.high ^ second.low
    }
}

/// Maps destination identities to entries of a `DestinationTable`: linear probing over at most
/// `probes` slots from the hash's home, a new identity taking the first free slot there or else
/// replacing the home slot's.
struct IdentityMemo {
    private struct Slot {
        var identity: DestinationIdentity?
        var entry: Int32 = -1
    }

    /// Allocated at the first `remember`: a snapshot only ever resolved through
    /// `PolicySnapshot.workload(namespace:labels:)`, as a proxy's is, never needs them.
    private var slots: [Slot] = []
    /// Per slot, the namespace and labels whose storage its identity refers to, kept alive.
    private var held: [(namespace: String, labels: [String: String])] = []
    private let size: Int
    private let mask: Int
    static let probes = 4

    /// A memo of `size` slots (a power of two).
    init(size: Int) {
        self.size = size
        mask = size - 1
    }

    /// The entry remembered for `identity`, or `nil`.
    @inline(__always)
    func entry(of identity: DestinationIdentity) -> Int? {
        if slots.isEmpty { return nil }
        var index = Int(truncatingIfNeeded: identity.cheapHash) & mask
        for _ in 0..<Self.probes {
            let slot = slots[index]
            guard let found = slot.identity else { return nil }
            if found == identity { return Int(slot.entry) }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Remembers that `identity`, made from `namespace` and `labels`, names `entry`.
    mutating func remember(_ identity: DestinationIdentity, namespace: String, labels: [String: String], entry: Int) {
        if slots.isEmpty {
            slots = Array(repeating: Slot(), count: size)
            held = Array(repeating: ("", [:]), count: size)
        }
        let home = Int(truncatingIfNeeded: identity.cheapHash) & mask
        var chosen = home
        var index = home
        for _ in 0..<Self.probes {
            if slots[index].identity == nil || slots[index].identity == identity {
                chosen = index
                break
            }
            index = (index + 1) & mask
        }
        held[chosen] = (namespace, labels)
        slots[chosen] = Slot(identity: identity, entry: Int32(truncatingIfNeeded: entry))
    }

    /// Forgets everything, releasing what was held.
    mutating func removeAll() {
        slots = []
        held = []
    }
}
