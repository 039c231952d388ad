import Foundation
import Synchronization

/// What the agent currently holds, published to the Workload API's streams and to status.
public struct IdentitySnapshot: Sendable {
    /// The current X.509-SVID.
    public let svid: X509SVID
    /// The trust bundle.
    public let bundle: TrustBundle
    /// Increases with every change.
    public let version: UInt64
}

/// The agent's status, as `rampart agent status` shows it.
public struct AgentStatusReport: Sendable, Equatable {
    /// What the agent is doing.
    public enum Phase: String, Sendable {
        case bootstrapping
        case serving
        case renewing
        case backingOff = "backing_off"
        case expired
    }

    public var phase: Phase = .bootstrapping
    public var spiffeID: String?
    public var serial: String?
    public var notBefore: Date?
    public var notAfter: Date?
    public var nextRenewal: Date?
    public var lastError: String?
    public var lastErrorAt: Date?
    public var renewals: UInt64 = 0
    public var failures: UInt64 = 0
    public var bundleRoots: Int = 0
}

/// The agent's current identity and status, shared between the rotation loop and the
/// Workload API. Watchers get the current snapshot at once, then every change.
public final class IdentityState: Sendable {
    private struct Inner {
        var snapshot: IdentitySnapshot?
        var status = AgentStatusReport()
        var watchers: [UInt64: AsyncStream<IdentitySnapshot>.Continuation] = [:]
        var nextWatcher: UInt64 = 0
        var closed = false
    }

    private let inner = Mutex(Inner())

    public init() {}

    /// The current snapshot, if the agent holds an identity.
    public var current: IdentitySnapshot? { inner.withLock { $0.snapshot } }

    /// The current status.
    public var status: AgentStatusReport { inner.withLock { $0.status } }

    /// How many streams watch for changes now.
    var watcherCount: Int { inner.withLock { $0.watchers.count } }

    /// Installs a new SVID and bundle, and tells every watcher.
    func install(svid: X509SVID, bundle: TrustBundle, renewed: Bool) {
        let watchers: [AsyncStream<IdentitySnapshot>.Continuation]
        let snapshot: IdentitySnapshot
        (snapshot, watchers) = inner.withLock { state in
            let next = IdentitySnapshot(svid: svid, bundle: bundle, version: (state.snapshot?.version ?? 0) + 1)
            state.snapshot = next
            state.status.phase = .serving
            state.status.spiffeID = svid.spiffeID.string
            state.status.serial = svid.serialHex
            state.status.notBefore = svid.notBefore
            state.status.notAfter = svid.notAfter
            state.status.bundleRoots = bundle.roots.count
            if renewed {
                state.status.renewals += 1
                state.status.lastError = nil
                state.status.lastErrorAt = nil
            }
            return (next, Array(state.watchers.values))
        }
        for watcher in watchers { watcher.yield(snapshot) }
    }

    /// Records the phase and the next renewal time.
    func update(_ change: (inout AgentStatusReport) -> Void) {
        inner.withLock { change(&$0.status) }
    }

    /// A stream of snapshots: the current one (if any) at once, then every change.
    public func updates() -> AsyncStream<IdentitySnapshot> {
        let (stream, continuation) = AsyncStream<IdentitySnapshot>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: UInt64? = inner.withLock { state in
            if state.closed { return nil }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = continuation
            if let snapshot = state.snapshot { continuation.yield(snapshot) }
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.inner.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every watcher's stream, now and for later watchers (on shutdown).
    public func finishWatchers() {
        let watchers = inner.withLock { state in
            state.closed = true
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.finish() }
    }
}
