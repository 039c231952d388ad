import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import RampartAPI
import RampartPolicy
import ServiceLifecycle
import Synchronization

/// The proxy's end of the control plane's config stream.
///
/// It connects over mTLS with the workload's current certificate, registers the workload, and
/// applies each snapshot: a snapshot that compiles is put in force and ACKed; one that does not
/// is NACKed with the reason, and the previous one stays in force. When the stream breaks, the
/// proxy keeps enforcing the last good snapshot and reconnects with jittered exponential back-off.
public final class ConfigStream: Service, Sendable {
    /// Where the control plane listens, and the root its serving certificate chains to.
    public struct Endpoint: Sendable {
        /// The control plane's gRPC address.
        public let host: String
        public let port: Int
        /// The root its serving certificate chains to, as PEM.
        public let rootPEM: String

        /// Creates an endpoint.
        public init(host: String, port: Int, rootPEM: String) {
            self.host = host
            self.port = port
            self.rootPEM = rootPEM
        }
    }

    private let endpoint: Endpoint
    private let identity: IdentityWatcher
    private let workload: WorkloadInfo
    private let inboundAddress: @Sendable () -> String?
    private let holder: ConfigHolder
    private let onInstall: @Sendable (ProxyConfig) -> Void
    private let logger: Logger
    private let initialBackoff: Duration
    private let maxBackoff: Duration

    /// Creates the stream; nothing connects until `run`.
    public init(
        endpoint: Endpoint, identity: IdentityWatcher, workload: WorkloadInfo, inboundAddress: @escaping @Sendable () -> String?, holder: ConfigHolder,
        initialBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(10),
        onInstall: @escaping @Sendable (ProxyConfig) -> Void = { _ in }, logger: Logger
    ) {
        self.onInstall = onInstall
        self.endpoint = endpoint
        self.identity = identity
        self.workload = workload
        self.inboundAddress = inboundAddress
        self.holder = holder
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.logger = logger
    }

    /// The registration this proxy sends, for an inbound listener at `inboundAddress`.
    func registration(inboundAddress: String) -> Rampart_Config_V1_Registration {
        var registration = Rampart_Config_V1_Registration()
        registration.workload = workload.name
        registration.namespace = workload.namespace
        registration.labels = workload.labels
        registration.services = workload.services.map { service in
            var port = Rampart_Config_V1_ServicePort()
            port.name = service.name
            port.port = UInt32(service.port)
            return port
        }
        registration.inboundAddress = inboundAddress
        registration.proxyVersion = ProxyVersion.current
        registration.appPort = UInt32(clamping: max(workload.appPort, 0))
        return registration
    }

    /// Connects, follows the stream, and reconnects until shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            var failures = 0
            while !Task.isCancelled {
                guard let current = identity.current, let inbound = inboundAddress() else {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                let received = SnapshotCounter()
                do {
                    try await session(current, inbound: inbound, received: received)
                    logger.info("config stream session ended; reconnecting")
                } catch {
                    if !Task.isCancelled {
                        logger.warning(
                            "config stream failed; enforcing the last good snapshot and reconnecting",
                            metadata: ["config.control_plane": "\(endpoint.host):\(endpoint.port)", "error": "\(Self.describe(error))"]
                        )
                    }
                }
                holder.isConnected = false
                failures = received.value > 0 ? 1 : failures + 1
                try? await Task.sleep(for: Self.backoff(failures: failures, initial: initialBackoff, max: maxBackoff))
            }
        }
    }

    /// The wait before reconnect attempt `failures` (1-based): doubling from `initial`, capped at
    /// `max`, with up to 25 % random jitter so proxies do not reconnect in lockstep.
    static func backoff(failures: Int, initial: Duration, max: Duration) -> Duration {
        let exponent = Swift.min(Swift.max(failures - 1, 0), 20)
        let base = Swift.min(initial * (1 << exponent), max)
        return base + base * Double.random(in: 0..<0.25)
    }

    private func session(_ current: CurrentIdentity, inbound: String, received: SnapshotCounter) async throws {
        let root = Array(endpoint.rootPEM.utf8)
        let chain = Array(current.identity.chainPEM.utf8)
        let key = Array(current.identity.keyPEM.utf8)
        let security = HTTP2ClientTransport.Posix.TransportSecurity.tls { config in
            config.trustRoots = .certificates([.bytes(root, format: .pem)])
            config.serverCertificateVerification = .fullVerification
            config.certificateChain = [.bytes(chain, format: .pem)]
            config.privateKey = .bytes(key, format: .pem)
        }
        let transport = try HTTP2ClientTransport.Posix(target: Self.target(host: endpoint.host, port: endpoint.port), transportSecurity: security)
        let (acks, ackSink) = AsyncStream.makeStream(of: Rampart_Config_V1_Ack.self)
        let registration = self.registration(inboundAddress: inbound)
        let workload = self.workload
        let holder = self.holder
        let onInstall = self.onInstall
        let logger = self.logger
        let identity = self.identity
        let generation = current.generation
        // `cluster.local` in the policies' principals stands for the trust domain of this proxy's identity.
        let trustDomains = TrustDomainBundle(trustDomain: current.identity.spiffeID.trustDomain.name)
        try await withGRPCClient(transport: transport) { client in
            // A rotated certificate ends the session, so the control plane sees the new one.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled, identity.current?.generation == generation {
                        try await Task.sleep(for: .seconds(1))
                    }
                }
                group.addTask {
                    try await Self.follow(
                        client: client, registration: registration, acks: acks, ackSink: ackSink, workload: workload,
                        trustDomains: trustDomains, holder: holder, onInstall: onInstall, received: received, logger: logger)
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    private static func follow(
        client: GRPCClient<HTTP2ClientTransport.Posix>, registration: Rampart_Config_V1_Registration, acks: AsyncStream<Rampart_Config_V1_Ack>,
        ackSink: AsyncStream<Rampart_Config_V1_Ack>.Continuation, workload: WorkloadInfo, trustDomains: TrustDomainBundle,
        holder: ConfigHolder, onInstall: @escaping @Sendable (ProxyConfig) -> Void, received: SnapshotCounter, logger: Logger
    ) async throws {
        let service = Rampart_Config_V1_MeshConfigService.Client(wrapping: client)
        try await service.streamConfig(
            requestProducer: { writer in
                var first = Rampart_Config_V1_ProxyMessage()
                first.registration = registration
                try await writer.write(first)
                for await ack in acks {
                    var message = Rampart_Config_V1_ProxyMessage()
                    message.ack = ack
                    try await writer.write(message)
                }
            },
            onResponse: { response in
                defer { ackSink.finish() }
                for try await snapshot in response.messages {
                    received.increment()
                    holder.isConnected = true
                    var ack = Rampart_Config_V1_Ack()
                    ack.nonce = snapshot.nonce
                    do {
                        let config = try ProxyConfig.compile(snapshot, workload: workload, trustDomains: trustDomains)
                        holder.install(config)
                        onInstall(config)
                        ack.accepted = true
                        logger.info(
                            "config snapshot applied",
                            metadata: [
                                "config.nonce": "\(snapshot.nonce)", "config.version": "\(snapshot.configVersion)",
                                "config.resources": "\(snapshot.resources.count)", "config.services": "\(snapshot.services.count)",
                                "config.revoked": "\(snapshot.revoked.count)",
                            ]
                        )
                    } catch {
                        ack.accepted = false
                        ack.errorDetail = (error as? ProxyError)?.reason ?? "\(error)"
                        logger.warning(
                            "config snapshot refused; enforcing the previous one",
                            metadata: ["config.nonce": "\(snapshot.nonce)", "config.version": "\(snapshot.configVersion)", "error": "\(ack.errorDetail)"]
                        )
                    }
                    ackSink.yield(ack)
                }
            }
        )
    }

    static func target(host: String, port: Int) -> any ResolvableTarget {
        if host.contains(":") { return .ipv6(address: host, port: port) }
        let octets = host.split(separator: ".")
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) { return .ipv4(address: host, port: port) }
        return .dns(host: host, port: port)
    }

    static func describe(_ error: any Error) -> String {
        if let rpc = error as? RPCError { return "\(rpc.code): \(rpc.message)" }
        return "\(error)"
    }
}

/// The proxy's software version, as registrations and `/server_info` report it.
public enum ProxyVersion {
    /// This build's version string.
    public static let current = "rampart-proxy/0.1"
}

/// How many snapshots one stream session received, so a session that worked resets the back-off.
final class SnapshotCounter: Sendable {
    private let count = Mutex(0)

    var value: Int { count.withLock { $0 } }
    func increment() { count.withLock { $0 += 1 } }
}
