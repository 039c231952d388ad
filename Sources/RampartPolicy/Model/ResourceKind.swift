/// The Istio security kinds the policy module reads.
public enum ResourceKind: String, Sendable, Hashable, CaseIterable {
    case authorizationPolicy = "AuthorizationPolicy"
    case peerAuthentication = "PeerAuthentication"
    case requestAuthentication = "RequestAuthentication"

    /// The API versions accepted for every kind.
    public static let apiVersions: Set<String> = ["security.istio.io/v1", "security.istio.io/v1beta1"]
}

/// Names one resource in diagnostics and decisions: kind, namespace and name.
public struct ResourceID: Sendable, Hashable, CustomStringConvertible {
    /// The resource kind.
    public let kind: ResourceKind
    /// The namespace (`default` when the YAML leaves it out).
    public let namespace: String
    /// The resource name.
    public let name: String

    /// Creates an identifier.
    public init(kind: ResourceKind, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`, the form decisions report.
    public var qualifiedName: String { "\(namespace)/\(name)" }

    public var description: String { "\(kind.rawValue) \(namespace)/\(name)" }
}
