import Foundation
/// One request (or TCP connection) to authorize, in the schema of the conformance corpus.
public struct AuthzRequest: Sendable, Hashable {
    /// The application protocol.
    public enum TransportProtocol: String, Sendable, Hashable {
        case http = "HTTP"
        case tcp = "TCP"
    }

    /// The ext-authz provider's answer for CUSTOM policies.
    public enum ExtAuthzAnswer: String, Sendable, Hashable {
        case allow
        case deny
    }

    /// The peer.
    public struct Source: Sendable, Hashable {
        /// The SPIFFE ID without `spiffe://`; `nil` means no verified peer certificate.
        public let principal: String?
        /// The namespace the caller claims. Informational: policies read the namespace from an Istio
        /// workload principal only, as Istio does.
        public let namespace: String?
        /// The peer's address (`source.ip`, `ipBlocks`).
        public let ip: String?
        /// The original client's address (`remote.ip`, `remoteIpBlocks`); defaults to `ip`. A
        /// request read from a file or by the proxy takes it from `x-forwarded-for` when the
        /// header holds one (see `AuthzRequest.forwardedClient`).
        public let remoteIP: String?
        /// Whether the connection used mTLS; `nil` means "mTLS exactly when a principal is given".
        public let mtls: Bool?

        /// Creates a source.
        public init(
            principal: String? = nil, namespace: String? = nil, ip: String? = nil, remoteIP: String? = nil,
            mtls: Bool? = nil
        ) {
            self.principal = principal
            self.namespace = namespace
            self.ip = ip
            self.remoteIP = remoteIP
            self.mtls = mtls
        }

        /// Whether the connection is mutual TLS.
        public var isMTLS: Bool { mtls ?? (principal != nil) }
    }

    /// The workload receiving the request.
    public struct Destination: Sendable, Hashable {
        /// Its namespace.
        public let namespace: String
        /// Its labels.
        public let labels: [String: String]
        /// The workload port.
        public let port: Int?
        /// Its address.
        public let ip: String?
        /// Its own SPIFFE ID without `spiffe://` (a Rampart extension of the request schema): the
        /// `By` of the `x-forwarded-client-cert` element its sidecar appends.
        public let principal: String?

        /// Creates a destination.
        public init(namespace: String, labels: [String: String] = [:], port: Int? = nil, ip: String? = nil, principal: String? = nil) {
            self.namespace = namespace
            self.labels = labels
            self.port = port
            self.ip = ip
            self.principal = principal
        }
    }

    /// HTTP or TCP.
    public let transport: TransportProtocol
    /// The peer.
    public let source: Source
    /// The workload.
    public let destination: Destination
    /// The HTTP method.
    public let method: String?
    /// The Host/:authority.
    public let host: String?
    /// The raw path, possibly with a query.
    public let path: String?
    /// Request headers, keyed by lower-case name. A header sent more than once holds its values
    /// joined with commas, as Envoy's header matchers see it.
    public let headers: [String: String]
    /// The separate values of each header sent more than once, keyed by lower-case name: JWT
    /// extraction reads each value on its own (a token in each). Empty when no header repeats.
    public let repeatedHeaders: [String: [String]]
    /// The ext-authz answer for CUSTOM policies.
    public let extAuthz: ExtAuthzAnswer?
    /// The TLS server name.
    public let sni: String?
    /// The JWT outcome, `nil` when no token.
    public let jwt: JWTOutcome?
    /// `headers` as the list the fast path scans, built here as a proxy builds it while parsing.
    let headerTable: HeaderTable
    /// Whether the request is one Istio's proxies refuse with 400 before any policy is evaluated
    /// (see `malformation`); worked out once, when the request is made.
    let isMalformed: Bool

    /// The value a `request.headers[...]` condition reads for `name` (lower-case): the header the
    /// request carries, else, for the pseudo-headers Envoy's header matchers see (`:authority`,
    /// `:method`, `:path`, and `host`, which Envoy's header map keeps as `:authority`), the
    /// request's own host, method and path (see `pseudoHeader(_:)`).
    public func header(_ name: String) -> String? {
        headers[name] ?? (HeaderName.readsRequestField(name) ? pseudoHeader(name) : nil)
    }

    /// The value of an HTTP/2 pseudo-header as Envoy's header matchers see it after path
    /// normalization: `:authority` is the host as sent, `:method` the method, and `:path` the
    /// normalized path followed by the query (no fragment), unlike `paths`, which ignore the query.
    /// `nil` for other names, on TCP, and when the request lacks the field.
    func pseudoHeader(_ name: String) -> String? {
        guard transport == .http else { return nil }
        switch name {
        case ":authority", "host": return host
        case ":method": return method
        // Envoy's connection manager sets `:scheme` when the request has none (HTTP/1.1): from
        // `x-forwarded-proto` when that is `http` or `https`, else from the connection's security.
        case ":scheme":
            if let proto = headers["x-forwarded-proto"]?.lowercased(), proto == "http" || proto == "https" { return proto }
            return source.isMTLS ? "https" : "http"
        case ":path":
            guard let path else { return nil }
            let normalized = PathNormalizer.normalize(path)
            guard let mark = path.firstIndex(where: { $0 == "?" || $0 == "#" }), path[mark] == "?" else {
                return normalized
            }
            return normalized + path[mark...].prefix { $0 != "#" }
        default: return nil
        }
    }

    /// The client address a sidecar's connection manager trusts, given the request's
    /// `x-forwarded-for` (its fields joined with `,`): Istio's inbound listener does not use the
    /// remote address and trusts no hops, so Envoy takes the last address of the header, which
    /// RBAC's `remote_ip` (`remoteIpBlocks`, `remote.ip`) then reads. Nil when there is no header
    /// or its last entry is not an IP address: the peer's own address stands.
    public static func forwardedClient(_ forwardedFor: String?) -> String? {
        guard let forwardedFor else { return nil }
        var last = Substring(forwardedFor)
        // The text after the last comma; a comma at the very end leaves the whole, which is no address.
        if let comma = forwardedFor.lastIndex(of: ","), forwardedFor.index(after: comma) < forwardedFor.endIndex {
            last = forwardedFor[forwardedFor.index(after: comma)...]
        }
        let trimmed = String(HeaderTokens.trimmed(last))
        return IPAddress(trimmed) == nil ? nil : trimmed
    }

    /// The request with the headers a sidecar sets before its policies read any, as Envoy's
    /// connection manager sets them before its filters (a TCP request is returned as it is):
    /// - `x-request-id`, when the request carries none;
    /// - `x-forwarded-proto`, `https` over mTLS and `http` over plaintext, when the request carries
    ///   none: a sidecar's connection manager does not use the remote address (Istio sets
    ///   `use_remote_address: false` on inbound listeners), so Envoy keeps what the client sent;
    /// - `x-forwarded-client-cert`: removed from a plaintext request, so that it cannot be forged;
    ///   over mTLS, an element `By=spiffe://<own ID>;Subject="";URI=spiffe://<principal>` appended
    ///   for the peer, as the sidecar appends its own (which also holds the certificate's `Hash`,
    ///   which a request file cannot give). The own ID is `destination.principal`, else
    ///   `<trustDomain>/ns/<destination namespace>/sa/default`.
    /// Before these, header values and the host lose the spaces and tabs around them (see
    /// `FieldValue`), and the headers Envoy's connection manager removes or rewrites are treated as
    /// it treats them (see `ConnectionManagerHeaders`).
    public func withProxyHeaders(requestID id: @autoclosure () -> String, trustDomain: String = "cluster.local") -> AuthzRequest {
        guard transport == .http else { return self }
        var headers = self.headers
        var repeated = repeatedHeaders
        // Values as the codec reads them, without the spaces and tabs around them (`FieldValue`).
        for (name, value) in self.headers where FieldValue.isPadded(value) { headers[name] = FieldValue.trimmed(value) }
        for (name, values) in repeatedHeaders where values.contains(where: FieldValue.isPadded) {
            repeated[name] = values.map(FieldValue.trimmed)
        }
        let circumstances = ConnectionManagerHeaders.Circumstances(
            connection: headers["connection"], upgrade: headers["upgrade"], forwardedFor: headers["x-forwarded-for"])
        for (name, value) in self.headers where ConnectionManagerHeaders.mayTreat(name) {
            switch ConnectionManagerHeaders.treatment(of: name, value: value, fields: repeatedHeaders[name]?.count ?? 1, in: circumstances) {
            case .keep: continue
            case .remove: headers[name] = nil
            case .replace(let kept): headers[name] = kept
            }
            repeated[name] = nil
        }
        if headers["x-request-id"] == nil { headers["x-request-id"] = id() }
        if headers["x-forwarded-proto"] == nil { headers["x-forwarded-proto"] = source.isMTLS ? "https" : "http" }
        if source.isMTLS, let principal = source.principal, !principal.isEmpty {
            let own = destination.principal ?? "\(trustDomain)/ns/\(destination.namespace)/sa/default"
            let element = "By=spiffe://\(own);Subject=\"\";URI=spiffe://\(principal)"
            headers["x-forwarded-client-cert"] = headers["x-forwarded-client-cert"].map { "\($0),\(element)" } ?? element
        } else {
            headers["x-forwarded-client-cert"] = nil
        }
        repeated["x-forwarded-client-cert"] = nil
        return AuthzRequest(
            transport: transport, source: source, destination: destination, method: method,
            host: host.map(FieldValue.trimmed), path: path, headers: headers, extAuthz: extAuthz, sni: sni, jwt: jwt,
            repeatedHeaders: repeated)
    }

    /// Creates a request; header names are lower-cased.
    public init(
        transport: TransportProtocol = .http, source: Source = Source(), destination: Destination,
        method: String? = nil, host: String? = nil, path: String? = nil, headers: [String: String] = [:],
        extAuthz: ExtAuthzAnswer? = nil, sni: String? = nil, jwt: JWTOutcome? = nil,
        repeatedHeaders: [String: [String]] = [:]
    ) {
        self.transport = transport
        self.source = source
        self.destination = destination
        self.method = method
        self.host = host
        self.path = path
        var lowered: [String: String] = [:]
        for (name, value) in headers { lowered[name.lowercased()] = value }
        self.headers = lowered
        headerTable = HeaderTable(lowered)
        var repeated: [String: [String]] = [:]
        for (name, values) in repeatedHeaders where values.count > 1 { repeated[name.lowercased()] = values }
        self.repeatedHeaders = repeated
        self.extAuthz = extAuthz
        self.sni = sni
        self.jwt = jwt
        isMalformed = Self.malformation(transport, method, lowered, repeated) != nil
    }

    /// Why Istio's proxies refuse this HTTP request with 400 before any policy is evaluated, or
    /// `nil`. Istio's normalization documentation states two of these: a method that is not upper
    /// case (a request sent as `get` is not let past a DENY on `GET`), and a header name holding
    /// white space. The HTTP codec refuses the others: a method or header name that is not an HTTP
    /// token, and a header value holding a NUL, CR or LF.
    public var malformation: String? { Self.malformation(transport, method, headers, repeatedHeaders) }

    private static func malformation(
        _ transport: TransportProtocol, _ method: String?, _ headers: [String: String], _ repeatedHeaders: [String: [String]]
    ) -> String? {
        guard transport == .http else { return nil }
        if let method {
            if method.isEmpty { return "the method is empty" }
            if method.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }) {
                return "the method \"\(DiagnosticText.escaped(method))\" is not upper case"
            }
            if !method.utf8.allSatisfy(isTokenByte) {
                return "the method \"\(DiagnosticText.escaped(method))\" is not an HTTP token"
            }
        }
        // Every request is checked once, when it is made: the usual, sound one in one pass over
        // its headers, with no allocation; the names are sorted only to name the first fault.
        guard headers.contains(where: { !isSoundName($0.key) || !isSoundValue($0.value) })
            || repeatedHeaders.contains(where: { $0.value.contains { !isSoundValue($0) } })
        else { return nil }
        let names = headers.keys.sorted()
        for name in names where !isSoundName(name) {
            let text = name.utf8.first == UInt8(ascii: ":") ? name.utf8.dropFirst() : name.utf8[...]
            if text.isEmpty { return "a header has an empty name" }
            if text.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
                return "the header name \"\(DiagnosticText.escaped(name))\" holds white space"
            }
            return "the header name \"\(DiagnosticText.escaped(name))\" is not an HTTP token"
        }
        for name in names where !(repeatedHeaders[name] ?? [headers[name] ?? ""]).allSatisfy(isSoundValue) {
            return "the value of header \"\(DiagnosticText.escaped(name))\" holds a NUL, CR or LF"
        }
        return nil
    }

    /// A header name as the HTTP codec takes it: a token, after a `:` for a pseudo-header.
    private static func isSoundName(_ name: String) -> Bool {
        let text = name.utf8.first == UInt8(ascii: ":") ? name.utf8.dropFirst() : name.utf8[...]
        return !text.isEmpty && text.allSatisfy(isTokenByte)
    }

    /// A header value without NUL, CR or LF.
    private static func isSoundValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
    }

    /// The request with `edits` made to its headers, as a proxy makes them before authorization:
    /// removals, claim values, and the token's payload (from `jwt.raw`) under a header name a
    /// request can carry. Query parameter removals leave the request as it is.
    public func applying(_ edits: [HeaderEdit]) -> AuthzRequest {
        guard !edits.isEmpty else { return self }
        var headers = self.headers
        var repeated = repeatedHeaders
        for edit in edits {
            switch edit {
            case .remove(let name):
                headers[name] = nil
                repeated[name] = nil
            case .set(let name, let value):
                headers[name] = value
                repeated[name] = nil
            case .setPayload(let name):
                guard Self.isHeaderToken(name), let payload = jwtPayload else { continue }
                headers[name] = payload
                repeated[name] = nil
            case .removeQueryParameter:
                continue
            }
        }
        return AuthzRequest(
            transport: transport, source: source, destination: destination, method: method, host: host, path: path,
            headers: headers, extAuthz: extAuthz, sni: sni, jwt: jwt, repeatedHeaders: repeated)
    }

    /// The token's payload as its base64url text: from the raw token when given, else the claims of
    /// a request file's abstract `jwt` block written as JSON.
    private var jwtPayload: String? {
        if let raw = jwt?.raw {
            let parts = raw.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 3 ? String(parts[1]) : nil
        }
        guard let claims = jwt?.claims,
            let data = try? JSONSerialization.data(withJSONObject: claims.jsonObject, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return nil }
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Whether `name` can name a header on the wire: one or more of RFC 9110's `tchar`.
    public static func isHeaderToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(isTokenByte)
    }

    /// RFC 9110's `tchar`: the bytes of a method or header name. Every header name of every
    /// request the proxy forwards in plaintext is checked byte by byte, so the set is two masks:
    /// bit `b` of the first for byte `b` below 64 (`!#$%&'*+-.` and the digits), bit `b - 64` of
    /// the second for bytes 64 to 127 (the letters and `^_`|~`).
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if byte < 64 { return tokenBytesBelow64 & (1 &<< UInt64(byte)) != 0 }
        if byte < 128 { return tokenBytesFrom64 & (1 &<< UInt64(byte &- 64)) != 0 }
        return false
    }

    static let tokenBytesBelow64: UInt64 = 0x03FF_6CFA_0000_0000
    static let tokenBytesFrom64: UInt64 = 0x57FF_FFFF_C7FF_FFFE
}
