import Synchronization

/// A client that goes away before its answer: the stream reset, or the connection closed. What
/// was started for the request (its upstream exchange) registers here how to stop it, and is
/// stopped when the client goes, as Envoy resets the upstream request of a downstream that
/// disconnected. Once the answer is written (`finish`), the client's going stops nothing.
public final class RequestCancellation: Sendable {
    private struct State {
        var cancelled = false
        var finished = false
        var actions: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Whether the client went away before the answer.
    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Runs `action` when the client goes away; at once if it already has.
    func onCancel(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.cancelled { return true }
            if !state.finished { state.actions.append(action) }
            return false
        }
        if now { action() }
    }

    /// The client went away: runs what was registered, unless the answer was already written.
    func cancel() {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.cancelled && !state.finished else { return [] }
            state.cancelled = true
            defer { state.actions = [] }
            return state.actions
        }
        for action in actions { action() }
    }

    /// The answer is written: nothing is stopped any more.
    func finish() {
        state.withLock { state in
            state.finished = true
            state.actions = []
        }
    }
}
