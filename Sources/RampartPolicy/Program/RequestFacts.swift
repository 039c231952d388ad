/// The request attributes the fast path reads, computed on first use and kept for the rest of the
/// decision: nothing is parsed, normalized or looked up unless some candidate rule reads it.
///
/// Attributes the request already holds as they are compared (the peer principal, a path that
/// normalization leaves alone, a host without capitals) are read from the request itself on each
/// use rather than copied here, so holding facts costs no reference counting for them; only values
/// derived from the request are stored.
///
/// Values are the same as `PreparedRequest` computes (the explain path), so both paths decide alike.
struct RequestFacts {
    /// Whether a derived string is still to be computed, is the request's own value, or is stored.
    private enum Derived: UInt8 {
        case unknown
        case asInRequest
        case stored
    }

    /// The normalized path: not yet found, the request's path, the start of it (without the query
    /// or fragment), or a stored string.
    private enum PathState {
        case unknown
        case asInRequest
        case truncated(Int)
        case stored
    }

    let isHTTP: Bool
    /// Whether the peer principal is visible (mTLS identity) and non-empty.
    private let principalVisible: Bool
    /// The accepted JWT's `iss/sub`.
    let requestPrincipal: String?
    /// Where the issuer ends in `requestPrincipal` (see `AuthnOutcome.issuerLength`).
    private let requestIssuerLength: Int
    private let claims: ClaimValue?
    private let spaceDelimitedClaims: Set<String>?

    private var segmentDone = false
    /// Where the namespace lies in the principal's bytes (see `namespaceSegment`).
    private var segmentValue = NamespacePattern.Segment.none
    private var serviceAccountDone = false
    private var hostState = Derived.unknown
    private var pathState = PathState.unknown
    /// The strings built from the request, allocated only when the first one is: most decisions
    /// build none, and then holding facts costs one reference instead of three.
    private var built: BuiltStrings?
    private var addressesDone: UInt8 = 0
    private var sourceIPValue: IPAddress?
    private var remoteIPValue: IPAddress?
    private var destinationIPValue: IPAddress?
    /// The bucket ids of the source and remote addresses, once found.
    private var addressIDsValue: (source: Int32, remote: Int32)?
    /// The snapshot's ids of the principal and namespace; `-2` until looked up, `-1` when unknown.
    private var principalIDValue: Int32 = -2
    private var namespaceIDValue: Int32 = -2
    private var methodIDValue: Int32 = -2
    /// Where the headers of the program's first four header slots are in the request's header
    /// table (`-1`: absent), looked up once.
    private var headersDone: UInt8 = 0
    private var headerIndexes: (Int32, Int32, Int32, Int32) = (-1, -1, -1, -1)

    /// Strings derived from the request (see `built`).
    private final class BuiltStrings {
        var serviceAccount: String?
        var loweredHost: String?
        var normalizedPath: String?
    }

    /// The derived strings, allocated on first use.
    private mutating func strings() -> BuiltStrings {
        if let built { return built }
        let created = BuiltStrings()
        built = created
        return created
    }

    /// Starts from what authentication settled: whether the peer principal is visible and the
    /// accepted JWT.
    init(
        isHTTP: Bool, principalVisible: Bool, requestPrincipal: String?, requestIssuerLength: Int = -1,
        claims: ClaimValue?,
        spaceDelimitedClaims: Set<String>?
    ) {
        self.isHTTP = isHTTP
        self.principalVisible = principalVisible
        self.requestPrincipal = requestPrincipal
        self.requestIssuerLength = requestIssuerLength
        self.claims = claims
        self.spaceDelimitedClaims = spaceDelimitedClaims
    }

    /// Calls `body` with the bytes of the accepted token's issuer and subject, read in place from the
    /// request principal (see `RequestPrincipalPattern.parts`); `nil` without a token.
    func withToken<R>(_ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> R) -> R? {
        guard let principal = requestPrincipal else { return nil }
        let issuerLength = requestIssuerLength
        func split(_ bytes: UnsafeBufferPointer<UInt8>) -> R {
            let slash = RequestPrincipalPattern.split(bytes.count, issuerLength) { bytes.lastIndex(of: UInt8(ascii: "/")) }
            guard let slash else { return body(bytes, UnsafeBufferPointer(rebasing: bytes[bytes.count...])) }
            return body(
                UnsafeBufferPointer(rebasing: bytes[..<slash]), UnsafeBufferPointer(rebasing: bytes[(slash + 1)...]))
        }
        if let result = principal.utf8.withContiguousStorageIfAvailable(split) { return result }
        return Array(principal.utf8).withUnsafeBufferPointer(split)
    }

    /// The peer principal when mTLS identity is visible and non-empty.
    @inline(__always)
    func principal(_ request: AuthzRequest) -> String? {
        principalVisible ? request.source.principal : nil
    }

    /// The namespace segment of the peer principal (see `NamespacePattern.Segment`), found once;
    /// `.none` without a visible principal.
    @inline(__always)
    mutating func namespaceSegment(_ request: AuthzRequest) -> NamespacePattern.Segment {
        if !segmentDone {
            segmentDone = true
            if let principal = principal(request) {
                segmentValue =
                    principal.utf8.withContiguousStorageIfAvailable(NamespacePattern.segment(of:))
                    ?? Array(principal.utf8).withUnsafeBufferPointer(NamespacePattern.segment(of:))
            }
        }
        return segmentValue
    }

    /// Calls `body` with the bytes of the peer principal's namespace segment and returns its result;
    /// `nil` when the principal has no segment, or more than one (see `namespaceSegment`).
    @inline(__always)
    mutating func withNamespaceBytes<R>(_ request: AuthzRequest, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        guard case .one(let range) = namespaceSegment(request), let principal = principal(request) else { return nil }
        if let found = principal.utf8.withContiguousStorageIfAvailable({ body(UnsafeBufferPointer(rebasing: $0[range])) }) {
            return found
        }
        return Array(principal.utf8).withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    /// `namespace/serviceAccount` of an Istio workload principal.
    mutating func serviceAccount(_ request: AuthzRequest) -> String? {
        if !serviceAccountDone {
            serviceAccountDone = true
            if let workload = principal(request).flatMap(PreparedRequest.istioWorkload) {
                strings().serviceAccount = "\(workload.namespace)/\(workload.serviceAccount)"
            }
        }
        return built?.serviceAccount
    }

    /// The host, lower-cased when it holds ASCII capitals.
    @inline(__always)
    mutating func host(_ request: AuthzRequest) -> String? {
        if hostState == .unknown {
            if let host = request.host, PreparedRequest.hasUppercaseASCII(host) {
                strings().loweredHost = host.asciiLowercased()
                hostState = .stored
            } else {
                hostState = .asInRequest
            }
        }
        return hostState == .stored ? built?.loweredHost : request.host
    }

    /// Finds what normalization does to the path, once.
    @inline(__always)
    private mutating func settlePath(_ request: AuthzRequest) {
        guard case .unknown = pathState else { return }
        guard let path = request.path else {
            pathState = .asInRequest
            return
        }
        switch PathNormalizer.outcome(path) {
        case .unchanged: pathState = .asInRequest
        case .truncated(let cut): pathState = .truncated(cut)
        case .changed(let normalized):
            strings().normalizedPath = normalized
            pathState = .stored
        }
    }

    /// Calls `body` with the normalized path's UTF-8 bytes, read in place from the request when
    /// normalization only drops the query; `nil` without a path.
    @inline(__always)
    mutating func withPath<R>(_ request: AuthzRequest, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        settlePath(request)
        let path: String?
        var cut = Int.max
        switch pathState {
        case .stored: path = built?.normalizedPath
        case .truncated(let at):
            path = request.path
            cut = at
        default: path = request.path
        }
        guard let path else { return nil }
        let limit = cut
        if let result = path.utf8.withContiguousStorageIfAvailable({
            body(UnsafeBufferPointer(rebasing: $0[..<min(limit, $0.count)]))
        }) {
            return result
        }
        let bytes = Array(path.utf8)
        return bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[..<min(limit, $0.count)])) }
    }

    /// The keys of the normalized path for a group's path index; none without a path.
    @inline(__always)
    mutating func pathKeys(_ keys: PathKeys, _ request: AuthzRequest) -> (prefix: Int32, suffix: Int32) {
        withPath(request) { keys.keys($0) } ?? PathKeys.none
    }

    /// The keys (`RuleGroup.headerKey`) of the value of the header in `slot`, a group's indexed
    /// header of index `index`; none without the header or when `slot` is `-1`.
    @inline(__always)
    mutating func headerKeys(_ keys: PathKeys, _ slot: Int16, _ index: Int, _ names: [HeaderName], _ request: AuthzRequest)
        -> (prefix: Int32, suffix: Int32)
    {
        guard slot >= 0, let value = header(Int32(slot), names, request) else { return PathKeys.none }
        let found =
            value.utf8.withContiguousStorageIfAvailable { keys.keys($0) }
            ?? Array(value.utf8).withUnsafeBufferPointer { keys.keys($0) }
        return (RuleGroup.headerKey(found.prefix, index), RuleGroup.headerKey(found.suffix, index))
    }

    /// The value of the header in `slot` of the program (named `names[slot]`), found once for the
    /// first four slots; a pseudo-header the request does not carry is read from its fields.
    @inline(__always)
    mutating func header(_ slot: Int32, _ names: [HeaderName], _ request: AuthzRequest) -> String? {
        let table = request.headerTable
        guard slot < 4 else {
            let name = names[Int(slot)]
            return table.value(of: name) ?? (name.isPseudo ? request.pseudoHeader(name.name) : nil)
        }
        let bit = UInt8(1) << UInt8(slot)
        var index: Int32
        if headersDone & bit == 0 {
            headersDone |= bit
            let name = names[Int(slot)]
            index = Int32(truncatingIfNeeded: table.index(of: name))
            if index < 0 && name.isPseudo { index = Self.pseudo }
            switch slot {
            case 0: headerIndexes.0 = index
            case 1: headerIndexes.1 = index
            case 2: headerIndexes.2 = index
            default: headerIndexes.3 = index
            }
        } else {
            switch slot {
            case 0: index = headerIndexes.0
            case 1: index = headerIndexes.1
            case 2: index = headerIndexes.2
            default: index = headerIndexes.3
            }
        }
        if index >= 0 { return table.entries[Int(index)].value }
        return index == Self.pseudo ? request.pseudoHeader(names[Int(slot)].name) : nil
    }

    /// The header index kept for a pseudo-header the request does not carry as a header.
    private static let pseudo: Int32 = -2

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

    /// The bucket ids (`RuleGroup.addressID(text:)`) of the source and remote addresses, `-1` for
    /// one that is absent or does not parse; the remote address defaults to the source's.
    @inline(__always)
    mutating func addressIDs(_ request: AuthzRequest) -> (source: Int32, remote: Int32) {
        if let addressIDsValue { return addressIDsValue }
        let source = request.source.ip.map(RuleGroup.addressID(text:)) ?? -1
        let remote = request.source.remoteIP.map(RuleGroup.addressID(text:)) ?? source
        let found = (source: source, remote: remote)
        addressIDsValue = found
        return found
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
    mutating func principalID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if principalIDValue == -2 {
            principalIDValue = -1
            if let principal = principal(request), let id = identities.principalTable.id(principal) {
                principalIDValue = id
            }
        }
        return principalIDValue
    }

    /// The snapshot's id of the namespace, looked up once: the id of the principal's namespace
    /// segment, read from the principal's own id when it is interned, else looked up straight from
    /// the segment's bytes; `IdentityIDs.ambiguousNamespace` when `/ns/` occurs in the principal
    /// more than once.
    @inline(__always)
    mutating func namespaceID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if namespaceIDValue == -2 {
            namespaceIDValue = -1
            if !identities.principalNamespaces.isEmpty {
                let principal = principalID(identities, request)
                if principal >= 0 {
                    namespaceIDValue = identities.principalNamespaces[Int(principal)]
                    return namespaceIDValue
                }
            }
            switch namespaceSegment(request) {
            case .none: break
            case .ambiguous: namespaceIDValue = IdentityIDs.ambiguousNamespace
            case .one:
                let found = withNamespaceBytes(request) { identities.namespaceTable.id(bytes: $0) ?? -1 }
                namespaceIDValue = found ?? -1
            }
        }
        return namespaceIDValue
    }

    /// The snapshot's id of the method, looked up once.
    @inline(__always)
    mutating func methodID(_ identities: IdentityIDs, _ request: AuthzRequest) -> Int32 {
        if methodIDValue == -2 {
            methodIDValue = -1
            if let method = request.method, let id = identities.methodTable.id(method) {
                methodIDValue = id
            }
        }
        return methodIDValue
    }
}
