import NIOCore
import Synchronization

/// A client that goes away before its answer: the stream reset, or the connection closed. The
/// upstream connection (or HTTP/2 stream) that carries the request registers here, and is closed
/// when the client goes, as Envoy resets the upstream request of a downstream that disconnected.
/// Once the answer is written (`finish`), the client's going closes nothing.
///
/// An HTTP/1.1 connection answers one request at a time and keeps one of these for all of them
/// (`begin` starts the next request), so that a request costs no allocation for it.
public final class RequestCancellation: Sendable {
    private struct State {
        var cancelled = false
        var finished = false
        var upstream: (any Channel)?
    }

    private let state = Mutex(State())

    public init() {}

    /// Whether the client went away before the answer.
    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Starts the connection's next request.
    func begin() {
        state.withLock { $0 = State() }
    }

    /// Closes `upstream` when the client goes away; at once if it already has.
    func closing(_ upstream: any Channel) {
        let now = state.withLock { state -> Bool in
            if state.cancelled { return true }
            if !state.finished { state.upstream = upstream }
            return false
        }
        if now { upstream.close(promise: nil) }
    }

    /// The exchange on `upstream` is over and the connection goes back to its pool: the client's
    /// going must not close it under another request.
    func release(_ upstream: any Channel) {
        state.withLock { state in
            if state.upstream === upstream { state.upstream = nil }
        }
    }

    /// The client went away: closes the registered upstream, unless the answer was already written.
    func cancel() {
        let upstream = state.withLock { state -> (any Channel)? in
            guard !state.cancelled && !state.finished else { return nil }
            state.cancelled = true
            defer { state.upstream = nil }
            return state.upstream
        }
        upstream?.close(promise: nil)
    }

    /// The answer is written: nothing is closed any more.
    func finish() {
        state.withLock { state in
            state.finished = true
            state.upstream = nil
        }
    }
}
