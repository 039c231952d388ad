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
import RampartPolicy
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
    /// CA certificates trusted beside the system's roots when fetching a JWKS over https.
    public var jwksExtraRoots: ExtraRootCertificates?
    /// Lifetimes.
    public var policy: IssuancePolicy
    /// The mesh's root namespace, whose stored policies apply mesh-wide.
    public var rootNamespace: String
    /// How long a disconnected proxy's registration (and its endpoints) is kept.
    public var registrationGrace: Duration

    /// Creates a configuration with Istio's ports on loopback.
    public init(
        state: StateDirectory, listenHost: String = "127.0.0.1", listenPort: Int = 15012, adminHost: String = "127.0.0.1", adminPort: Int = 15014,
        jwtIssuers: [TrustedIssuer] = [], jwtAudience: String = "istio-ca", policy: IssuancePolicy = IssuancePolicy(),
        rootNamespace: String = "istio-system", registrationGrace: Duration = .seconds(15),
        jwksExtraRoots: ExtraRootCertificates? = nil
    ) {
        self.jwksExtraRoots = jwksExtraRoots
        self.state = state
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.jwtIssuers = jwtIssuers
        self.jwtAudience = jwtAudience
        self.policy = policy
        self.rootNamespace = rootNamespace
        self.registrationGrace = registrationGrace
    }
}

/// The addresses the CA actually bound, once it is up.
public struct CAServerAddresses: Sendable, Equatable {
    /// The gRPC port.
    public var grpcPort: Int
    /// The admin HTTP port.
    public var adminPort: Int
}

/// The `ca serve` daemon: the gRPC certificate service, the proxies' config stream and the admin
/// HTTP server, as services of one ServiceGroup that SIGTERM and SIGINT shut down gracefully.
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
    // Start-up code, not on a hot path: kept unoptimized because Swift 6.3's optimizer crashes
    // (signal 11 while splitting this coroutine) on it in release builds.
    @_optimize(none)
    public func run(
        metricsText: @escaping @Sendable () -> String,
        onReady: @escaping @Sendable (CAServerAddresses) -> Void
    ) async throws {
        let parts = try await prepare(now: Date())
        let services = assemble(parts, metricsText: metricsText, onReady: onReady)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info("CA starting", metadata: ["ca.trust_domain": "\(parts.trustDomain)", "ca.signing_serial": "\(parts.authority.certificate.serialNumber.hexString)"])
        try await group.run()
    }

    /// Everything the daemon needs, loaded and checked before any port opens.
    struct Parts: Sendable {
        let trustDomain: TrustDomain
        let authority: CertificateAuthority
        let store: SQLiteStore
        let service: CertificateService
        let identity: WorkloadIdentityService
        let transport: HTTP2ServerTransport.Custom<OptionalClientCertificateListener>
        let config: ConfigWatcher
        let registry: MeshRegistry
        let revocations: RevocationPoller
        let mesh: MeshConfigService
    }

    // Start-up code, not on a hot path: kept unoptimized because Swift 6.3's optimizer crashes
    // (signal 11 while splitting this coroutine) on it in release builds.
    @_optimize(none)
    func prepare(now: Date) async throws -> Parts {
        let config = try configuration.state.loadConfig()
        let trustDomain = try config.parsedTrustDomain()
        let authority = try await configuration.state.loadAuthority(now: now)
        for (file, mode) in configuration.state.looseKeyFiles() {
            logger.warning(
                "a private key is readable by other users: chmod 600 it",
                metadata: ["file": "\(file)", "mode": "\(String(mode, radix: 8))"])
        }
        // Every page is read once before serving, through a read-only connection that leaves a
        // refused store as it was: a store damaged inside (a page that no longer reads back) would
        // otherwise be found by the first issuance that needs it, or never.
        if let problem = try await configuration.state.problemBeforeWriting() {
            throw ControlPlaneError(
                .startFailed,
                problem + ": ca serve does not start on it, so that no certificate is recorded where it could be lost or where it does not belong. Restore the file from a backup")
        }
        let store = try configuration.state.openStore()
        let issuer = try SVIDIssuer(authority: authority, policy: configuration.policy)

        let jwt = configuration.jwtIssuers.isEmpty ? nil : JWTAuthenticator(
                issuers: configuration.jwtIssuers, audience: configuration.jwtAudience, trustDomain: trustDomain,
                fetcher: AsyncHTTPClientFetcher(extraRoots: configuration.jwksExtraRoots))
        try await jwt?.preload(now: now)

        let serving = try await ServingCertificate.make(issuer: issuer, trustDomain: trustDomain, listenHost: configuration.listenHost, now: now)
        try await store.recordIssued([serving.record], audit: [
            AuditEntry(time: now, type: .certificateIssued, actor: "ca", subject: serving.record.serial, details: serving.record.issuanceDetails.merging(["auth": "ca-internal", "purpose": "grpc-serving"]) { $1 })
        ])

        let peers = PeerRegistry()
        let sslContext = try NIOSSLContext(configuration: OptionalClientCertificateListener.tlsConfiguration(chain: serving.chain, key: serving.key))
        let transport = HTTP2ServerTransport.Custom(
            listenerFactory: OptionalClientCertificateListener(
                host: configuration.listenHost, port: configuration.listenPort, sslContext: sslContext,
                registry: peers, eventLoopGroup: MultiThreadedEventLoopGroup.singleton
            )
        )
        let authenticator = CallerAuthenticator(trustDomain: trustDomain, store: store, jwt: jwt, authority: authority)
        let service = CertificateService(issuer: issuer, authenticator: authenticator, store: store, peers: peers, logger: logger)
        let (jwtSigner, jwtKeyCreated) = try await configuration.state.loadJWTSigner()
        if jwtKeyCreated {
            logger.notice("created a JWT-SVID signing key", metadata: ["ca.jwt_key": "\(configuration.state.jwtKeyPath)", "ca.jwt_kid": "\(jwtSigner.keyID)"])
        }
        let identity = try WorkloadIdentityService(
            trustDomain: trustDomain, authority: authority, jwtSigner: jwtSigner, authenticator: authenticator,
            peers: peers, sequence: UInt64(max(0, now.timeIntervalSince1970)), logger: logger
        )
        let watcher = ConfigWatcher(
            store: store,
            options: SnapshotOptions(
                rootNamespace: configuration.rootNamespace, trustDomains: TrustDomainBundle(trustDomain: trustDomain.name)),
            logger: logger)
        let registry = MeshRegistry(grace: configuration.registrationGrace, logger: logger)
        let revocations = RevocationPoller(store: store, logger: logger)
        let mesh = MeshConfigService(
            authenticator: authenticator, peers: peers, registry: registry, config: watcher.updates, revocations: revocations.updates,
            rootNamespace: configuration.rootNamespace, logger: logger
        )
        return Parts(
            trustDomain: trustDomain, authority: authority, store: store, service: service, identity: identity, transport: transport, config: watcher,
            registry: registry, revocations: revocations, mesh: mesh
        )
    }

    // Start-up code, not on a hot path: kept unoptimized because Swift 6.3's optimizer crashes
    // (signal 11 while splitting this coroutine) on it in release builds.
    @_optimize(none)
    func assemble(
        _ parts: Parts,
        metricsText: @escaping @Sendable () -> String,
        onReady: @escaping @Sendable (CAServerAddresses) -> Void
    ) -> [any Service] {
        let ports = ReadyPorts(onReady: onReady)
        let metrics = parts.service.metrics
        let signingNotAfter = parts.authority.latestNotAfter
        let rootNotAfter = parts.authority.roots.map(\.notValidAfter).min() ?? signingNotAfter
        let admin = AdminServer.make(
            host: configuration.adminHost, port: configuration.adminPort,
            ready: { ports.grpcReady },
            metricsText: metricsText,
            beforeScrape: { metrics.refreshExpiry(signingNotAfter: signingNotAfter, rootNotAfter: rootNotAfter, now: Date()) },
            syncz: { [registry = parts.registry, config = parts.config] in
                try SyncStatus(configVersion: config.updates.current?.version, proxies: registry.proxies()).json()
            },
            onRunning: { port in ports.admin(port) },
            logger: logger
        )
        let grpc = GRPCServerService(server: GRPCServer(transport: parts.transport, services: [parts.service, parts.identity, parts.mesh]))
        let reporter = ListeningReporter(transport: parts.transport) { port in ports.grpc(port) }
        // Shut down in reverse order: the registry and the pollers finish their watched values
        // first, which ends every config stream, so the gRPC server's graceful shutdown completes.
        return [grpc, admin, reporter, parts.config, parts.revocations, parts.registry]
    }
}

/// Collects the two bound ports and reports once both are known.
final class ReadyPorts: Sendable {
    private let ports = Mutex<(grpc: Int?, admin: Int?)>((nil, nil))
    private let onReady: @Sendable (CAServerAddresses) -> Void

    init(onReady: @escaping @Sendable (CAServerAddresses) -> Void) {
        self.onReady = onReady
    }

    var grpcReady: Bool { ports.withLock { $0.grpc != nil } }

    func grpc(_ port: Int) { update { $0.grpc = port } }
    func admin(_ port: Int) { update { $0.admin = port } }

    private func update(_ change: (inout (grpc: Int?, admin: Int?)) -> Void) {
        let ready: CAServerAddresses? = ports.withLock { value in
            let wasReady = value.grpc != nil && value.admin != nil
            change(&value)
            guard !wasReady, let grpc = value.grpc, let admin = value.admin else { return nil }
            return CAServerAddresses(grpcPort: grpc, adminPort: admin)
        }
        if let ready { onReady(ready) }
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
