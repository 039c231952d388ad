import NIOSSL

/// The TLS contexts one identity yields: the inbound server side, which requires a client
/// certificate, and the outbound client side, which presents one.
///
/// Peer checks (SPIFFE shape, revocation, expected identities) run in a `PeerVerifier` callback
/// on each handshake, so these contexts carry no trust decision beyond the key pair.
public struct TLSContexts: Sendable {
    /// For the inbound listener.
    public let server: NIOSSLContext
    /// For connections the proxy originates, offering HTTP/1.1 in ALPN.
    public let client: NIOSSLContext
    /// For connections the proxy originates, offering HTTP/2 in ALPN.
    public let clientHTTP2: NIOSSLContext

    /// The protocols the inbound listener offers in ALPN, most preferred first.
    public static let applicationProtocols = ["h2", "http/1.1"]

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
            client.applicationProtocols = ["h2"]
            self.clientHTTP2 = try NIOSSLContext(configuration: client)
        } catch {
            let text = "\(error)"
            let why =
                text.contains("PrivateKey") ? "the private key cannot be used with the certificate chain"
                : text.contains("Certificate") ? "the certificate chain cannot be loaded" : "the TLS library refused the material"
            throw ProxyError(.identity, "cannot build TLS contexts for \(identity.spiffeID): \(why); check the identity's files")
        }
    }
}
