/// One generated workload: where it runs, its labels, its identity and who usually calls it.
struct SyntheticWorkload: Sendable {
    let namespace: String
    let app: String
    let version: String
    let labels: [String: String]
    /// The REST resource its API serves (`orders`, `carts`, ...).
    let resource: String
    /// Indexes of the workloads its policies allow and that send it most of its traffic.
    let callers: [Int]

    var principal: String { "cluster.local/ns/\(namespace)/sa/\(app)" }
    var host: String { "\(app).\(namespace).svc.cluster.local" }
}

/// The shape of a generated mesh: namespaces of about twenty workloads each, with labelled
/// deployments, call graphs that stay mostly inside a namespace, and JWT issuers for some namespaces.
struct SyntheticTopology: Sendable {
    static let workloadsPerNamespace = 20
    static let teams = [
        "payments", "orders", "catalog", "checkout", "identity", "search", "shipping", "billing", "reviews", "media",
    ]
    static let services = [
        "api", "web", "worker", "cart", "ledger", "pricing", "inventory", "notifier", "gateway", "profile", "session",
        "recommender", "indexer", "exporter", "scheduler", "audit",
    ]
    static let resources = ["orders", "carts", "users", "items", "payments", "invoices", "sessions", "reports"]

    let namespaces: [String]
    let workloads: [SyntheticWorkload]
    /// The JWT issuer of each namespace that has a RequestAuthentication.
    let issuers: [String: String]

    init(workloads count: Int, random: inout SeededGenerator) {
        let namespaceCount = max(1, (count + Self.workloadsPerNamespace - 1) / Self.workloadsPerNamespace)
        namespaces = (0..<namespaceCount).map { "\(Self.teams[$0 % Self.teams.count])-\($0)" }
        var issuers: [String: String] = [:]
        for (index, namespace) in namespaces.enumerated() where index % 4 == 0 {
            issuers[namespace] = "https://idp-\(index).example.com"
        }
        self.issuers = issuers
        var workloads: [SyntheticWorkload] = []
        workloads.reserveCapacity(count)
        for index in 0..<max(count, 1) {
            let namespaceIndex = min(index / Self.workloadsPerNamespace, namespaceCount - 1)
            let app = "\(Self.services[index % Self.services.count])-\(index)"
            let roll = random.index(10)
            let version = roll < 6 ? "v1" : roll < 9 ? "v2" : "v3"
            let hash = String(random.next() & 0xff_ffff_ffff, radix: 16)
            let labels = [
                "app": app, "version": version, "security.istio.io/tlsMode": "istio", "pod-template-hash": hash,
            ]
            workloads.append(
                SyntheticWorkload(
                    namespace: namespaces[namespaceIndex], app: app, version: version, labels: labels,
                    resource: random.pick(Self.resources),
                    callers: Self.callers(of: index, namespaceIndex: namespaceIndex, count: count, random: &random)))
        }
        self.workloads = workloads
    }

    /// Two or three callers, mostly from the same namespace, sometimes from another one.
    private static func callers(of index: Int, namespaceIndex: Int, count: Int, random: inout SeededGenerator) -> [Int] {
        let first = namespaceIndex * workloadsPerNamespace
        let span = max(1, min(workloadsPerNamespace, count - first))
        var callers: [Int] = []
        for _ in 0..<(2 + random.index(2)) {
            let caller = random.chance(0.75) ? first + random.index(span) : random.index(max(count, 1))
            if caller != index && !callers.contains(caller) { callers.append(caller) }
        }
        return callers.isEmpty ? [(index + 1) % max(count, 1)] : callers
    }
}
