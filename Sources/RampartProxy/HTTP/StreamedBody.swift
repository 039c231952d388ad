import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import Synchronization

/// The rest of an upstream's response, passed on to the client as the upstream sends it, as Envoy
/// passes a response on: a download larger than `--max-body-bytes`, or a body that trickles (a
/// server-sent event stream, a long poll), reaches the client as it comes instead of being held.
///
/// The upstream exchange's handler (`UpstreamExchangeHandler`) answers with the response's head
/// and what of its body came in the same read, and this object for the rest: the handler delivers
/// the parts that follow, and the connection's task that serves the client takes them
/// (`HTTPServing.deliver`). Flow control holds: past ``maxQueuedBytes`` waiting, the handler stops
/// reading the upstream until the client has taken them, so a slow reader slows the upstream
/// through TCP or HTTP/2's window rather than making the proxy hold the body.
///
/// Three parties learn how it ended:
/// - the upstream client (`whenSettled`), to pool its connection once the upstream's response has
///   ended, or close it when it failed or the client went away;
/// - the access log and metrics (`whenFinished`, see `ProxyContext.finish`), once the last byte
///   has been written to the client or the exchange was cut, with the bytes sent;
/// - the client's task, through `next`.
final class StreamedBody: Sendable {
    /// A part of the rest of the response.
    enum Part: Sendable {
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    /// How the exchange ended, for its record.
    struct Outcome: Sendable {
        /// Body bytes written to the client after the head, including those that came with it.
        var bytesSent: Int
        /// Why the response stopped before its end, as Envoy's flag and details say it, when the
        /// upstream failed.
        var cut: (flags: String, details: String)?
        /// The client went away (closed, reset, or stopped reading) before the response ended.
        var clientGone: Bool
        /// The `grpc-status` of the response's trailers, when it ended with some.
        var grpcStatus: String? = nil
        /// For a bridged gRPC-Web call, the application's messages passed on.
        var responseMessages: Int? = nil
    }

    /// Bytes waiting for the client before reads of the upstream stop.
    static let maxQueuedBytes = 256 * 1024

    private struct State {
        var queue = PartQueue()
        var waiting: UnsafeContinuation<[Part]?, any Error>?
        /// Whether the upstream's response ended cleanly, once it is over either way.
        var settled = Once<Bool>()
        /// How the client's side ended.
        var finished = Once<Outcome>()
    }

    /// A value set once, and what runs when it is set (at once for what asks after that).
    private struct Once<Value: Sendable> {
        private(set) var value: Value?
        private var waiting: (@Sendable (Value) -> Void)?

        /// Sets the value, unless it is set; returns what is to run with it, outside the lock.
        mutating func set(_ value: Value) -> (@Sendable (Value) -> Void)? {
            guard self.value == nil else { return nil }
            self.value = value
            defer { waiting = nil }
            return waiting
        }

        /// Keeps `body` for the value to come; returns the value when it is already set.
        mutating func when(_ body: @escaping @Sendable (Value) -> Void) -> Value? {
            if value == nil { waiting = body }
            return value
        }
    }

    /// The upstream connection or HTTP/2 stream the body comes on.
    let upstream: any Channel
    private let state = Mutex(State())

    init(upstream: any Channel) {
        self.upstream = upstream
    }

    // MARK: The upstream's side (its channel's event loop)

    /// Hands on a part the upstream sent. An end also settles the exchange: the upstream
    /// connection is free for the next request before the client has read the end.
    func deliver(_ part: Part) {
        let isEnd: Bool
        if case .end = part { isEnd = true } else { isEnd = false }
        if isEnd { settle(true) }
        let resumed = state.withLock { state -> UnsafeContinuation<[Part]?, any Error>? in
            guard state.queue.accepts else { return nil }
            if let waiting = state.waiting {
                if isEnd { state.queue.ended = true }
                state.waiting = nil
                return waiting
            }
            state.queue.append(part)
            return nil
        }
        resumed?.resume(returning: [part])
    }

    /// Whether the upstream may be read now: not while ``maxQueuedBytes`` wait for the client (the
    /// read is then held until the client takes them).
    func admitsRead() -> Bool {
        state.withLock { $0.queue.admitsRead(limit: Self.maxQueuedBytes) }
    }

    /// Whether a read of the upstream is held back for the client: the upstream is not idle then,
    /// the client is slow.
    var isHoldingReads: Bool { state.withLock { $0.queue.readHeld } }

    /// The upstream failed before the end: the client's task gets `error` after what came before.
    func fail(_ error: any Error) {
        settle(false)
        let resumed = state.withLock { state -> UnsafeContinuation<[Part]?, any Error>? in
            guard state.queue.fail(error), let waiting = state.waiting else { return nil }
            state.waiting = nil
            return waiting
        }
        resumed?.resume(throwing: error)
    }

    /// Runs `body` once the upstream's response is over: with true when it ended as HTTP ends a
    /// response, false when it failed or the client went away first. At once if it is over.
    func whenSettled(_ body: @escaping @Sendable (Bool) -> Void) {
        if let settled = state.withLock({ $0.settled.when(body) }) { body(settled) }
    }

    private func settle(_ clean: Bool) {
        state.withLock { $0.settled.set(clean) }?(clean)
    }

    // MARK: The client's side

    /// The parts delivered since the last call, nil once the end has been taken; throws what
    /// failed the upstream once the parts before the failure have been taken.
    func next() async throws -> [Part]? {
        try await withUnsafeThrowingContinuation { continuation in
            let (parts, resumesReading): ([Part]?, Bool) = state.withLock { state in
                if let taken = state.queue.takeAll() { return taken }
                if state.queue.ended {
                    if let failure = state.queue.failure {
                        continuation.resume(throwing: failure)
                    } else {
                        continuation.resume(returning: nil)
                    }
                    return (nil, false)
                }
                state.waiting = continuation
                return (nil, false)
            }
            if resumesReading { upstream.read() }
            if let parts { continuation.resume(returning: parts) }
        }
    }

    /// The client is gone: the rest of the response is not wanted, and an upstream still sending
    /// it is closed (which resets an HTTP/2 stream), as Envoy resets the upstream request of a
    /// downstream that disconnected.
    func abandon() {
        let (open, waiting) = state.withLock { state -> (Bool, UnsafeContinuation<[Part]?, any Error>?) in
            _ = state.queue.drop()
            let waiting = state.waiting
            state.waiting = nil
            return (state.settled.value == nil, waiting)
        }
        waiting?.resume(throwing: ClientGone())
        if open {
            settle(false)
            upstream.close(promise: nil)
        }
    }

    /// Records how the client's side ended, once.
    func finished(_ outcome: Outcome) {
        state.withLock { $0.finished.set(outcome) }?(outcome)
    }

    /// Runs `body` with the exchange's outcome once the client's side has ended; at once if it has.
    func whenFinished(_ body: @escaping @Sendable (Outcome) -> Void) {
        if let outcome = state.withLock({ $0.finished.when(body) }) { body(outcome) }
    }

    /// What `next` throws to a task waiting on it when the client's side abandons the body.
    struct ClientGone: Error {}

    /// How a relayed gRPC call cut after its head is logged, as Envoy logs it: its upstream is an
    /// HTTP/2 stream, which ends early by a reset.
    static func cut(by error: any Error) -> (flags: String, details: String) {
        if error is UpstreamTimeout { return ("UT", "upstream_response_timeout") }
        if error is UpstreamIdleTimeout { return ("SI", "stream_idle_timeout") }
        return ("UR", "upstream_reset_after_response_started{remote_reset}")
    }

    /// How a streamed body cut short by its upstream is logged, as Envoy logs a reset after the
    /// response started: the timeouts as for `cut`, an HTTP/2 stream reset `UR`, and a connection
    /// closed or broken under the body by its reset reason (`UC`, `UPE`).
    static func lateCut(by error: any Error) -> (flags: String, details: String) {
        if error is UpstreamTimeout || error is UpstreamIdleTimeout || error is NIOHTTP2Errors.StreamClosed { return cut(by: error) }
        let reset = UpstreamFailure.Reset(error)
        return (reset.flag, "upstream_reset_after_response_started{\(reset.rawValue)}")
    }
}

/// The parts of a body waiting between the handler that reads them from one connection and the
/// side that passes them on, with the read gate kept over them (see `StreamedBody` and
/// `StreamedUpload`). Kept under its owner's lock.
struct PartQueue {
    private(set) var parts: [StreamedBody.Part] = []
    /// Body bytes waiting.
    private(set) var bytes = 0
    /// The end, or the failure, has been delivered.
    var ended = false
    private(set) var failure: (any Error)?
    /// A read was held back while the queue was full.
    private(set) var readHeld = false
    /// The side that takes the parts wants no more: what comes is dropped, and reads go on.
    private(set) var abandoned = false

    /// Whether a part delivered now is kept.
    var accepts: Bool { !ended && !abandoned }

    /// Queues a part; an end ends the queue.
    mutating func append(_ part: StreamedBody.Part) {
        switch part {
        case .body(let chunk): bytes += chunk.readableBytes
        case .end: ended = true
        }
        parts.append(part)
    }

    /// Ends the queue with `error`, unless it has ended; returns whether the taker, if it waits
    /// with nothing queued, is to learn of it now.
    mutating func fail(_ error: any Error) -> Bool {
        guard !ended else { return false }
        ended = true
        failure = error
        return parts.isEmpty
    }

    /// Whether a read may be passed on: not while `limit` bytes wait (the read is then held until
    /// they are taken), unless the parts are no longer wanted.
    mutating func admitsRead(limit: Int) -> Bool {
        guard bytes >= limit, !abandoned else { return true }
        readHeld = true
        return false
    }

    /// Everything queued, and whether a held read is to be passed on now; nil when nothing waits.
    mutating func takeAll() -> (parts: [StreamedBody.Part], resumesReading: Bool)? {
        guard !parts.isEmpty else { return nil }
        let taken = parts
        parts.removeAll(keepingCapacity: true)
        bytes = 0
        defer { readHeld = false }
        return (taken, readHeld)
    }

    /// Puts `taken`, parts taken earlier, back ahead of what waits (an upload sent again).
    mutating func putBack(_ taken: [StreamedBody.Part]) {
        for case .body(let chunk) in taken { bytes += chunk.readableBytes }
        parts.insert(contentsOf: taken, at: 0)
    }

    /// Drops what waits and anything that comes later; returns whether a read was held.
    mutating func drop() -> Bool {
        abandoned = true
        parts.removeAll()
        bytes = 0
        defer { readHeld = false }
        return readHeld
    }
}

/// Writes of response or request parts into a channel from async code, in one flush each.
enum PartWrites {
    /// Writes `parts` in one flush and waits until the last has been written.
    static func write<Part: Sendable>(_ parts: [Part], to channel: any Channel) async throws {
        let written = channel.eventLoop.makePromise(of: Void.self)
        send(parts, to: channel, promise: written)
        try await written.futureResult.get()
    }

    /// Writes `parts` in one flush, in one task on the channel's event loop (one hop, not one per
    /// part, from another thread).
    static func send<Part: Sendable>(_ parts: [Part], to channel: any Channel, promise: EventLoopPromise<Void>?) {
        guard let last = parts.last else {
            promise?.succeed()
            return
        }
        channel.eventLoop.runOnLoop {
            for part in parts.dropLast() { channel.write(part, promise: nil) }
            channel.writeAndFlush(last, promise: promise)
        }
    }

    /// Writes `parts` in one flush; waits until they have gone only when the channel takes no
    /// more for now (HTTP/2 flow control, or a full socket), which is how a slow reader slows
    /// the sender without every part costing a wait.
    static func pass<Part: Sendable>(_ parts: [Part], to channel: any Channel) async throws {
        if channel.isWritable {
            send(parts, to: channel, promise: nil)
        } else {
            try await write(parts, to: channel)
        }
    }
}
