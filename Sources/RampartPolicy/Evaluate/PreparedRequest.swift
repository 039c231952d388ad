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

    /// Prepares `request`; attributes outside `needs` are left `nil` because no check reads them.
    init(_ request: AuthzRequest, peerIdentityVisible: Bool, authn: AuthnOutcome, needs: RequestNeeds = .all) {
        isHTTP = request.transport == .http
        if peerIdentityVisible, request.source.isMTLS, let principal = request.source.principal, !principal.isEmpty {
            self.principal = principal
            let workload = Self.istioWorkload(principal)
            namespace = workload?.namespace ?? request.source.namespace
            serviceAccount =
                needs.contains(.serviceAccount) ? workload.map { "\($0.namespace)/\($0.serviceAccount)" } : nil
        } else {
            principal = nil
            namespace = nil
            serviceAccount = nil
        }
        requestPrincipal = authn.principal
        claims = authn.claims
        sourceIP = needs.contains(.sourceIP) ? request.source.ip.flatMap(IPAddress.init) : nil
        remoteIP =
            needs.contains(.remoteIP) ? (request.source.remoteIP ?? request.source.ip).flatMap(IPAddress.init) : nil
        destinationIP = needs.contains(.destinationIP) ? request.destination.ip.flatMap(IPAddress.init) : nil
        if let host = request.host {
            self.host = Self.hasUppercaseASCII(host) ? host.lowercased() : host
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
        let fast = principal.utf8.withContiguousStorageIfAvailable { bytes -> FastSplit in
            var slashes = (0, 0, 0, 0)
            var count = 0
            for index in bytes.indices {
                let byte = bytes[index]
                if byte >= 0x80 { return .notASCII }
                guard byte == UInt8(ascii: "/") else { continue }
                switch count {
                case 0: slashes.0 = index
                case 1: slashes.1 = index
                case 2: slashes.2 = index
                case 3: slashes.3 = index
                default: return .none
                }
                count += 1
            }
            func text(_ range: Range<Int>) -> String {
                String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
            }
            guard count == 4, slashes.1 - slashes.0 == 3, bytes[slashes.0 + 1] == UInt8(ascii: "n"),
                bytes[slashes.0 + 2] == UInt8(ascii: "s"), slashes.3 - slashes.2 == 3,
                bytes[slashes.2 + 1] == UInt8(ascii: "s"), bytes[slashes.2 + 2] == UInt8(ascii: "a")
            else { return .none }
            return .workload(text((slashes.1 + 1)..<slashes.2), text((slashes.3 + 1)..<bytes.count))
        }
        switch fast {
        case .workload(let namespace, let serviceAccount)?: return (namespace, serviceAccount)
        case .none?: return nil
        case .notASCII?, nil: return splitIstioWorkload(principal)
        }
    }

    /// The outcome of the byte-level split of an ASCII principal.
    private enum FastSplit {
        case workload(String, String)
        case none
        case notASCII
    }

    /// The general form of `istioWorkload`, splitting on the character `/` (for non-ASCII principals).
    static func splitIstioWorkload(_ principal: String) -> (namespace: String, serviceAccount: String)? {
        let parts = principal.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1] == "ns", parts[3] == "sa" else { return nil }
        return (String(parts[2]), String(parts[4]))
    }

    /// Whether the text holds an ASCII upper-case letter.
    static func hasUppercaseASCII(_ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { $0.contains { $0 >= 65 && $0 <= 90 } }
            ?? text.utf8.contains { $0 >= 65 && $0 <= 90 }
    }
}
