import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RampartAuthn
import RampartIdentity
import RampartPKI
import RampartStore
import ServiceLifecycle
import Synchronization

/// Settings for `rampart ca serve`.
public struct CAServerConfiguration: Sendable {
    /// The state directory made by `ca init`.
    public var state: StateDirectory
    /// gRPC listen host and port (port 0 picks a free one).
    public var listenHost: String
    public var listenPort: Int
    /// Admin HTTP listen host and port.
    public var adminHost: String
    public var adminPort: Int
    /// JWT issuers trusted for bootstrap.
    public var jwtIssuers: [TrustedIssuer]
    /// The audience JWTs must carry.
    public var jwtAudience: String
    /// Lifetimes.
    public var policy: IssuancePolicy

    /// Creates a configuration with Istio's ports on loopback.
    public init(
        state: StateDirectory, listenHost: String = "127.0.0.1", listenPort: Int = 15012, adminHost: String = "127.0.0.1", adminPort: Int = 15014,
        jwtIssuers: [TrustedIssuer] = [], jwtAudience: String = "istio-ca", policy: IssuancePolicy = IssuancePolicy()
    ) {
        self.state = state
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.jwtIssuers = jwtIssuers
        self.jwtAudience = jwtAudience
        self.policy = policy
    }
}

/// The addresses the CA actually bound, once it is up.
public struct CAServerAddresses: Sendable, Equatable {
    /// The gRPC port.
    public var grpcPort: Int
    /// The admin HTTP port.
    public var adminPort: Int
}

/// The `ca serve` daemon: the gRPC certificate service and the admin HTTP server, as services
/// of one ServiceGroup that SIGTERM and SIGINT shut down gracefully.
public struct CAServer: Sendable {
    let configuration: CAServerConfiguration
    let logger: Logger

    /// Creates the daemon.
    public init(configuration: CAServerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until a signal arrives. `metricsText` renders the metrics backend's exposition;
    /// `onReady` receives the bound ports.
    public func run(
        metricsText: @escaping @Sendable () -> String,
        onReady: @escaping @Sendable (CAServerAddresses) -> Void
    ) async throws {
        let now = Date()
        let config = try configuration.state.loadConfig()
        let trustDomain = try config.parsedTrustDomain()
        let authority = try await configuration.state.loadAuthority(now: now)
        let store = try configuration.state.openStore()
        let issuer = try SVIDIssuer(authority: authority, policy: configuration.policy)

        let jwt = configuration.jwtIssuers.isEmpty ? nil : JWTAuthenticator(issuers: configuration.jwtIssuers, audience: configuration.jwtAudience, trustDomain: trustDomain)
        try await jwt?.preload(now: now)

        let serving = try await ServingCertificate.make(issuer: issuer, trustDomain: trustDomain, listenHost: configuration.listenHost, now: now)
        try await store.recordIssued([serving.record], audit: [
            AuditEntry(time: now, type: .certificateIssued, actor: "ca", subject: serving.record.serial, details: ["spiffe_id": serving.record.spiffeID, "auth": "ca-internal", "purpose": "grpc-serving"])
        ])

        let peers = PeerRegistry()
        let sslContext = try NIOSSLContext(configuration: OptionalClientCertificateListener.tlsConfiguration(chain: serving.chain, key: serving.key))
        let transport = HTTP2ServerTransport.Custom(
            listenerFactory: OptionalClientCertificateListener(
                host: configuration.listenHost, port: configuration.listenPort, sslContext: sslContext,
                registry: peers, eventLoopGroup: MultiThreadedEventLoopGroup.singleton
            )
        )
        let service = CertificateService(
            issuer: issuer,
            authenticator: CallerAuthenticator(trustDomain: trustDomain, store: store, jwt: jwt, authority: authority),
            store: store, peers: peers, logger: logger
        )
        let grpcServer = GRPCServer(transport: transport, services: [service])
        let grpcService = GRPCServerService(server: grpcServer)

        let grpcPort = Mutex<Int?>(nil)
        let adminPortBox = Mutex<Int?>(nil)
        let reportReady: @Sendable () -> Void = {
            if let grpc = grpcPort.withLock({ $0 }), let admin = adminPortBox.withLock({ $0 }) {
                onReady(CAServerAddresses(grpcPort: grpc, adminPort: admin))
            }
        }
        let metrics = CAMetrics()
        let signingNotAfter = authority.latestNotAfter
        let rootNotAfter = authority.roots.map(\.notValidAfter).min() ?? signingNotAfter
        let admin = AdminServer.make(
            host: configuration.adminHost, port: configuration.adminPort,
            ready: { grpcPort.withLock { $0 } != nil },
            metricsText: metricsText,
            beforeScrape: { metrics.refreshExpiry(signingNotAfter: signingNotAfter, rootNotAfter: rootNotAfter, now: Date()) },
            onRunning: { port in
                adminPortBox.withLock { $0 = port }
                reportReady()
            },
            logger: logger
        )
        let readiness = ListeningReporter(transport: transport) { port in
            grpcPort.withLock { $0 = port }
            reportReady()
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: grpcService), .init(service: admin), .init(service: readiness)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info("CA starting", metadata: ["ca.trust_domain": "\(trustDomain)", "ca.signing_serial": "\(authority.certificate.serialNumber.hexString)"])
        try await group.run()
    }
}

/// Runs a GRPCServer as a lifecycle service.
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Custom<OptionalClientCertificateListener>>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// Waits for the gRPC transport to bind, reports the port, then idles until shutdown.
struct ListeningReporter: Service {
    let transport: HTTP2ServerTransport.Custom<OptionalClientCertificateListener>
    let report: @Sendable (Int) -> Void

    func run() async throws {
        if let address = await transport.listeningAddress {
            if let v4 = address.ipv4 { report(v4.port) } else if let v6 = address.ipv6 { report(v6.port) }
        }
        try? await gracefulShutdown()
    }
}
