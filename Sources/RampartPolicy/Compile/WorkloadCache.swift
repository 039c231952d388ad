import Synchronization

/// Remembers the policies resolved for each destination a snapshot has evaluated, as a proxy holds
/// its workload's policies, so the per-request lookup is one cheap hash of the namespace and of the
/// values of the few label keys selectors read; or, for a destination whose namespace and label
/// dictionary were seen before (the same storage, as requests built from one registered workload
/// share), one probe by their representation (`DestinationIdentity`) that reads no label.
///
/// Resolution is a pure function of that key (see `WorkloadKey`), so caching changes no decision.
/// The cache is bounded: when full it is emptied and refilled. It is safe to share between threads;
/// a hit holds the lock only for one probe of an open-addressing table.
final class WorkloadCache: Sendable {
    /// The label keys any selector of the snapshot reads, sorted.
    let keys: [String]
    /// Whether resolution reads the labels that mark a gateway: true when the snapshot holds a
    /// PeerAuthentication, which does not apply to gateways.
    let readsGateway: Bool
    private let table: Mutex<DestinationTable>

    init(keys: [String], readsGateway: Bool, capacity: Int = 4096) {
        self.keys = keys
        self.readsGateway = readsGateway
        table = Mutex(DestinationTable(capacity: capacity))
    }

    /// The cached policies for a destination, resolving and remembering them on a miss.
    @inline(__always)
    func policies(
        namespace: String, labels: [String: String], resolve: (String, [String: String]) -> WorkloadPolicies
    ) -> WorkloadPolicies {
        let identity = DestinationIdentity(namespace: namespace, labels: labels)
        if let identity, let found = table.withLock({ $0.find(identity) }) { return found }
        let key = WorkloadKey(namespace: namespace, labels: labels, keys: keys, readsGateway: readsGateway)
        let hash = key.cheapHash
        if let found = table.withLock({
            $0.find(key, hash: hash, identity: identity, namespace: namespace, labels: labels)
        }) {
            return found
        }
        let resolved = resolve(namespace, labels)
        table.withLock {
            $0.insert(key, hash: hash, resolved, identity: identity, namespace: namespace, labels: labels)
        }
        return resolved
    }
}
