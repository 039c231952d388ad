import Foundation

/// Any of the three security resources, as read from YAML.
public enum SecurityResource: Sendable, Hashable {
    case authorizationPolicy(AuthorizationPolicy)
    case peerAuthentication(PeerAuthentication)
    case requestAuthentication(RequestAuthentication)

    /// The identifier of the wrapped resource.
    public var id: ResourceID {
        switch self {
        case .authorizationPolicy(let policy): return policy.id
        case .peerAuthentication(let policy): return policy.id
        case .requestAuthentication(let policy): return policy.id
        }
    }

    /// Where the wrapped resource was read from.
    public var location: SourceLocation {
        switch self {
        case .authorizationPolicy(let policy): return policy.location
        case .peerAuthentication(let policy): return policy.location
        case .requestAuthentication(let policy): return policy.location
        }
    }
}

extension SecurityResource {
    /// The wrapped resource's `metadata.creationTimestamp`.
    public var createdAt: Date? {
        switch self {
        case .authorizationPolicy(let policy): return policy.metadata.creationTimestamp
        case .peerAuthentication(let policy): return policy.metadata.creationTimestamp
        case .requestAuthentication(let policy): return policy.metadata.creationTimestamp
        }
    }

    /// The resource as a config store holds it: created at `date`, whatever `creationTimestamp` its
    /// document states, as a Kubernetes API server sets the field itself. Where PeerAuthentications
    /// compete, the one created first then wins, as in Istio.
    public func created(at time: Date) -> SecurityResource {
        // Kubernetes keeps creationTimestamp to the second, and Istio orders competing policies
        // by it and then by name: two stored within one second tie, and their names decide, as
        // they would on a cluster and in what `get` prints.
        let date = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
        switch self {
        case .authorizationPolicy(var policy):
            policy.metadata.creationTimestamp = date
            return .authorizationPolicy(policy)
        case .peerAuthentication(var policy):
            policy.metadata.creationTimestamp = date
            return .peerAuthentication(policy)
        case .requestAuthentication(var policy):
            policy.metadata.creationTimestamp = date
            return .requestAuthentication(policy)
        }
    }
}

