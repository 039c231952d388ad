import RampartIdentity

/// The workload a proxy stands beside, as its command line describes it.
public struct WorkloadInfo: Sendable, Hashable {
    /// The workload's name (`reviews-v1`).
    public let name: String
    /// Its namespace.
    public let namespace: String
    /// Its labels; `app` and `version` name it in telemetry, as Istio's do.
    public let labels: [String: String]
    /// The services it serves.
    public let services: [ServicePort]
    /// The application's port behind the inbound listener: the destination port policies see.
    public let appPort: Int

    /// Creates a description.
    public init(name: String, namespace: String, labels: [String: String] = [:], services: [ServicePort] = [], appPort: Int) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.services = services
        self.appPort = appPort
    }
}

/// One service a workload serves, as `--service NAME:PORT` names it.
public struct ServicePort: Sendable, Hashable {
    /// The service's short name.
    public let name: String
    /// The port clients use.
    public let port: Int

    /// Creates a service port.
    public init(name: String, port: Int) {
        self.name = name
        self.port = port
    }

    /// Parses `NAME:PORT`.
    public init(parsing text: String) throws(ProxyError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port), Self.isDNSLabel(String(parts[0])) else {
            throw ProxyError(.badConfiguration, "--service \(text): expected NAME:PORT, with NAME a DNS label (reviews) and PORT 1-65535 (reviews:9080)")
        }
        self.init(name: String(parts[0]), port: port)
    }

    /// True for a lower-case RFC 1123 label.
    public static func isDNSLabel(_ text: String) -> Bool { DNSName.isLabel(text) }
}
