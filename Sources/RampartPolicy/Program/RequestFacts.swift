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
    /// Header values already looked up, by the program's header slot (the first four slots).
    private var headersDone: UInt8 = 0
    private var headerValues: (String?, String?, String?, String?) = (nil, nil, nil, nil)

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
                namespaceValue = PreparedRequest.istioNamespace(principal) ?? request.source.namespace
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

    /// The value of the header in `slot` of the program (named `names[slot]`), looked up once for
    /// the first four slots.
    @inline(__always)
    mutating func header(_ slot: Int32, _ names: [String], _ request: AuthzRequest) -> String? {
        guard slot < 4 else { return request.headers[names[Int(slot)]] }
        let bit = UInt8(1) << UInt8(slot)
        if headersDone & bit == 0 {
            headersDone |= bit
            let value = request.headers[names[Int(slot)]]
            switch slot {
            case 0: headerValues.0 = value
            case 1: headerValues.1 = value
            case 2: headerValues.2 = value
            default: headerValues.3 = value
            }
            return value
        }
        switch slot {
        case 0: return headerValues.0
        case 1: return headerValues.1
        case 2: return headerValues.2
        default: return headerValues.3
        }
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
                // Without a separate original client, the remote address is the peer's: parse it once.
                if let remote = request.source.remoteIP {
                    remoteIPValue = IPAddress(remote)
                } else {
                    remoteIPValue = address(.sourceIP, request)
                }
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
            principalIDValue = principal.flatMap(identities.principalTable.id) ?? -1
        }
        return principalIDValue
    }

    /// The snapshot's id of the namespace, looked up once.
    @inline(__always)
    mutating func namespaceID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if namespaceIDValue == -2 {
            namespaceIDValue = namespace(request).flatMap(identities.namespaceTable.id) ?? -1
        }
        return namespaceIDValue
    }

    /// The snapshot's id of the method, looked up once.
    @inline(__always)
    mutating func methodID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if methodIDValue == -2 {
            methodIDValue = request.method.flatMap(identities.methodTable.id) ?? -1
        }
        return methodIDValue
    }
}
