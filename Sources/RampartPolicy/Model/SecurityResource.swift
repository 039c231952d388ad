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
