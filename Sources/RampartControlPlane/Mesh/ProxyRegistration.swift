import RampartIdentity

/// What a proxy said about its workload when it connected, once checked.
///
/// The registry's plain-data view of a wire `Registration`; ``ProxyRegistration/init(validating:caller:)``
/// does the conversion and says what was wrong with a bad one.
public struct ProxyRegistration: Sendable, Hashable {
    /// One service port the workload serves.
    public struct ServicePort: Sendable, Hashable, Comparable {
        /// The service's short name (`reviews`), in the workload's namespace.
        public let name: String
        /// The port clients use, 1–65535.
        public let port: Int

        /// Creates a service port.
        public init(name: String, port: Int) {
            self.name = name
            self.port = port
        }

        public static func < (lhs: ServicePort, rhs: ServicePort) -> Bool {
            (lhs.name, lhs.port) < (rhs.name, rhs.port)
        }
    }

    /// The workload's name, unique in its namespace (`reviews-v1`).
    public let workload: String
    /// The workload's namespace.
    public let namespace: String
    /// The workload's labels, which policies select on.
    public let labels: [String: String]
    /// The services the workload serves, sorted, without duplicates.
    public let services: [ServicePort]
    /// Where other proxies reach the workload's inbound listener, as the proxy gave it (`0.0.0.0:15006`).
    public let inboundAddress: String
    /// The proxy's software version.
    public let proxyVersion: String
    /// The application's port, which PeerAuthentication's `portLevelMtls` names; 0 when unknown.
    public let appPort: Int

    /// Creates a registration from values already checked.
    public init(
        workload: String, namespace: String, labels: [String: String] = [:], services: [ServicePort] = [], inboundAddress: String = "", proxyVersion: String = "",
        appPort: Int = 0
    ) {
        self.workload = workload
        self.namespace = namespace
        self.labels = labels
        self.services = Array(Set(services)).sorted()
        self.inboundAddress = inboundAddress
        self.proxyVersion = proxyVersion
        self.appPort = appPort
    }

    /// `workload.namespace`, the name `rampart status` shows.
    public var displayName: String { "\(workload).\(namespace)" }

    /// Whether `text` is a DNS label as Kubernetes names are: 1–63 of `a-z`, `0-9` and `-`,
    /// starting and ending with a letter or digit.
    public static func isDNSLabel(_ text: String) -> Bool { DNSName.isLabel(text) }
}
