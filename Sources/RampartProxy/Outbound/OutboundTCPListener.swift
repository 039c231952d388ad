import Foundation
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A listener for one mesh service's TCP port, for applications whose protocol is not HTTP (a
/// database, a message broker): every connection made to it is carried, byte for byte, over mTLS
/// to an instance of the service, whose proxy authorizes it on its L4 attributes. It is what an
/// Istio `Sidecar` egress listener with a `bind` address and `captureMode: NONE` does for a TCP
/// port, where there is no iptables capture: the application connects to a local address instead
/// of the service's.
public final class OutboundTCPListener: Service, Sendable {
    /// Where the listener binds, and the service it carries connections to.
    public struct Mapping: Sendable, Hashable {
        public let host: String
        public let port: Int
        /// The service as a client names it (`db`, `db.ns`, `db.ns.svc.cluster.local`) and its port.
        public let service: String
        public let servicePort: Int

        public init(host: String, port: Int, service: String, servicePort: Int) {
            self.host = host
            self.port = port
            self.service = service.lowercased()
            self.servicePort = servicePort
        }

        /// Reads `LOCAL=SERVICE:PORT` (`127.0.0.1:15432=db:5432`).
        public init(parsing text: String) throws(ProxyError) {
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let (local, target) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : ("", "")
            guard let colon = local.lastIndex(of: ":"), let port = Int(local[local.index(after: colon)...]), (0...65535).contains(port),
                local.startIndex < colon
            else {
                throw ProxyError(.badConfiguration, "--outbound-tcp \(text): give LOCAL=SERVICE:PORT with LOCAL a host:port to listen on, such as 127.0.0.1:15432=db:5432")
            }
            var host = String(local[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let (service, servicePort) = OutboundTarget.split(target)
            guard !service.isEmpty, let servicePort, (1...65535).contains(servicePort) else {
                throw ProxyError(.badConfiguration, "--outbound-tcp \(text): '\(target)' is not SERVICE:PORT; name the service and its port, such as db:5432 or db.data.svc.cluster.local:5432")
            }
            self.init(host: host, port: port, service: service, servicePort: servicePort)
        }
    }

    private let mapping: Mapping
    private let context: ProxyContext
    private let balancer = RoundRobin()
    private let onBound: @Sendable (Int) -> Void

    /// Creates the listener; `onBound` receives the bound port.
    public init(mapping: Mapping, context: ProxyContext, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.mapping = mapping
        self.context = context
        self.onBound = onBound
    }

    /// Accepts connections until shutdown.
    public func run() async throws {
        let connection = OutboundTCP(context: context, mapping: mapping, balancer: balancer)
        try await Listening.serve(
            host: mapping.host, port: mapping.port, name: "outbound TCP", logger: context.logger, onBound: onBound,
            negotiate: { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The application's FIN ends only its direction, as TCP allows.
                    try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
                    let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel, configuration: TCPSplice.channelConfiguration)
                    return OutboundTCP.Accepted(channel: wrapped, at: Date(), remote: channel.remoteAddress, local: channel.localAddress)
                }
            },
            handle: { accepted in await connection.serve(accepted) }
        )
    }
}

/// One application connection on an outbound TCP listener: resolved, balanced, carried over mTLS.
struct OutboundTCP: Sendable {
    let context: ProxyContext
    let mapping: OutboundTCPListener.Mapping
    let balancer: RoundRobin

    struct Accepted: Sendable {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let at: Date
        let remote: SocketAddress?
        let local: SocketAddress?
    }

    func serve(_ accepted: Accepted) async {
        let start = accepted.at
        var record = RequestRecord(reporter: .source, startTime: start, protocolName: "TCP")
        record.sourceAddress = OutboundHTTP.describe(accepted.remote)
        record.downstreamLocalAddress = OutboundHTTP.describe(accepted.local)
        record.sourcePrincipal = context.identity.current?.identity.spiffeIDString
        record.sourceWorkload = context.workload.name
        record.sourceNamespace = context.workload.namespace
        record.source(context.telemetry)
        guard let config = context.config.current else {
            refuse(accepted, &record, flags: "NC", reason: "no config received from the control plane yet, so no service is known")
            return
        }
        let ports = config.registry.resolveAll(host: mapping.service, clientNamespace: context.workload.namespace)
        guard let service = ports.first(where: { $0.port == mapping.servicePort }) else {
            let known = ports.isEmpty ? "the registry has no such service" : "it serves port \(ports.map { String($0.port) }.joined(separator: ", "))"
            refuse(accepted, &record, flags: "NR", reason: "no service \(mapping.service):\(mapping.servicePort): \(known)")
            return
        }
        let fqdn = service.hostname(domain: config.registry.domain)
        record.destinationService = fqdn
        record.destinationServiceName = service.name
        record.destinationServiceNamespace = service.namespace
        record.upstreamCluster = service.clusterName(domain: config.registry.domain)
        guard let endpoint = balancer.pick(service.endpoints, service: fqdn) else {
            refuse(accepted, &record, flags: "UH", reason: "service \(fqdn) has no registered endpoints")
            return
        }
        record.upstreamHost = endpoint.address
        record.destinationWorkload = endpoint.workload
        record.destinationNamespace = service.namespace
        record.destination(endpoint.telemetry)
        guard let current = context.identity.current else {
            refuse(accepted, &record, flags: "UF", reason: "this proxy has no workload identity yet, so it cannot originate mTLS")
            return
        }
        let verifier = PeerVerifier(roots: current.identity.roots, revoked: config.revoked, expected: service.expectedIdentities, usage: .serverAuth)
        let tls = TLSOrigination(
            generation: current.generation, verifier: verifier, context: current.contexts.client, serverName: service.serverName(domain: config.registry.domain))
        let target = UpstreamTarget(host: endpoint.host, port: endpoint.port, tls: endpoint.plaintext ? nil : tls)
        context.metrics.recordTCPOpened(record)
        let upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let (channel, peer) = try await context.upstream.tunnel(to: target)
            upstream = channel
            record.destinationPrincipal = peer?.spiffeIDString
        } catch {
            context.logger.warning(
                "outbound TCP connection failed", metadata: ["proxy.service": "\(fqdn)", "proxy.endpoint": "\(endpoint.address)", "error": "\(error)"])
            record.responseFlags = "UF"
            try? await accepted.channel.executeThenClose { _, _ in }
            finish(&record, start: start)
            return
        }
        await TCPSplice.splice(accepted.channel, upstream, record: &record, context: context)
        finish(&record, start: start)
    }

    /// Closes a connection that cannot be carried, and logs why.
    private func refuse(_ accepted: Accepted, _ record: inout RequestRecord, flags: String, reason: String) {
        accepted.channel.channel.close(promise: nil)
        record.responseFlags = flags
        context.logger.warning("outbound TCP connection refused", metadata: ["proxy.service": "\(mapping.service):\(mapping.servicePort)", "reason": "\(reason)"])
        record.duration = Date().timeIntervalSince(record.startTime)
        context.accessLog.write(record)
    }

    private func finish(_ record: inout RequestRecord, start: Date) {
        record.duration = Date().timeIntervalSince(start)
        context.metrics.recordTCPClosed(record)
        context.accessLog.write(record)
    }
}
