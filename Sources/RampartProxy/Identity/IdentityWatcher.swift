import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The proxy's current identity and its TLS contexts.
public struct CurrentIdentity: Sendable {
    /// The identity.
    public let identity: ProxyIdentity
    /// Its TLS contexts.
    public let contexts: TLSContexts
    /// Increases with every rotation, so pools can tell old connections from new ones.
    public let generation: Int
}

/// Follows the node agent's output directory and swaps in each rotated identity.
///
/// New connections use the newest identity; connections already open keep the one they were
/// made with until they close, so a rotation drops nothing. A set of files that does not parse
/// (for example one read between the agent's renames) is ignored until the next look.
public final class IdentityWatcher: Service, Sendable {
    private let directory: String
    private let interval: Duration
    private let logger: Logger
    private let state = Mutex<CurrentIdentity?>(nil)

    /// Creates a watcher of `directory`, looking every `interval`.
    public init(directory: String, interval: Duration = .seconds(1), logger: Logger) {
        self.directory = directory
        self.interval = interval
        self.logger = logger
    }

    /// The current identity, once one has loaded.
    public var current: CurrentIdentity? { state.withLock { $0 } }

    /// Loads the files now; returns the identity or throws why it cannot.
    @discardableResult
    public func reload() throws(ProxyError) -> CurrentIdentity {
        let identity = try ProxyIdentity(directory: directory)
        if let current = self.current, current.identity.fingerprint == identity.fingerprint { return current }
        let contexts = try TLSContexts(identity: identity)
        let next = state.withLock { state -> CurrentIdentity in
            let next = CurrentIdentity(identity: identity, contexts: contexts, generation: (state?.generation ?? 0) + 1)
            state = next
            return next
        }
        logger.info(
            next.generation == 1 ? "workload identity loaded" : "workload identity rotated",
            metadata: [
                "identity.spiffe_id": "\(identity.spiffeID)", "identity.serial": "\(identity.serial)",
                "identity.not_after": "\(identity.notAfter)", "identity.generation": "\(next.generation)",
            ]
        )
        return next
    }

    /// Looks at the files every interval until shutdown.
    public func run() async throws {
        let interval = self.interval
        await cancelWhenGracefulShutdown { [self] in
            var lastError: String?
            while !Task.isCancelled {
                do {
                    try reload()
                    lastError = nil
                } catch {
                    let reason = (error as? ProxyError)?.reason ?? "\(error)"
                    if reason != lastError {
                        logger.warning("cannot load the workload identity; keeping the current one", metadata: ["error": "\(reason)"])
                        lastError = reason
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
