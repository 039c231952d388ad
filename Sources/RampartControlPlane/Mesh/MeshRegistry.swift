import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The proxies connected to this control plane, one record per config stream, and the services
/// their registrations add up to.
///
/// A registration is replaced when the same workload (namespace and name) registers again. When
/// a stream closes its record stays, marked disconnected, for the grace period, so a proxy that
/// reconnects does not make its endpoints flap; then it is removed. Every change is a function of
/// the `now` passed in, so expiry is tested without waiting. The services are published on
/// ``services`` whenever they change, so config streams resend.
public final class MeshRegistry: Sendable {
    /// Names one config stream.
    public struct StreamID: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// A number unique within this registry.
        public let value: UInt64

        public static func < (lhs: StreamID, rhs: StreamID) -> Bool { lhs.value < rhs.value }
        public var description: String { "stream-\(value)" }
    }

    private struct State {
        var records: [StreamID: ProxyRecord] = [:]
        var nextID: UInt64 = 1
        /// The services last published.
        var services: [MeshService] = []
    }

    /// How long a disconnected proxy's registration is kept.
    public let grace: Duration
    /// The mesh's services, published each time they change.
    public let services = WatchedValue<[MeshService]>()

    private let state = Mutex(State())
    private let sweepInterval: Duration
    private let logger: Logger

    /// Creates an empty registry that keeps disconnected proxies for `grace`, and (when run as a
    /// service) removes expired ones every `sweepInterval`.
    public init(grace: Duration = .seconds(15), sweepInterval: Duration = .milliseconds(500), logger: Logger = Logger(label: "rampart.mesh")) {
        self.grace = grace
        self.sweepInterval = sweepInterval
        self.logger = logger
        services.publish([])
    }

    /// Records a newly registered stream, replacing any record of the same workload, and returns its id.
    @discardableResult
    public func register(_ registration: ProxyRegistration, spiffeID: String, certificateNotAfter: Date, peerHost: String?, now: Date) -> StreamID {
        let (id, replaced) = change(now: now, changesServices: true) { state -> (StreamID, [ProxyRecord]) in
            let id = StreamID(value: state.nextID)
            state.nextID += 1
            let replaced = state.records.values.filter {
                $0.registration.namespace == registration.namespace && $0.registration.workload == registration.workload
            }
            for old in replaced { state.records.removeValue(forKey: old.stream) }
            state.records[id] = ProxyRecord(
                stream: id, registration: registration, spiffeID: spiffeID, certificateNotAfter: certificateNotAfter, peerHost: peerHost, connectedAt: now
            )
            return (id, replaced)
        }.result
        for old in replaced {
            logger.info(
                "proxy registration replaced",
                metadata: ["mesh.proxy": "\(registration.displayName)", "mesh.stream": "\(id)", "mesh.replaced_stream": "\(old.stream)"]
            )
        }
        return id
    }

    /// Marks a stream closed at `now`; its record stays for the grace period.
    public func disconnect(_ id: StreamID, now: Date) {
        change(now: now, changesServices: false) { state in
            state.records[id]?.disconnectedAt = now
        }
    }

    /// Removes the records whose grace period ended at or before `now`; returns them.
    @discardableResult
    public func expire(now: Date) -> [ProxyRecord] {
        change(now: now, changesServices: false) { _ in () }.expired
    }

    /// Notes that a snapshot with `nonce` and `version` was sent on a stream.
    public func recordSent(_ id: StreamID, nonce: String, configVersion: Int64) {
        state.withLock { $0.records[id]?.sent(nonce: nonce, version: configVersion) }
    }

    /// Applies a proxy's ACK (accepted) or NACK; returns the config version of the snapshot it
    /// answers, or nil when the stream is unknown or the nonce was not recently sent on it.
    @discardableResult
    public func recordAck(_ id: StreamID, nonce: String, accepted: Bool, detail: String) -> Int64? {
        state.withLock { $0.records[id]?.answered(nonce: nonce, accepted: accepted, detail: detail) }
    }

    /// Every record, connected or in its grace period, ordered by namespace then workload.
    public func proxies() -> [ProxyRecord] {
        state.withLock { Array($0.records.values) }.sorted {
            ($0.registration.namespace, $0.registration.workload, $0.stream.value) < ($1.registration.namespace, $1.registration.workload, $1.stream.value)
        }
    }

    /// The record of one stream, if it is still kept.
    public func proxy(_ id: StreamID) -> ProxyRecord? {
        state.withLock { $0.records[id] }
    }

    /// Runs `body` on the state, then drops records whose grace ended by `now`, and publishes
    /// the services when they changed. `changesServices` says whether `body` may have changed them.
    @discardableResult
    private func change<Result>(now: Date, changesServices: Bool, _ body: (inout State) -> Result) -> (result: Result, expired: [ProxyRecord]) {
        let grace = TimeInterval(grace.components.seconds) + TimeInterval(grace.components.attoseconds) / 1e18
        // Published under the lock, so two changes can never reach watchers out of order.
        let (result, expired) = state.withLock { state -> (Result, [ProxyRecord]) in
            let result = body(&state)
            let expired = state.records.values.filter { record in
                guard let closed = record.disconnectedAt else { return false }
                return closed.addingTimeInterval(grace) <= now
            }
            for record in expired { state.records.removeValue(forKey: record.stream) }
            if changesServices || !expired.isEmpty {
                let derived = MeshService.derive(from: Array(state.records.values))
                if derived != state.services {
                    state.services = derived
                    services.publish(derived)
                }
            }
            return (result, expired)
        }
        for record in expired {
            logger.info(
                "proxy registration expired",
                metadata: ["mesh.proxy": "\(record.registration.displayName)", "mesh.stream": "\(record.stream)", "mesh.spiffe_id": "\(record.spiffeID)"]
            )
        }
        return (result, expired)
    }
}

extension MeshRegistry: Service {
    /// Removes expired registrations every sweep interval until graceful shutdown, then ends
    /// every watcher of ``services``.
    public func run() async throws {
        let interval = sweepInterval
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                expire(now: Date())
                try? await Task.sleep(for: interval)
            }
        }
        services.finish()
    }
}
