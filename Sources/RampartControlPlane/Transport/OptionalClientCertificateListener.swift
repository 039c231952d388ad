import GRPCNIOTransportHTTP2
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS listener for the CA's gRPC port that asks for a client certificate without requiring one.
///
/// Bootstrapping workloads have no certificate yet and authenticate with a token or JWT; renewing
/// workloads present their current certificate. The TLS layer proves the client holds the key;
/// the CA itself checks the chain, expiry and revocation, so each refusal can say what was wrong.
struct OptionalClientCertificateListener: HTTP2ServerTransport.ListenerFactory {
    let host: String
    let port: Int
    let sslContext: NIOSSLContext
    let registry: PeerRegistry
    let eventLoopGroup: any EventLoopGroup

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let sslContext = self.sslContext
        let registry = self.registry
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in listenerConfigurator.configure(channel: channel) }
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = NIOSSLServerHandler(context: sslContext) { _, promise in
                        // Possession of the key is proven by the handshake; the CA validates the chain itself.
                        promise.succeed(.certificateVerified(VerificationMetadata(nil)))
                    }
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHandler(PeerCertificateRecorder(registry: registry))
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: .configured(requireALPN: false))
                }
            }
    }

    /// The server TLS configuration: TLS 1.2+, gRPC's ALPN ids, client certificates requested but optional.
    static func tlsConfiguration(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .optionalVerification
        configuration.applicationProtocols = ["grpc-exp", "h2"]
        return configuration
    }
}
