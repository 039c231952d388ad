import NIOCore
import NIOHTTP1
import Synchronization

/// The rest of a request body passed on to the upstream as the client sends it, as Envoy passes a
/// request on: a request whose end has not come when the read that brought its head is over goes
/// on then (see `RequestAssembly.handOnUnfinished`), and its body follows as it arrives.
///
/// The server connection's assembler (`HTTPRequestAssembler`) hands the request on with the body it
/// held and this object, then delivers the parts that follow into it; the upstream exchange's
/// handler (`UpstreamExchangeHandler`) takes them as the upstream connection (or HTTP/2 stream)
/// takes writes. Flow control holds: past ``maxQueuedBytes`` waiting, the client's connection or
/// stream is not read until the upstream has taken them, so a slow application slows the client
/// through TCP or HTTP/2's window rather than making the proxy hold the body.
///
/// Each side runs on its own channel's event loop; the state between them is under a lock, and a
/// side that waits for the other is woken on its own loop.
final class StreamedUpload: Sendable {
    typealias Part = StreamedBody.Part

    /// Bytes waiting for the upstream before reads of the client stop.
    static let maxQueuedBytes = StreamedBody.maxQueuedBytes

    /// What the upstream's side has taken is kept, up to this many bytes, so that a request whose
    /// exchange failed unprocessed can be sent again whole (Envoy's default buffer limit, 1 MiB,
    /// which bounds what it keeps of a request for retries). Past it, or past what the proxy's
    /// `BodyBudget` has room for, the request is sent once.
    static let maxReplayBytes = 1 << 20

    /// What the upstream's side gets when it asks for parts.
    enum Taken {
        /// What the client sent since the last call (its end included, once it came).
        case parts([Part])
        /// Nothing yet: the `wake` given runs, on the loop given, when something comes.
        case waiting
        /// The client went away, or stopped sending, before its request's end.
        case failed(any Error)
    }

    private struct State {
        var queue = PartQueue()
        /// Body bytes of the request, those held before it was handed on included.
        var received: Int
        /// Whether the client's request ended (its end delivered).
        var clientEnded = false
        /// Whether the upstream's side has taken anything, and whether it took the end.
        var touched = false
        var takenWhole = false
        /// A copy of the body the upstream's side has taken, kept for a second attempt while it
        /// stays within ``maxReplayBytes``; nil once it went past (the request can then not be
        /// sent again). A copy, not the parts themselves: a part is a slice of the buffer its
        /// connection reads into (TLS's plaintext buffer), which would otherwise be copied whole
        /// at the connection's next read for as long as the part is kept.
        var replay: ByteBuffer? = ByteBuffer()
        /// The end, once the upstream's side has taken it.
        var replayEnd: Part?

        /// Adds `parts`, just taken, to what is kept for a second attempt, held against `budget`,
        /// or keeps nothing more once the body taken goes past ``maxReplayBytes`` or the budget.
        mutating func keepForReplay(_ parts: [Part], budget: BodyBudget) {
            for part in parts where replay != nil {
                switch part {
                case .body(var chunk):
                    if replay!.readableBytes + chunk.readableBytes <= StreamedUpload.maxReplayBytes,
                        budget.reserve(chunk.readableBytes)
                    {
                        replay!.writeBuffer(&chunk)
                    } else {
                        budget.release(replay!.readableBytes)
                        replay = nil
                        replayEnd = nil
                    }
                case .end:
                    replayEnd = part
                }
            }
        }
        /// What runs, on its loop, when parts come for the upstream's side waiting for them.
        var wake: (loop: any EventLoop, body: @Sendable () -> Void)?
        /// For a gRPC-Web text call: the decoder of its base64 body, which the upstream's side
        /// applies to what it takes (see `GRPCWeb`).
        var textDecoder: GRPCWeb.TextDecoder?
        /// The body was not base64: the upstream's side gets this, and the rest is dropped.
        var decodeFailure: GRPCWeb.BadText?
        /// For a bridged gRPC-Web call: its messages, counted as they come (as Envoy's gRPC
        /// statistics count a call's frames as they pass, whether the upstream takes them or not),
        /// and for a text call the decoder they are counted through.
        var messages: GRPCMessageCounter?
        var countingDecoder: GRPCWeb.TextDecoder?

        /// `parts` as the upstream is to get them: decoded, for a gRPC-Web text call.
        mutating func decoded(_ parts: [Part]) throws(GRPCWeb.BadText) -> [Part] {
            guard textDecoder != nil else { return parts }
            var out: [Part] = []
            for part in parts {
                switch part {
                case .body(let chunk):
                    let bytes = try textDecoder!.decode(chunk)
                    if bytes.readableBytes > 0 { out.append(.body(bytes)) }
                case .end:
                    try textDecoder!.finish()
                    out.append(part)
                }
            }
            return out
        }

        /// Counts the messages in a chunk that came, when they are counted. A text chunk that is
        /// not base64 counts nothing (the upstream's side refuses the call).
        mutating func count(_ chunk: ByteBuffer) {
            guard messages != nil else { return }
            if countingDecoder != nil {
                guard let bytes = try? countingDecoder!.decode(chunk) else {
                    messages = nil
                    return
                }
                messages!.feed(bytes)
            } else {
                messages!.feed(chunk)
            }
        }
    }

    /// The client's connection or HTTP/2 stream, read again once the upstream has taken what waits.
    private let client: (any Channel)?
    private let state: Mutex<State>

    /// An upload on `client`, of whose body `held` bytes came before it was handed on.
    /// What is kept for a second attempt is held against.
    private let budget: BodyBudget

    /// An upload on `client`, of whose body `held` bytes came before it was handed on; what it
    /// keeps for a second attempt is held against `budget`.
    init(client: (any Channel)?, held: Int, budget: BodyBudget = .shared) {
        self.client = client
        self.budget = budget
        state = Mutex(State(received: held))
    }

    deinit {
        state.withLock { state in
            if let replay = state.replay { budget.release(replay.readableBytes) }
        }
    }

    // MARK: The client's side (its channel's event loop)

    /// Hands on a part the client sent.
    func deliver(_ part: Part) {
        let wake = state.withLock { state -> (loop: any EventLoop, body: @Sendable () -> Void)? in
            if case .body(let chunk) = part { state.received += chunk.readableBytes }
            if case .end = part { state.clientEnded = true }
            guard state.queue.accepts else { return nil }
            if case .body(let chunk) = part { state.count(chunk) }
            state.queue.append(part)
            defer { state.wake = nil }
            return state.wake
        }
        if let wake { wake.loop.execute(wake.body) }
    }

    /// The client went away or stopped sending before its end: the upstream's side gets `error`
    /// after what came before, and ends the exchange.
    func fail(_ error: any Error) {
        let wake = state.withLock { state -> (loop: any EventLoop, body: @Sendable () -> Void)? in
            guard state.queue.fail(error) else { return nil }
            defer { state.wake = nil }
            return state.wake
        }
        if let wake { wake.loop.execute(wake.body) }
    }

    /// Decodes the rest of a gRPC-Web text call's body with `decoder` (which has read what came
    /// with the head) as the upstream's side takes it. What is taken is then kept for no second
    /// attempt: it would be decoded twice.
    func decodeText(with decoder: GRPCWeb.TextDecoder) {
        state.withLock { state in
            state.textDecoder = decoder
            if let replay = state.replay { budget.release(replay.readableBytes) }
            state.replay = nil
            state.replayEnd = nil
        }
    }

    /// Counts the gRPC messages of the rest of the body, those waiting and those to come,
    /// going on from `counter`, which has read what came with the head; a text call's are counted
    /// through `decoder`, in the state it was left in by what came with the head.
    func countMessages(after counter: GRPCMessageCounter, decoding decoder: GRPCWeb.TextDecoder?) {
        state.withLock { state in
            state.messages = counter
            state.countingDecoder = decoder
            for case .body(let chunk) in state.queue.parts { state.count(chunk) }
        }
    }

    /// The gRPC messages counted (see `countMessages`), `nil` when not counted.
    var messagesCounted: Int? { state.withLock { $0.messages?.count } }

    /// Whether the client may be read now: not while ``maxQueuedBytes`` wait for the upstream (the
    /// read is then held until the upstream takes them).
    func admitsRead() -> Bool {
        state.withLock { $0.queue.admitsRead(limit: Self.maxQueuedBytes) }
    }

    /// Whether the client's request has ended: its connection is then free for its next request.
    var hasEnded: Bool { state.withLock { $0.clientEnded } }

    /// The request's body bytes received so far, for the access log's `bytes_received`.
    var bytesReceived: Int { state.withLock { $0.received } }

    // MARK: The upstream's side (its channel's event loop)

    /// The parts waiting, or `.waiting` after keeping `wake` to run on `loop` when some come, or
    /// the failure once the parts before it have been taken.
    func take(waking loop: any EventLoop, _ wake: @escaping @Sendable () -> Void) -> Taken {
        let (taken, resumesReading) = state.withLock { state -> (Taken, Bool) in
            if let failure = state.decodeFailure { return (.failed(failure), false) }
            if let (received, resumes) = state.queue.takeAll() {
                state.touched = true
                let parts: [Part]
                do throws(GRPCWeb.BadText) {
                    parts = try state.decoded(received)
                } catch {
                    // The rest of the body is not wanted: what the client still sends is dropped.
                    state.decodeFailure = error
                    return (.failed(error), state.queue.drop() || resumes)
                }
                if case .end? = parts.last { state.takenWhole = true }
                state.keepForReplay(parts, budget: budget)
                return (.parts(parts), resumes)
            }
            if let failure = state.queue.failure { return (.failed(failure), false) }
            state.wake = (loop, wake)
            return (.waiting, false)
        }
        if resumesReading { client?.read() }
        return taken
    }

    /// Whether the upstream's side has taken nothing yet, or nothing past what it keeps for a
    /// second attempt (``maxReplayBytes``): a request whose exchange failed then may be sent again.
    var canSendAgain: Bool { state.withLock { !$0.touched || $0.replay != nil } }

    /// Whether the upstream's side has taken nothing yet.
    var isUntouched: Bool { state.withLock { !$0.touched } }

    /// Starts the upload again from its first part, for a new attempt at the request: what an
    /// earlier attempt took goes back ahead of what waits. Nothing changes for the first attempt,
    /// or once what was taken went past ``maxReplayBytes`` (no attempt follows then).
    func rewind() {
        state.withLock { state in
            guard let replay = state.replay, replay.readableBytes > 0 || state.replayEnd != nil else { return }
            var parts: [Part] = replay.readableBytes > 0 ? [.body(replay)] : []
            if let end = state.replayEnd { parts.append(end) }
            state.queue.putBack(parts)
            // Taken again, they are kept (and held against the budget) again.
            budget.release(replay.readableBytes)
            state.replay = ByteBuffer()
            state.replayEnd = nil
            state.takenWhole = false
        }
    }

    /// Whether the upstream's side took the request's end: its connection may then carry another.
    var isTakenWhole: Bool { state.withLock { $0.takenWhole } }

    /// The rest of the body is not wanted (the exchange ended before it): what waits is dropped,
    /// and what the client still sends is read and dropped.
    func abandon() {
        let resumesReading = state.withLock { state -> Bool in
            state.wake = nil
            return state.queue.drop()
        }
        if resumesReading { client?.read() }
    }

    /// What the upstream's side gets when the client went away before its request's end.
    struct ClientGone: Error, CustomStringConvertible {
        var description: String { "the client went away before the end of its request" }
    }

    /// What it gets when the client sent nothing for the stream idle timeout before its end.
    struct Stalled: Error, CustomStringConvertible {
        var description: String { "the client sent nothing for the stream idle timeout before the end of its request" }
    }
}
