import RampartIdentity

/// Why the proxy could not do something, with what to do about it.
public struct ProxyError: CodedError {
    /// The kinds of failure.
    public enum Code: String, Sendable, Hashable {
        /// A command-line setting is wrong.
        case badConfiguration
        /// The workload identity (certificate, key, trust bundle) is missing or unusable.
        case identity
        /// A config snapshot from the control plane was refused.
        case badSnapshot
        /// An upstream could not be reached or answered badly.
        case upstream
        /// No connection to an upstream could be made: refused, unreachable, or its TLS handshake
        /// failed. Nothing was sent, so the request may go to another endpoint (Envoy's
        /// `connect-failure` retry condition).
        case upstreamConnect
        /// A peer's certificate was refused.
        case peerRefused
    }

    /// The kind of failure.
    public let code: Code
    /// What was wrong, and what to do.
    public let reason: String

    /// Creates an error.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
