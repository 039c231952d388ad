import Logging
import RampartPolicy
import RampartStore
import ServiceLifecycle

/// Follows the config store while the control plane runs, so that `rampart apply` in another
/// process takes effect without a restart.
///
/// It polls the store's global version (a single-row read; SQLite in WAL mode lets other
/// processes write meanwhile). When the version moves it reads every resource in one
/// transaction, compiles them into a `ConfigState` (invalid resources left out) and publishes
/// it on `updates`. If the store cannot be read, the last good state stays published.
public final class ConfigWatcher: Service, Sendable {
    /// The latest config state and every later one, for whoever serves config to proxies.
    public let updates = WatchedValue<ConfigState>()

    private let store: any ConfigStore
    private let interval: Duration
    private let options: SnapshotOptions
    private let logger: Logger
    private let metrics = ConfigMetrics()

    /// Creates a watcher that polls `store` every `interval` (a single-row read), often enough that
    /// `rampart apply` reaches connected proxies well within a second.
    public init(store: any ConfigStore, interval: Duration = .milliseconds(100), options: SnapshotOptions = SnapshotOptions(), logger: Logger = Logger(label: "rampart.config")) {
        self.store = store
        self.interval = interval
        self.options = options
        self.logger = logger
    }

    /// Polls until graceful shutdown, then ends every watcher's stream.
    public func run() async throws {
        let interval = self.interval
        await cancelWhenGracefulShutdown { [self] in
            var known: Int64?
            while !Task.isCancelled {
                known = await poll(after: known)
                try? await Task.sleep(for: interval)
            }
        }
        updates.finish()
    }

    /// One poll: publishes a new state when the store's version differs from `known`, and
    /// returns the version now published.
    public func poll(after known: Int64?) async -> Int64? {
        do {
            let version = try await store.configVersion()
            if version == known { return known }
            let state = ConfigState.compile(try await store.configSnapshot(), options: options)
            publish(state, previous: known)
            return state.version
        } catch {
            logger.warning(
                "cannot read the config store; still serving the last good config",
                metadata: ["config.version": "\(known.map { String($0) } ?? "none")", "error": "\(error)"]
            )
            return known
        }
    }

    private func publish(_ state: ConfigState, previous: Int64?) {
        metrics.record(state)
        updates.publish(state)
        logger.info(
            previous == nil ? "config loaded" : "config changed",
            metadata: [
                "config.version": "\(state.version)",
                "config.previous_version": "\(previous.map { String($0) } ?? "none")",
                "config.resources": "\(state.compiledCount)",
                "config.excluded": "\(state.excluded.count)",
            ]
        )
        for (key, reason) in state.excluded.sorted(by: { $0.key < $1.key }) {
            logger.warning("config resource left out", metadata: ["config.resource": "\(key)", "config.reason": "\(reason)"])
        }
    }
}
