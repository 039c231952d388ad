import NIOSSL

/// The TLS contexts one identity yields: the inbound server side, which requires a client
/// certificate, and the outbound client side, which presents one.
///
/// Peer checks (SPIFFE shape, revocation, expected identities) run in a `PeerVerifier` callback
/// on each handshake, so these contexts carry no trust decision beyond the key pair.
public struct TLSContexts: Sendable {
    /// For the inbound listener.
    public let server: NIOSSLContext
    /// For connections the proxy originates.
    public let client: NIOSSLContext

    /// The protocols offered in ALPN, most preferred first.
    public static let applicationProtocols = ["http/1.1"]

    /// Builds both contexts for an identity.
    public init(identity: ProxyIdentity) throws(ProxyError) {
        do {
            var server = TLSConfiguration.makeServerConfiguration(
                certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.key)
            )
            server.minimumTLSVersion = .tlsv12
            server.certificateVerification = .noHostnameVerification
            server.trustRoots = .certificates(identity.nioRoots)
            server.applicationProtocols = Self.applicationProtocols
            self.server = try NIOSSLContext(configuration: server)

            var client = TLSConfiguration.makeClientConfiguration()
            client.minimumTLSVersion = .tlsv12
            client.certificateChain = identity.chain.map { .certificate($0) }
            client.privateKey = .privateKey(identity.key)
            client.certificateVerification = .noHostnameVerification
            client.trustRoots = .certificates(identity.nioRoots)
            client.applicationProtocols = ["http/1.1"]
            self.client = try NIOSSLContext(configuration: client)
        } catch {
            throw ProxyError(.identity, "cannot build TLS contexts for \(identity.spiffeID): \(error)")
        }
    }
}
