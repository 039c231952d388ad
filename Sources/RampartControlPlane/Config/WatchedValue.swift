import Synchronization

/// A value that changes over time, fanned out to any number of watchers.
///
/// Each watcher first receives the current value (once there is one), then every later value.
/// A slow watcher sees only the newest value it has not yet read, never a backlog: config is a
/// state, not a log of events.
public final class WatchedValue<Value: Sendable>: Sendable {
    private struct State {
        var current: Value?
        var watchers: [Int: AsyncStream<Value>.Continuation] = [:]
        var nextID = 0
        var finished = false
    }

    private let state = Mutex(State())

    /// Creates a value with nothing published yet.
    public init() {}

    /// The latest published value, if any.
    public var current: Value? { state.withLock { $0.current } }

    /// Publishes a new value to every watcher.
    public func publish(_ value: Value) {
        // Yielded under the lock, so that two publishes (or a publish and a new watcher's first
        // value) can never reach a watcher out of order. Yielding never calls back into this type.
        state.withLock { state in
            guard !state.finished else { return }
            state.current = value
            for watcher in state.watchers.values { watcher.yield(value) }
        }
    }

    /// A stream of the current value and every later one; it ends when `finish()` is called.
    public func updates() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream.makeStream(of: Value.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        let finished = state.withLock { state -> Bool in
            if let current = state.current { continuation.yield(current) }
            if !state.finished { state.watchers[id] = continuation }
            return state.finished
        }
        if finished { continuation.finish() }
        return stream
    }

    /// The number of streams still watching.
    public var watcherCount: Int { state.withLock { $0.watchers.count } }

    /// Ends every stream; later publishes are ignored.
    public func finish() {
        let watchers = state.withLock { state -> [AsyncStream<Value>.Continuation] in
            state.finished = true
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.finish() }
    }
}
