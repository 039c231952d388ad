import NIOHTTP1

/// Where an application's outbound request wants to go: from an absolute-form target
/// (`http_proxy` style, `GET http://reviews:9080/x`) or from the Host header.
public struct OutboundTarget: Sendable, Hashable {
    /// The host as the client named it, lower-cased.
    public let host: String
    /// The port it named, if any.
    public let port: Int?
    /// The origin-form target to send upstream (`/x?y`).
    public let path: String
    /// The Host header to send upstream.
    public let authority: String

    /// Reads the target from a request head; throws with a message for the client when it names none.
    public init(head: HTTPRequestHead) throws(ProxyError) {
        var uri = head.uri
        var authority: String?
        // Origin-form targets (`/x`), the common case, start with a slash: no scheme to look for.
        if !uri.hasPrefix("/") && Self.hasScheme("https://", uri) {
            throw ProxyError(.badConfiguration, "the outbound listener originates mTLS itself: send plain http:// requests to it, not https://")
        }
        if !uri.hasPrefix("/") && Self.hasScheme("http://", uri) {
            uri.removeFirst("http://".count)
            let slash = uri.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? uri.endIndex
            authority = String(uri[..<slash])
            let rest = String(uri[slash...])
            uri = rest.isEmpty ? "/" : (rest.hasPrefix("?") ? "/" + rest : rest)
        } else if head.method == .CONNECT {
            throw ProxyError(.badConfiguration, "CONNECT is not supported on the outbound listener: send plain HTTP requests and let the proxy originate mTLS")
        }
        // Two Host headers name two destinations; which one was meant cannot be known (RFC 9112 §3.2).
        guard head.headers["host"].count <= 1 else {
            throw ProxyError(.badConfiguration, "the request has more than one Host header: send one, naming the service")
        }
        guard let named = authority ?? head.headers.first(name: "host"), !named.isEmpty else {
            throw ProxyError(.badConfiguration, "the request names no destination: send a Host header naming the service (reviews, reviews.ns or reviews.ns.svc.cluster.local)")
        }
        let (host, port) = Self.split(named)
        guard !host.isEmpty else {
            throw ProxyError(.badConfiguration, "the destination '\(named)' has no host name")
        }
        if let port, !(1...65535).contains(port) {
            throw ProxyError(.badConfiguration, "the destination '\(named)' has port \(port), outside 1-65535")
        }
        self.host = host.lowercased()
        self.port = port
        self.path = uri
        self.authority = named
    }

    /// Whether `uri` starts with `scheme` (lowercase, with its `://`) in any case.
    static func hasScheme(_ scheme: String, _ uri: String) -> Bool {
        let head = uri.utf8.prefix(scheme.utf8.count)
        return head.count == scheme.utf8.count && zip(head, scheme.utf8).allSatisfy { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
    }

    /// Splits `host[:port]`, `[v6][:port]`; a port that is not a number is left in the host so
    /// that resolution fails with the whole name.
    static func split(_ authority: String) -> (String, Int?) {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            let host = String(authority[authority.index(after: authority.startIndex)..<close])
            let rest = authority[authority.index(after: close)...]
            return (host, rest.hasPrefix(":") ? Int(rest.dropFirst()) ?? -1 : nil)
        }
        guard let colon = authority.lastIndex(of: ":") else { return (authority, nil) }
        return (String(authority[..<colon]), Int(authority[authority.index(after: colon)...]) ?? -1)
    }
}
