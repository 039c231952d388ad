#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A request with every attribute policies read computed once: peer identity after mTLS, normalized
/// path, lower-cased host, parsed addresses, and the authenticated JWT principal and claims.
struct PreparedRequest {
    let isHTTP: Bool
    let principal: String?
    let serviceAccount: String?
    /// The trust domain of the peer's SPIFFE ID (see `trustDomain(of:)`).
    let trustDomain: String?
    let requestPrincipal: String?
    /// Where the issuer ends in `requestPrincipal` (see `AuthnOutcome.issuerLength`).
    let requestIssuerLength: Int
    let claims: ClaimValue?
    let sourceIP: IPAddress?
    let remoteIP: IPAddress?
    let destinationIP: IPAddress?
    let host: String?
    let method: String?
    let path: String?
    let port: Int?
    let sni: String?
    /// The request, for its headers (see `header(_:)`).
    let request: AuthzRequest

    /// Prepares `request`; attributes outside `needs` are left `nil` because no check reads them.
    init(_ request: AuthzRequest, peerIdentityVisible: Bool, authn: AuthnOutcome, needs: RequestNeeds = .all) {
        isHTTP = request.transport == .http
        if peerIdentityVisible, request.source.isMTLS, let principal = request.source.principal, !principal.isEmpty {
            self.principal = principal
            // Namespaces are read from the principal itself (see NamespacePattern); the source's own
            // claim is not trusted.
            serviceAccount =
                needs.contains(.serviceAccount)
                ? Self.istioWorkload(principal).map { "\($0.namespace)/\($0.serviceAccount)" } : nil
            trustDomain = needs.contains(.trustDomain) ? String(Self.trustDomain(of: principal)) : nil
        } else {
            principal = nil
            serviceAccount = nil
            trustDomain = nil
        }
        requestPrincipal = authn.principal
        requestIssuerLength = authn.issuerLength
        claims = authn.claims
        sourceIP = needs.contains(.sourceIP) ? request.source.ip.flatMap(IPAddress.init) : nil
        remoteIP =
            needs.contains(.remoteIP) ? (request.source.remoteIP ?? request.source.ip).flatMap(IPAddress.init) : nil
        destinationIP = needs.contains(.destinationIP) ? request.destination.ip.flatMap(IPAddress.init) : nil
        if let host = request.host {
            self.host = Self.hasUppercaseASCII(host) ? host.asciiLowercased() : host
        } else {
            host = nil
        }
        method = request.method
        path = request.path.map(PathNormalizer.normalize)
        port = request.destination.port
        sni = request.sni
        self.request = request
    }

    @inline(__always)
    func string(for attribute: Attribute) -> String? {
        switch attribute {
        case .sourcePrincipal: return principal
        case .serviceAccount: return serviceAccount
        case .trustDomain: return trustDomain
        case .requestPrincipal: return requestPrincipal
        case .host: return host
        case .method: return method
        case .sni: return sni
        case .header(let name): return header(name)
        default: return nil
        }
    }

    /// The value a header condition reads (see `AuthzRequest.header(_:)`).
    func header(_ name: String) -> String? { request.header(name) }

    /// The trust domain of a principal (a SPIFFE ID without `spiffe://`): everything before its
    /// first `/`, or the whole principal when it has no path.
    static func trustDomain(of principal: String) -> Substring {
        principal[..<(principal.firstIndex(of: "/") ?? principal.endIndex)]
    }

    /// The namespace and service account of `<td>/ns/<ns>/sa/<sa>`.
    static func istioWorkload(_ principal: String) -> (namespace: String, serviceAccount: String)? {
        let fast = principal.utf8.withContiguousStorageIfAvailable { bytes -> FastSplit in
            switch workloadRanges(bytes) {
            case .ranges(let namespace, let serviceAccount):
                return .workload(text(bytes, namespace), text(bytes, serviceAccount))
            case .none: return .none
            case .notASCII: return .notASCII
            }
        }
        switch fast {
        case .workload(let namespace, let serviceAccount)?: return (namespace, serviceAccount)
        case .none?: return nil
        case .notASCII?, nil: return splitIstioWorkload(principal)
        }
    }

    @inline(__always)
    private static func text(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Where the namespace and service account lie in an ASCII principal.
    enum Ranges {
        case ranges(Range<Int>, Range<Int>)
        case none
        case notASCII
    }

    /// Splits an ASCII principal at its four slashes, checking the `ns` and `sa` segments.
    @inline(__always)
    static func workloadRanges(_ bytes: UnsafeBufferPointer<UInt8>) -> Ranges {
        guard let base = bytes.baseAddress else { return .none }
        let count = bytes.count
        /// The offset of the next slash at or after `from`, or `count`.
        func slash(from: Int) -> Int {
            guard from < count, let found = memchr(base + from, Int32(UInt8(ascii: "/")), count - from) else {
                return count
            }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
        let first = slash(from: 0)
        let second = slash(from: first + 1)
        let third = slash(from: second + 1)
        let fourth = slash(from: third + 1)
        guard fourth < count, slash(from: fourth + 1) == count, second - first == 3,
            bytes[first + 1] == UInt8(ascii: "n"), bytes[first + 2] == UInt8(ascii: "s"), fourth - third == 3,
            bytes[third + 1] == UInt8(ascii: "s"), bytes[third + 2] == UInt8(ascii: "a")
        else {
            return isASCII(bytes) ? .none : .notASCII
        }
        return isASCII(bytes) ? .ranges((second + 1)..<third, (fourth + 1)..<count) : .notASCII
    }

    /// Whether every byte is ASCII, eight at a time.
    @inline(__always)
    private static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let raw = UnsafeRawBufferPointer(bytes)
        var offset = 0
        var seen: UInt64 = 0
        while offset + 8 <= raw.count {
            seen |= raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < raw.count {
            seen |= UInt64(raw[offset])
            offset += 1
        }
        return seen & 0x8080_8080_8080_8080 == 0
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
