/// The request attributes the fast path reads, computed on first use and kept for the rest of the
/// decision: nothing is parsed, normalized or looked up unless some candidate rule reads it.
///
/// Values are the same as `PreparedRequest` computes (the explain path), so both paths decide alike.
struct RequestFacts {
    let isHTTP: Bool
    /// The peer principal when mTLS identity is visible and non-empty.
    let principal: String?
    /// The accepted JWT's `iss/sub`.
    let requestPrincipal: String?
    private let claims: ClaimValue?
    private let spaceDelimitedClaims: Set<String>?

    private var namespaceDone = false
    private var namespaceValue: String?
    private var serviceAccountDone = false
    private var serviceAccountValue: String?
    private var hostDone = false
    private var hostValue: String?
    private var pathDone = false
    private var pathValue: String?
    private var addressesDone: UInt8 = 0
    private var sourceIPValue: IPAddress?
    private var remoteIPValue: IPAddress?
    private var destinationIPValue: IPAddress?
    /// The snapshot's ids of the principal and namespace; `-2` until looked up, `-1` when unknown.
    private var principalIDValue: Int32 = -2
    private var namespaceIDValue: Int32 = -2
    private var methodIDValue: Int32 = -2

    /// Starts from what authentication settled: the visible peer principal and the accepted JWT.
    init(
        isHTTP: Bool, principal: String?, requestPrincipal: String?, claims: ClaimValue?,
        spaceDelimitedClaims: Set<String>?
    ) {
        self.isHTTP = isHTTP
        self.principal = principal
        self.requestPrincipal = requestPrincipal
        self.claims = claims
        self.spaceDelimitedClaims = spaceDelimitedClaims
    }

    /// The peer namespace: the principal's, else the namespace the source claims (with a principal only).
    @inline(__always)
    mutating func namespace(_ request: AuthzRequest) -> String? {
        if !namespaceDone {
            namespaceDone = true
            if let principal {
                namespaceValue = PreparedRequest.istioWorkload(principal)?.namespace ?? request.source.namespace
            }
        }
        return namespaceValue
    }

    /// `namespace/serviceAccount` of an Istio workload principal.
    mutating func serviceAccount() -> String? {
        if !serviceAccountDone {
            serviceAccountDone = true
            serviceAccountValue = principal.flatMap(PreparedRequest.istioWorkload).map {
                "\($0.namespace)/\($0.serviceAccount)"
            }
        }
        return serviceAccountValue
    }

    /// The host, lower-cased when it holds ASCII capitals.
    mutating func host(_ request: AuthzRequest) -> String? {
        if !hostDone {
            hostDone = true
            if let host = request.host {
                hostValue = PreparedRequest.hasUppercaseASCII(host) ? host.lowercased() : host
            }
        }
        return hostValue
    }

    /// The normalized path.
    mutating func path(_ request: AuthzRequest) -> String? {
        if !pathDone {
            pathDone = true
            pathValue = request.path.map(PathNormalizer.normalize)
        }
        return pathValue
    }

    /// The source, remote or destination address.
    mutating func address(_ kind: FlatCheck.Kind, _ request: AuthzRequest) -> IPAddress? {
        switch kind {
        case .sourceIP:
            if addressesDone & 1 == 0 {
                addressesDone |= 1
                sourceIPValue = request.source.ip.flatMap(IPAddress.init)
            }
            return sourceIPValue
        case .remoteIP:
            if addressesDone & 2 == 0 {
                addressesDone |= 2
                remoteIPValue = (request.source.remoteIP ?? request.source.ip).flatMap(IPAddress.init)
            }
            return remoteIPValue
        default:
            if addressesDone & 4 == 0 {
                addressesDone |= 4
                destinationIPValue = request.destination.ip.flatMap(IPAddress.init)
            }
            return destinationIPValue
        }
    }

    /// The claim at `path`, with a space-delimited top-level claim split as the provider asks.
    func claim(_ path: [String]) -> ClaimValue? {
        guard let first = path.first else { return claims }
        var current = member(first)
        for key in path.dropFirst() { current = current?[key] }
        return current
    }

    /// A top-level claim, normalized like `JWTProvider.normalize` does for the whole payload.
    func member(_ key: String) -> ClaimValue? {
        guard let value = claims?[key] else { return nil }
        if case .string(let text) = value, spaceDelimitedClaims?.contains(key) ?? false {
            return .array(text.split(separator: " ").map { .string(String($0)) })
        }
        return value
    }

    /// The snapshot's id of the principal, looked up once.
    @inline(__always)
    mutating func principalID(_ identities: IdentityIDs) -> Int32 {
        if principalIDValue == -2 {
            principalIDValue = principal.flatMap { identities.principals[$0] } ?? -1
        }
        return principalIDValue
    }

    /// The snapshot's id of the namespace, looked up once.
    @inline(__always)
    mutating func namespaceID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if namespaceIDValue == -2 {
            namespaceIDValue = namespace(request).flatMap { identities.namespaces[$0] } ?? -1
        }
        return namespaceIDValue
    }

    /// The snapshot's id of the method, looked up once.
    @inline(__always)
    mutating func methodID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if methodIDValue == -2 {
            methodIDValue = request.method.flatMap { identities.methods[$0] } ?? -1
        }
        return methodIDValue
    }
}
