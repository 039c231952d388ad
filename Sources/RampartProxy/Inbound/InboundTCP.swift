import Foundation
import NIOCore
import NIOPosix
import Synchronization
import RampartPolicy

/// Opaque TCP on the inbound side: authorized once on its L4 attributes, then spliced to the
/// application byte for byte.
struct InboundTCP: Sendable {
    let context: ProxyContext

    /// Serves one connection.
    func serve(_ downstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>, info: ConnectionInfo) async {
        let start = info.accepted
        var record = RequestRecord(reporter: .destination, startTime: start, protocolName: "TCP")
        record.sourceAddress = info.sourceAddress
        record.requestedServerName = info.sni
        record.downstreamLocalAddress = info.localAddress
        record.upstreamCluster = context.inboundCluster
        record.sourcePrincipal = info.peerID
        record.sourceNamespace = info.peerNamespace
        record.connectionSecurityPolicy = info.securityPolicy
        record.destinationPrincipal = context.identity.current?.identity.spiffeIDString
        record.destinationWorkload = context.workload.name
        record.destinationNamespace = context.workload.namespace
        record.destination(context.telemetry)
        if let service = context.destinationService {
            record.destinationService = service.fqdn
            record.destinationServiceName = service.name
            record.destinationServiceNamespace = context.workload.namespace
        }
        guard let config = context.config.current else {
            record.responseFlags = "NC"
            deny(downstream, record: &record, start: start, reason: "no config received yet")
            return
        }
        if let peerID = info.peerID, let source = config.registry.workloads[peerID] {
            record.sourceWorkload = source.workload
            record.sourceNamespace = source.namespace
            record.source(source.telemetry)
        }
        let ip = info.remoteIP
        let request = AuthzRequest(
            transport: .tcp,
            source: AuthzRequest.Source(principal: info.peerPrincipal, namespace: info.peerNamespace, ip: ip, remoteIP: ip, mtls: info.peer != nil),
            destination: AuthzRequest.Destination(namespace: context.workload.namespace, labels: context.workload.labels, port: context.appPort, ip: info.localIP),
            sni: info.sni
        )
        let decision = config.policies.evaluate(request)
        record.policy = decision.policy
        record.rule = decision.rule
        guard decision.decision == .allow else {
            record.responseDetails = RequestRecord.rbacDetails(decision.policy, rule: decision.rule)
            deny(downstream, record: &record, start: start, reason: decision.reason)
            return
        }
        context.metrics.recordTCPOpened(record)
        let upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connect(host: context.appHost, port: context.appPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel, configuration: TCPSplice.channelConfiguration)
                    }
                }
        } catch {
            record.responseFlags = "UF"
            try? await downstream.executeThenClose { _, _ in }
            finish(&record, start: start)
            return
        }
        record.upstreamHost = context.appAddress
        await TCPSplice.splice(downstream, upstream, record: &record, context: context)
        finish(&record, start: start)
    }

    private func deny(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, record: inout RequestRecord, start: Date, reason: String) {
        channel.channel.close(promise: nil)
        context.logger.info("inbound TCP connection denied", metadata: ["authz.reason": "\(reason)", "source.principal": "\(record.sourcePrincipal ?? "none")"])
        context.accessLog.write({ var copy = record; copy.duration = Date().timeIntervalSince(start); return copy }())
    }

    private func finish(_ record: inout RequestRecord, start: Date) {
        record.duration = Date().timeIntervalSince(start)
        context.metrics.recordTCPClosed(record)
        context.accessLog.write(record)
    }
}

/// Copies bytes both ways between two connections, as a TCP proxy does.
///
/// A side that half-closes (sends FIN but keeps reading) has its FIN passed on, and the other
/// direction keeps flowing until it ends too. A side that closes completely ends the whole
/// connection: the other side is closed as well, so no connection outlives its peer.
enum TCPSplice {
    /// Both connections' async wrappers: finishing a writer sends FIN rather than doing nothing.
    static let channelConfiguration = NIOAsyncChannel<ByteBuffer, ByteBuffer>.Configuration(isOutboundHalfClosureEnabled: true)

    /// The bytes copied each way so far, read while the connection is open.
    final class Tally: Sendable {
        private let counts = Mutex((sent: 0, received: 0, reportedSent: 0, reportedReceived: 0))

        func add(_ bytes: Int, toDownstream: Bool) {
            counts.withLock { counts in
                if toDownstream { counts.sent += bytes } else { counts.received += bytes }
            }
        }

        /// The bytes sent to the downstream and received from it since the last call.
        func takeUnreported() -> (sent: Int, received: Int) {
            counts.withLock { counts in
                defer { (counts.reportedSent, counts.reportedReceived) = (counts.sent, counts.received) }
                return (counts.sent - counts.reportedSent, counts.received - counts.reportedReceived)
            }
        }
    }

    /// Splices the connections and records the bytes each way in `record` and the metrics: a long
    /// connection's bytes reach the metrics while it is open, at each reporting interval, as
    /// Istio's stats filter reports them, and the rest when it closes.
    static func splice(
        _ downstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>, _ upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>, record: inout RequestRecord,
        context: ProxyContext
    ) async {
        let tally = Tally()
        let (metrics, reported) = (context.metrics, record)
        let reporting = downstream.channel.eventLoop.scheduleRepeatedTask(
            initialDelay: context.reportingInterval, delay: context.reportingInterval
        ) { _ in
            let (sent, received) = tally.takeUnreported()
            if sent > 0 || received > 0 { metrics.recordTCPBytes(reported, sent: sent, received: received) }
        }
        let (sent, received) = await splice(downstream, upstream, tally: tally)
        reporting.cancel()
        record.bytesReceived = received
        record.bytesSent = sent
        let (unsent, unreceived) = tally.takeUnreported()
        context.metrics.recordTCPBytes(record, sent: unsent, received: unreceived)
    }

    /// Returns the bytes sent to the downstream and received from it; `tally` counts them as they go.
    static func splice(
        _ downstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>, _ upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>, tally: Tally = Tally()
    ) async -> (sent: Int, received: Int) {
        let downChannel = downstream.channel
        let upChannel = upstream.channel
        let result: (Int, Int)? = try? await downstream.executeThenClose { downIn, downOut in
            try await upstream.executeThenClose { upIn, upOut in
                try await withThrowingTaskGroup(of: Direction.self) { group in
                    group.addTask {
                        Direction(bytes: await pump(downIn, into: upOut) { tally.add($0, toDownstream: false) }, toDownstream: false, sourceStillOpen: downChannel.isActive)
                    }
                    group.addTask {
                        Direction(bytes: await pump(upIn, into: downOut) { tally.add($0, toDownstream: true) }, toDownstream: true, sourceStillOpen: upChannel.isActive)
                    }
                    var sent = 0
                    var received = 0
                    for try await direction in group {
                        if direction.toDownstream { sent = direction.bytes } else { received = direction.bytes }
                        // A side that closed completely takes the other direction with it.
                        if !direction.sourceStillOpen { group.cancelAll() }
                    }
                    return (sent, received)
                }
            }
        }
        return result ?? (0, 0)
    }

    /// Copies one direction until its source ends, then half-closes the destination; returns the
    /// bytes copied. A failed read or write, or cancellation, ends the direction too.
    private static func pump(
        _ source: NIOAsyncChannelInboundStream<ByteBuffer>, into sink: NIOAsyncChannelOutboundWriter<ByteBuffer>, counted: (Int) -> Void
    ) async -> Int {
        var total = 0
        do {
            for try await chunk in source {
                total += chunk.readableBytes
                counted(chunk.readableBytes)
                try await sink.write(chunk)
            }
        } catch {
            // The direction is over either way; the caller closes what is left.
        }
        sink.finish()
        return total
    }

    /// How one direction ended.
    struct Direction: Sendable {
        let bytes: Int
        let toDownstream: Bool
        /// Whether the side it read from only half-closed and can still take bytes.
        let sourceStillOpen: Bool
    }
}
