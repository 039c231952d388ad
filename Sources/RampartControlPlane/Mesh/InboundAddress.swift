/// A workload's inbound listener address, `host:port`, and where peers actually reach it.
///
/// A proxy that listens on every interface registers `0.0.0.0:15006` (or `[::]:15006`, or
/// `:15006`); other proxies cannot dial that, so the control plane substitutes the address the
/// proxy connected from.
public struct InboundAddress: Sendable, Hashable {
    /// The host as written, without brackets; empty when only a port was given.
    public let host: String
    /// The port, 1–65535.
    public let port: Int

    /// Parses `host:port`, `[v6]:port` or `:port`; nil when it is none of these.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") || host.hasSuffix("]") {
            guard host.hasPrefix("["), host.hasSuffix("]"), host.count >= 2 else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        self.host = host
        self.port = port
    }

    /// Whether the host names every interface rather than one address.
    public var isUnspecified: Bool { host.isEmpty || host == "0.0.0.0" || host == "::" }

    /// The address peers dial: the host, or `peerHost` (the address the proxy connected from)
    /// when the host is unspecified. IPv6 hosts are bracketed.
    public func reachable(peerHost: String?) -> String? {
        let chosen = isUnspecified ? peerHost : host
        guard let chosen, !chosen.isEmpty else { return nil }
        return chosen.contains(":") ? "[\(chosen)]:\(port)" : "\(chosen):\(port)"
    }

    /// The host of a gRPC remote peer description (`ipv4:10.0.0.7:53412`, `ipv6:[::1]:53412`).
    public static func host(ofRemotePeer remote: String) -> String? {
        if remote.hasPrefix("ipv4:") {
            let rest = remote.dropFirst("ipv4:".count)
            guard let colon = rest.lastIndex(of: ":") else { return nil }
            return String(rest[..<colon])
        }
        if remote.hasPrefix("ipv6:") {
            let rest = remote.dropFirst("ipv6:".count)
            guard rest.hasPrefix("["), let close = rest.firstIndex(of: "]") else { return nil }
            return String(rest[rest.index(after: rest.startIndex)..<close])
        }
        return nil
    }
}
