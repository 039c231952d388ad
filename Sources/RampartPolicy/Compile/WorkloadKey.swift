/// A destination reduced to what resolving its policies depends on: its namespace, the values of
/// the label keys some selector of the snapshot reads (`nil` where the workload lacks the label),
/// and, when the snapshot holds a PeerAuthentication, whether the labels are a gateway's (a
/// gateway is exempt from PeerAuthentication whatever the selectors read).
///
/// Resolution reads no other labels, so two destinations with equal keys get the same policies.
/// The first three values are stored inline so building a key does not allocate in the common case.
struct WorkloadKey: Hashable, Sendable {
    let namespace: String
    let gateway: Bool
    let first: String?
    let second: String?
    let third: String?
    let rest: [String?]

    init(namespace: String, labels: [String: String], keys: [String], readsGateway: Bool) {
        self.namespace = namespace
        gateway = readsGateway && WorkloadSelector.isGateway(labels)
        let count = keys.count
        rest = count > 3 ? keys[3...].map { labels[$0] } : []
        guard count > 0, !labels.isEmpty else {
            (first, second, third) = (nil, nil, nil)
            return
        }
        if labels.count <= 8 && count <= 3 {
            // A short walk comparing key lengths first beats hashing each selector key.
            var values: (String?, String?, String?) = (nil, nil, nil)
            for (name, value) in labels {
                let length = name.utf8.count
                if length == keys[0].utf8.count && name == keys[0] {
                    values.0 = value
                } else if count > 1 && length == keys[1].utf8.count && name == keys[1] {
                    values.1 = value
                } else if count > 2 && length == keys[2].utf8.count && name == keys[2] {
                    values.2 = value
                }
            }
            (first, second, third) = values
        } else {
            first = labels[keys[0]]
            second = count > 1 ? labels[keys[1]] : nil
            third = count > 2 ? labels[keys[2]] : nil
        }
    }

    /// The key's `DestinationHasher` hash, never zero (zero marks an empty slot).
    @inline(__always)
    var cheapHash: UInt64 {
        var hasher = DestinationHasher()
        hasher.combine(namespace)
        hasher.combine(gateway ? "gateway" : nil)
        hasher.combine(first)
        hasher.combine(second)
        hasher.combine(third)
        for value in rest { hasher.combine(value) }
        return hasher.value | 1
    }
}
