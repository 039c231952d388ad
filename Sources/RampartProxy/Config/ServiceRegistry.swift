/// A service instance the registry knows.
public struct ServiceEndpoint: Sendable, Hashable {
    /// The workload's inbound listener.
    public let host: String
    public let port: Int
    /// The SPIFFE ID its certificate carries.
    public let spiffeID: String
    /// The workload's name and labels.
    public let workload: String
    public let labels: [String: String]
    /// `host:port` (`[v6]:port`), as access logs show the upstream.
    public let address: String
    /// What its metrics labels say of it, worked out once.
    public let telemetry: WorkloadTelemetry
    /// Whether it is reached in plaintext: its PeerAuthentication resolves to DISABLE, so its
    /// proxy takes plaintext (the control plane works this out, as istiod does for auto mTLS).
    public let plaintext: Bool

    /// Creates an endpoint.
    public init(host: String, port: Int, spiffeID: String, workload: String, labels: [String: String] = [:], plaintext: Bool = false) {
        self.host = host
        self.port = port
        self.spiffeID = spiffeID
        self.workload = workload
        self.labels = labels
        self.plaintext = plaintext
        self.address = EndpointAddress.join(host, port)
        telemetry = WorkloadTelemetry(labels: labels, workload: workload)
    }
}

/// A service and every registered instance of it.
public struct MeshService: Sendable, Hashable {
    /// The short name and namespace.
    public let name: String
    public let namespace: String
    /// The port clients use.
    public let port: Int
    /// Its instances.
    public let endpoints: [ServiceEndpoint]
    /// The identities the service's instances may present, collected once: every outbound
    /// request to the service checks its server against them.
    public let expectedIdentities: Set<String>

    /// Creates a service.
    public init(name: String, namespace: String, port: Int, endpoints: [ServiceEndpoint]) {
        self.name = name
        self.namespace = namespace
        self.port = port
        self.endpoints = endpoints
        self.expectedIdentities = Set(endpoints.map(\.spiffeID))
        let hostname = "\(name).\(namespace).svc.\(MeshService.defaultDomain)"
        self.localHostname = hostname
        self.localClusterName = Self.clusterName(port: port, hostname: hostname)
        self.localServerName = Self.serverName(port: port, hostname: hostname)
    }

    /// The fully qualified name in the default domain, made once: outbound requests label their
    /// metrics and log lines with it.
    private let localHostname: String

    /// The fully qualified name, `name.namespace.svc.<domain>`.
    public func hostname(domain: String) -> String {
        domain == MeshService.defaultDomain ? localHostname : "\(name).\(namespace).svc.\(domain)"
    }

    /// Envoy's cluster for this service port as Istio names it, `outbound|PORT||FQDN` (the
    /// access log's `upstream_cluster`).
    public func clusterName(domain: String) -> String {
        domain == MeshService.defaultDomain ? localClusterName : Self.clusterName(port: port, hostname: hostname(domain: domain))
    }

    /// The server name Istio's sidecars put in the ClientHello to this service port,
    /// `outbound_.PORT_._.FQDN`, which the peer's `connection.sni` conditions read.
    public func serverName(domain: String) -> String {
        domain == MeshService.defaultDomain ? localServerName : Self.serverName(port: port, hostname: hostname(domain: domain))
    }

    /// The cluster and server names in the default domain, made once with the service: every
    /// outbound request carries both.
    private let localClusterName: String
    private let localServerName: String

    private static func clusterName(port: Int, hostname: String) -> String { "outbound|\(port)||\(hostname)" }
    private static func serverName(port: Int, hostname: String) -> String { "outbound_.\(port)_._.\(hostname)" }

    /// Kubernetes' default cluster domain.
    public static let defaultDomain = "cluster.local"
}

/// What the registry knows about one workload, found from the identity it presented.
public struct PeerWorkload: Sendable, Hashable {
    /// The workload's name, namespace and labels.
    public let workload: String
    public let namespace: String
    public let labels: [String: String]
    /// What its metrics labels say of it, worked out once.
    public let telemetry: WorkloadTelemetry

    /// Creates a workload's record.
    public init(workload: String, namespace: String, labels: [String: String]) {
        self.workload = workload
        self.namespace = namespace
        self.labels = labels
        telemetry = WorkloadTelemetry(labels: labels, workload: workload)
    }
}

/// Every service of the mesh, as the control plane streamed it, with Kubernetes-style name lookup.
public struct ServiceRegistry: Sendable {
    /// The services by namespace, then name; a name served on several ports has one entry per
    /// port, lowest port first.
    public let services: [String: [String: [MeshService]]]
    /// Workloads by the SPIFFE ID they present.
    public let workloads: [String: PeerWorkload]
    /// The cluster domain of fully qualified names.
    public let domain: String

    /// Builds the lookup tables.
    public init(services: [MeshService], domain: String = "cluster.local") {
        var byNamespace: [String: [String: [MeshService]]] = [:]
        var workloads: [String: PeerWorkload] = [:]
        for service in services.sorted(by: { $0.port < $1.port }) {
            byNamespace[service.namespace, default: [:]][service.name, default: []].append(service)
            for endpoint in service.endpoints {
                workloads[endpoint.spiffeID] = PeerWorkload(workload: endpoint.workload, namespace: service.namespace, labels: endpoint.labels)
            }
        }
        self.services = byNamespace
        self.workloads = workloads
        self.domain = domain
    }

    /// The service a host names, as a client in `clientNamespace` would resolve it:
    /// `reviews` (the client's namespace), `reviews.ns`, `reviews.ns.svc` or
    /// `reviews.ns.svc.cluster.local`, case-insensitively and without a trailing dot.
    public func resolve(host: String, clientNamespace: String) -> MeshService? {
        resolveAll(host: host, clientNamespace: clientNamespace).first
    }

    /// Every port of the service a host names (see `resolve`), lowest port first; empty when the
    /// registry has no such service.
    public func resolveAll(host: String, clientNamespace: String) -> [MeshService] {
        lookup(host: host, clientNamespace: clientNamespace) ?? []
    }

    private func lookup(host: String, clientNamespace: String) -> [MeshService]? {
        // Read on every outbound request: the labels are found by their dots, without splitting.
        let lowered = !host.utf8.contains { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 >= 0x80 }
        var name = lowered ? host : host.lowercased()
        if name.utf8.last == UInt8(ascii: ".") { name.removeLast() }
        let dot = UInt8(ascii: ".")
        guard let firstDot = name.utf8.firstIndex(of: dot) else { return services[clientNamespace]?[name] }
        let service = String(name[..<firstDot])
        let rest = name[name.utf8.index(after: firstDot)...]
        guard let secondDot = rest.utf8.firstIndex(of: dot) else { return services[String(rest)]?[service] }
        let namespace = String(rest[..<secondDot])
        // `name.namespace.svc`, or `name.namespace.svc.<domain>`.
        let tail = rest[rest.utf8.index(after: secondDot)...]
        if tail == "svc" { return services[namespace]?[service] }
        guard tail.hasPrefix("svc."), tail.utf8.dropFirst(4).elementsEqual(domain.utf8) else { return nil }
        return services[namespace]?[service]
    }
}
