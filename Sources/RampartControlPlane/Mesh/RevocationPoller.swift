import Foundation
import Logging
import RampartStore
import ServiceLifecycle

/// Follows the store's unexpired revoked certificates, so that `rampart cert revoke` in another
/// process reaches every connected proxy within a poll interval.
///
/// Each poll is one read of a partial index that holds only revoked rows. A new set is published
/// on ``updates`` when it differs from the last one: a revocation, or an expiry that lets a serial
/// be forgotten. If the store cannot be read, the last set stays published.
public final class RevocationPoller: Service, Sendable {
    /// The unexpired revoked certificates, ordered by serial, and every later set.
    public let updates = WatchedValue<[RevokedCertificate]>()

    private let store: any IssuedCertificateStore
    private let interval: Duration
    private let clock: @Sendable () -> Date
    private let logger: Logger

    /// Creates a poller that reads `store` every `interval`.
    public init(
        store: any IssuedCertificateStore, interval: Duration = .milliseconds(100), clock: @escaping @Sendable () -> Date = Date.init,
        logger: Logger = Logger(label: "rampart.revocation")
    ) {
        self.store = store
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    /// Polls until graceful shutdown, then ends every watcher's stream.
    public func run() async throws {
        let interval = self.interval
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                await poll()
                try? await Task.sleep(for: interval)
            }
        }
        updates.finish()
    }

    /// One poll: publishes the set when it differs from the one published; returns whether it did.
    @discardableResult
    public func poll() async -> Bool {
        do {
            let revoked = try await store.revokedCertificates(unexpiredAt: clock())
            let previous = updates.current
            guard revoked != previous else { return false }
            updates.publish(revoked)
            if let previous {
                let added = Set(revoked.map(\.serial)).subtracting(previous.map(\.serial))
                logger.info(
                    "revoked certificates changed",
                    metadata: ["revocation.count": "\(revoked.count)", "revocation.added": "\(added.sorted().joined(separator: ","))"]
                )
            }
            return true
        } catch {
            logger.warning("cannot read revoked certificates; proxies keep the last set", metadata: ["error": "\(error)"])
            return false
        }
    }
}
