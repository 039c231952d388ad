import Synchronization

/// A destination reduced to what resolving its policies depends on: its namespace and the values
/// of the label keys some selector of the snapshot reads (`nil` where the workload lacks the label).
///
/// Selectors read no other labels, so two destinations with equal keys get the same policies. The
/// first three values are stored inline so building a key does not allocate in the common case.
struct WorkloadKey: Hashable, Sendable {
    let namespace: String
    let first: String?
    let second: String?
    let third: String?
    let rest: [String?]

    init(namespace: String, labels: [String: String], keys: [String]) {
        self.namespace = namespace
        let count = keys.count
        first = count > 0 && !labels.isEmpty ? labels[keys[0]] : nil
        second = count > 1 && !labels.isEmpty ? labels[keys[1]] : nil
        third = count > 2 && !labels.isEmpty ? labels[keys[2]] : nil
        rest = count > 3 ? keys[3...].map { labels[$0] } : []
    }
}

/// Remembers the policies resolved for each destination a snapshot has evaluated, as a proxy holds
/// its workload's policies, so the per-request lookup is a hash of the namespace and a few labels.
///
/// Resolution is a pure function of the key, so caching changes no decision. The cache is bounded:
/// when full it is emptied and refilled. It is safe to share between threads.
final class WorkloadCache: Sendable {
    /// The label keys any selector of the snapshot reads, sorted.
    let keys: [String]
    private let capacity: Int
    private let entries = Mutex<[WorkloadKey: WorkloadPolicies]>([:])

    init(keys: [String], capacity: Int = 4096) {
        self.keys = keys
        self.capacity = capacity
    }

    /// The cached policies for a destination, resolving and remembering them on a miss.
    @inline(__always)
    func policies(
        namespace: String, labels: [String: String], resolve: (String, [String: String]) -> WorkloadPolicies
    ) -> WorkloadPolicies {
        let key = WorkloadKey(namespace: namespace, labels: labels, keys: keys)
        if let found = entries.withLock({ $0[key] }) { return found }
        let resolved = resolve(namespace, labels)
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = resolved
        }
        return resolved
    }
}
