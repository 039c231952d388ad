import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The addresses a running proxy bound.
public struct ProxyAddresses: Sendable, Equatable {
    /// The inbound listener's port.
    public var inbound: Int
    /// The outbound listener's port.
    public var outbound: Int
    /// The admin listener's port.
    public var admin: Int
    /// The status listener's port, when one was asked for.
    public var status: Int?
    /// The outbound TCP listeners' ports, in the order of `Listeners.outboundTCP`.
    public var outboundTCP: [Int] = []
}

/// The `rampart proxy` daemon: identity watcher, config stream, inbound and outbound listeners and
/// the admin server, as services of one ServiceGroup that SIGTERM and SIGINT shut down gracefully.
public struct ProxyServer: Sendable {
    /// Listen addresses.
    public struct Listeners: Sendable {
        /// The inbound listener's address (port 0 picks a free port).
        public var inboundHost: String
        public var inboundPort: Int
        /// The outbound listener's address.
        public var outboundHost: String
        public var outboundPort: Int
        /// The admin listener's address.
        public var adminHost: String
        public var adminPort: Int
        /// The address other proxies reach the inbound listener at, as registered.
        public var advertisedInbound: String?
        /// The status listener's address (Istio's 15021, readiness only), if any.
        public var statusHost: String?
        public var statusPort: Int
        /// Listeners that carry TCP connections to mesh services (see `OutboundTCPListener`).
        public var outboundTCP: [OutboundTCPListener.Mapping] = []

        /// Creates listener settings.
        public init(
            inboundHost: String, inboundPort: Int, outboundHost: String, outboundPort: Int, adminHost: String, adminPort: Int,
            advertisedInbound: String? = nil, statusHost: String? = nil, statusPort: Int = 15021,
            outboundTCP: [OutboundTCPListener.Mapping] = []
        ) {
            self.outboundTCP = outboundTCP
            self.statusHost = statusHost
            self.statusPort = statusPort
            self.inboundHost = inboundHost
            self.inboundPort = inboundPort
            self.outboundHost = outboundHost
            self.outboundPort = outboundPort
            self.adminHost = adminHost
            self.adminPort = adminPort
            self.advertisedInbound = advertisedInbound
        }
    }

    let context: ProxyContext
    let listeners: Listeners
    let controlPlane: ConfigStream.Endpoint

    /// Creates the daemon.
    public init(context: ProxyContext, listeners: Listeners, controlPlane: ConfigStream.Endpoint) {
        self.context = context
        self.listeners = listeners
        self.controlPlane = controlPlane
    }

    /// Runs until a signal arrives; `onReady` receives the bound ports once every listener is bound.
    public func run(metricsText: @escaping @Sendable () -> String, onReady: @escaping @Sendable (ProxyAddresses) -> Void) async throws {
        let ports = BoundPorts(expectsStatus: listeners.statusHost != nil, outboundTCPCount: listeners.outboundTCP.count, onReady: onReady)
        let inbound = InboundListener(host: listeners.inboundHost, port: listeners.inboundPort, context: context) { port in ports.set(.inbound, port) }
        let outbound = OutboundListener(host: listeners.outboundHost, port: listeners.outboundPort, context: context) { port in ports.set(.outbound, port) }
        let shutdown = ShutdownTrigger()
        let admin = ProxyAdmin.make(
            host: listeners.adminHost, port: listeners.adminPort, context: context, metricsText: metricsText,
            quit: { await shutdown.fire() }
        ) { port in ports.set(.admin, port) }
        let statusPort = self.listeners.statusPort
        let status: [any Service] = self.listeners.statusHost.map { host in
            [ProxyAdmin.makeStatus(host: host, port: statusPort, context: context) { port in ports.set(.status, port) }]
        } ?? []
        let listeners = self.listeners
        let tcp: [any Service] = listeners.outboundTCP.enumerated().map { index, mapping in
            OutboundTCPListener(mapping: mapping, context: context) { port in
                context.logger.info("outbound TCP listener carries connections to \(mapping.service):\(mapping.servicePort)", metadata: ["proxy.port": "\(port)"])
                ports.set(.outboundTCP(index), port)
            }
        }
        let stream = ConfigStream(
            endpoint: controlPlane, identity: context.identity, workload: context.workload,
            inboundAddress: {
                if let advertised = listeners.advertisedInbound { return advertised }
                guard let port = ports.inbound else { return nil }
                let host = listeners.inboundHost.contains(":") ? "[\(listeners.inboundHost)]" : listeners.inboundHost
                return "\(host):\(port)"
            },
            holder: context.config,
            // The JWT rules' keys are fetched when the config arrives, not by the first token.
            onInstall: { [authenticator = context.authenticator] config in
                guard !config.jwtProviders.isEmpty else { return }
                Task { await authenticator.prefetch(config.jwtProviders) }
            },
            logger: context.logger
        )
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // The span exporter first, so that it stops last (a group stops its services in
                // reverse order) and sends the spans of requests the listeners finish draining.
                services: ((context.tracing.map { [$0.service] } ?? []) + [context.identity, inbound, outbound, admin, stream] + status + tcp).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: context.logger
            )
        )
        shutdown.set(group)
        try await group.run()
        context.upstream.shutdown()
        context.accessLog.flush()
    }
}

/// Starts a service group's graceful shutdown from a request (the admin port's /quitquitquit),
/// as a signal would.
final class ShutdownTrigger: Sendable {
    private let group = Mutex<ServiceGroup?>(nil)

    func set(_ group: ServiceGroup) {
        self.group.withLock { $0 = group }
    }

    func fire() async {
        await group.withLock { $0 }?.triggerGracefulShutdown()
    }
}

/// Collects the bound ports and reports once all are known.
final class BoundPorts: Sendable {
    private struct Bound {
        var inbound: Int?
        var outbound: Int?
        var admin: Int?
        var status: Int?
        var outboundTCP: [Int?]
        var reported = false
    }

    private let ports: Mutex<Bound>
    private let expectsStatus: Bool
    private let onReady: @Sendable (ProxyAddresses) -> Void

    init(expectsStatus: Bool = false, outboundTCPCount: Int = 0, onReady: @escaping @Sendable (ProxyAddresses) -> Void) {
        self.expectsStatus = expectsStatus
        self.onReady = onReady
        ports = Mutex(Bound(outboundTCP: Array(repeating: nil, count: outboundTCPCount)))
    }

    enum Slot {
        case inbound, outbound, admin, status
        /// The outbound TCP listener at this index of `Listeners.outboundTCP`.
        case outboundTCP(Int)
    }

    var inbound: Int? { ports.withLock { $0.inbound } }

    func set(_ slot: Slot, _ port: Int) {
        let expectsStatus = self.expectsStatus
        let ready: ProxyAddresses? = ports.withLock { value in
            switch slot {
            case .inbound: value.inbound = port
            case .outbound: value.outbound = port
            case .admin: value.admin = port
            case .status: value.status = port
            case .outboundTCP(let index): value.outboundTCP[index] = port
            }
            let tcp = value.outboundTCP.compactMap { $0 }
            guard !value.reported, let inbound = value.inbound, let outbound = value.outbound, let admin = value.admin,
                !expectsStatus || value.status != nil, tcp.count == value.outboundTCP.count
            else { return nil }
            value.reported = true
            return ProxyAddresses(inbound: inbound, outbound: outbound, admin: admin, status: value.status, outboundTCP: tcp)
        }
        if let ready { onReady(ready) }
    }
}
