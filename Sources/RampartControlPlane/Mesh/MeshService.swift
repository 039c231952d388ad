/// A service in the mesh and its endpoints: every registered workload that serves it.
///
/// Derived from registrations alone, so it changes exactly when proxies come and go.
public struct MeshService: Sendable, Hashable {
    /// One instance of the service.
    public struct Endpoint: Sendable, Hashable {
        /// The workload's inbound listener, `host:port`, as peers dial it.
        public let address: String
        /// The SPIFFE ID on the workload's certificate.
        public let spiffeID: String
        /// The workload's name.
        public let workload: String
        /// The workload's labels.
        public let labels: [String: String]
        /// The workload's application port (0 when its proxy did not say), where its
        /// PeerAuthentication mode is read.
        public let appPort: Int

        /// Creates an endpoint.
        public init(address: String, spiffeID: String, workload: String, labels: [String: String], appPort: Int = 0) {
            self.address = address
            self.spiffeID = spiffeID
            self.workload = workload
            self.labels = labels
            self.appPort = appPort
        }
    }

    /// The service's short name.
    public let name: String
    /// Its namespace.
    public let namespace: String
    /// The port clients use.
    public let port: Int
    /// Its endpoints, ordered by workload then address.
    public let endpoints: [Endpoint]

    /// Creates a service.
    public init(name: String, namespace: String, port: Int, endpoints: [Endpoint]) {
        self.name = name
        self.namespace = namespace
        self.port = port
        self.endpoints = endpoints
    }

    /// Groups the services of `proxies` by namespace, name and port, ordered that way.
    ///
    /// A workload contributes an endpoint to each service it serves when its inbound address
    /// can be dialled (an unspecified host is replaced by the address the proxy connected from).
    public static func derive(from proxies: [ProxyRecord]) -> [MeshService] {
        struct Key: Hashable, Comparable {
            let namespace: String
            let name: String
            let port: Int
            static func < (lhs: Key, rhs: Key) -> Bool { (lhs.namespace, lhs.name, lhs.port) < (rhs.namespace, rhs.name, rhs.port) }
        }
        var grouped: [Key: [Endpoint]] = [:]
        for proxy in proxies {
            let registration = proxy.registration
            let address = InboundAddress(parsing: registration.inboundAddress)?.reachable(peerHost: proxy.peerHost)
            for service in registration.services {
                let key = Key(namespace: registration.namespace, name: service.name, port: service.port)
                // A service whose only workload cannot be dialled is still listed, with no endpoints.
                guard let address else {
                    if grouped[key] == nil { grouped[key] = [] }
                    continue
                }
                grouped[key, default: []].append(
                    Endpoint(
                        address: address, spiffeID: proxy.spiffeID, workload: registration.workload, labels: registration.labels,
                        appPort: registration.appPort)
                )
            }
        }
        return grouped.keys.sorted().map { key in
            let endpoints = (grouped[key] ?? []).sorted { ($0.workload, $0.address) < ($1.workload, $1.address) }
            return MeshService(name: key.name, namespace: key.namespace, port: key.port, endpoints: endpoints)
        }
    }
}
