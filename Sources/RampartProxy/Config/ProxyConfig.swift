import Foundation
import RampartAPI
import RampartPolicy

/// One config snapshot from the control plane, compiled for this proxy's workload.
///
/// Immutable: a new snapshot replaces the whole config, and a request decided with one config is
/// decided entirely by it.
///
/// A class: every connection and request reads the config in force, and a copy of a reference
/// costs one retain where a copy of this many fields cost one each.
public final class ProxyConfig: Sendable {
    /// The snapshot's name, which the proxy's ACK repeats.
    public let nonce: String
    /// The control plane's config version.
    public let configVersion: Int64
    /// Every policy the snapshot carried, compiled.
    public let snapshot: PolicySnapshot
    /// The policies that apply to this workload, resolved once.
    public let policies: WorkloadPolicies
    /// The JWT providers that apply to this workload.
    public let jwtProviders: [JWTProvider]
    /// The mesh's services.
    public let registry: ServiceRegistry
    /// Unexpired revoked certificates.
    public let revoked: RevocationList
    /// How many resources of each kind the snapshot carried.
    public let resourceCounts: [String: Int]
    /// When the proxy applied it.
    public let appliedAt: Date

    init(
        nonce: String, configVersion: Int64, snapshot: PolicySnapshot, policies: WorkloadPolicies, jwtProviders: [JWTProvider],
        registry: ServiceRegistry, revoked: RevocationList, resourceCounts: [String: Int], appliedAt: Date
    ) {
        self.nonce = nonce
        self.configVersion = configVersion
        self.snapshot = snapshot
        self.policies = policies
        self.jwtProviders = jwtProviders
        self.registry = registry
        self.revoked = revoked
        self.resourceCounts = resourceCounts
        self.appliedAt = appliedAt
    }

    /// Compiles a snapshot; throws (and the proxy NACKs) when any resource does not load or validate.
    public static func compile(
        _ message: Rampart_Config_V1_Snapshot, workload: WorkloadInfo, trustDomains: TrustDomainBundle = TrustDomainBundle(),
        now: Date = Date()
    ) throws(ProxyError) -> ProxyConfig {
        var resources: [SecurityResource] = []
        var counts: [String: Int] = [:]
        for resource in message.resources {
            let name = "\(resource.kind)/\(resource.namespace)/\(resource.name)"
            let loaded = PolicyLoader.load(yaml: resource.yaml, file: "snapshot:\(name)")
            if let error = loaded.diagnostics.first(where: { $0.severity == .error }) {
                throw ProxyError(.badSnapshot, "resource \(name) in snapshot \(message.nonce) does not load: \(error.description)")
            }
            guard loaded.resources.count == 1, let only = loaded.resources.first else {
                throw ProxyError(.badSnapshot, "resource \(name) in snapshot \(message.nonce) holds \(loaded.resources.count) documents; exactly one is expected")
            }
            guard only.id.kind.rawValue == resource.kind, only.id.namespace == resource.namespace, only.id.name == resource.name else {
                throw ProxyError(.badSnapshot, "resource \(name) in snapshot \(message.nonce) describes \(only.id) instead")
            }
            counts[resource.kind, default: 0] += 1
            // The store's creation time decides between competing PeerAuthentications.
            resources.append(resource.hasCreatedAt ? only.created(at: resource.createdAt.date) : only)
        }
        if let error = PolicyAnalyzer.validate(resources).first(where: { $0.severity == .error }) {
            throw ProxyError(.badSnapshot, "snapshot \(message.nonce) holds an invalid resource: \(error.description)")
        }
        let rootNamespace = message.rootNamespace.isEmpty ? "istio-system" : message.rootNamespace
        let snapshot = PolicySnapshot(resources: resources, options: SnapshotOptions(rootNamespace: rootNamespace, trustDomains: trustDomains))
        var services: [MeshService] = []
        for service in message.services {
            var endpoints: [ServiceEndpoint] = []
            for endpoint in service.endpoints {
                guard let (host, port) = EndpointAddress.split(endpoint.address) else {
                    throw ProxyError(.badSnapshot, "service \(service.name).\(service.namespace) in snapshot \(message.nonce) has an endpoint address '\(endpoint.address)' that is not host:port")
                }
                endpoints.append(
                    ServiceEndpoint(
                        host: host, port: port, spiffeID: endpoint.spiffeID, workload: endpoint.workload, labels: endpoint.labels,
                        plaintext: endpoint.plaintext))
            }
            services.append(MeshService(name: service.name, namespace: service.namespace, port: Int(service.port), endpoints: endpoints))
        }
        return ProxyConfig(
            nonce: message.nonce, configVersion: message.configVersion, snapshot: snapshot,
            policies: snapshot.workload(namespace: workload.namespace, labels: workload.labels),
            jwtProviders: snapshot.jwtProviders(namespace: workload.namespace, labels: workload.labels),
            registry: ServiceRegistry(services: services), revoked: RevocationList(serials: message.revoked.map(\.serial)),
            resourceCounts: counts, appliedAt: now
        )
    }
}

/// `host:port` and `[v6]:port` addresses.
public enum EndpointAddress {
    /// `host:port`, with an IPv6 host in brackets.
    public static func join(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Splits an address; `nil` when it is not `host:port` with a port of 0-65535.
    public static func split(_ address: String) -> (String, Int)? {
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]") else { return nil }
            let host = String(address[address.index(after: address.startIndex)..<close])
            let rest = address[address.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port) else { return nil }
            return (host, port)
        }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        let host = String(address[..<colon])
        guard !host.isEmpty, !host.contains(":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }
}
