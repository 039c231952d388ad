/// A request with every attribute policies read computed once: peer identity after mTLS, normalized
/// path, lower-cased host, parsed addresses, and the authenticated JWT principal and claims.
struct PreparedRequest {
    let isHTTP: Bool
    let principal: String?
    let namespace: String?
    let serviceAccount: String?
    let requestPrincipal: String?
    let claims: ClaimValue?
    let sourceIP: IPAddress?
    let remoteIP: IPAddress?
    let destinationIP: IPAddress?
    let host: String?
    let method: String?
    let path: String?
    let port: Int?
    let sni: String?
    let headers: [String: String]

    init(_ request: AuthzRequest, peerIdentityVisible: Bool, authn: AuthnOutcome) {
        isHTTP = request.transport == .http
        if peerIdentityVisible, request.source.isMTLS, let principal = request.source.principal, !principal.isEmpty {
            self.principal = principal
            let workload = Self.istioWorkload(principal)
            namespace = workload?.namespace ?? request.source.namespace
            serviceAccount = workload.map { "\($0.namespace)/\($0.serviceAccount)" }
        } else {
            principal = nil
            namespace = nil
            serviceAccount = nil
        }
        requestPrincipal = authn.principal
        claims = authn.claims
        sourceIP = request.source.ip.flatMap(IPAddress.init)
        remoteIP = (request.source.remoteIP ?? request.source.ip).flatMap(IPAddress.init)
        destinationIP = request.destination.ip.flatMap(IPAddress.init)
        if let host = request.host {
            self.host = host.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) ? host.lowercased() : host
        } else {
            host = nil
        }
        method = request.method
        path = request.path.map(PathNormalizer.normalize)
        port = request.destination.port
        sni = request.sni
        headers = request.headers
    }

    @inline(__always)
    func string(for attribute: Attribute) -> String? {
        switch attribute {
        case .sourcePrincipal: return principal
        case .sourceNamespace: return namespace
        case .serviceAccount: return serviceAccount
        case .requestPrincipal: return requestPrincipal
        case .host: return host
        case .method: return method
        case .sni: return sni
        case .header(let name): return headers[name]
        default: return nil
        }
    }

    /// The namespace and service account of `<td>/ns/<ns>/sa/<sa>`.
    static func istioWorkload(_ principal: String) -> (namespace: String, serviceAccount: String)? {
        let parts = principal.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1] == "ns", parts[3] == "sa" else { return nil }
        return (String(parts[2]), String(parts[4]))
    }
}
