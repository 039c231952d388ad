import Foundation
import NIOCore
import NIOHTTP1
import RampartPolicy
import Synchronization

/// A request as a server connection hands it to async code: whole when it came whole within a
/// read, otherwise its head and what came of its body (the rest follows as an upload, see
/// `StreamedUpload`), or only its head when the proxy answers it itself.
enum AssembledRequest: Sendable {
    /// Held by reference (`indirect`), as the other large cases: the channel's pipeline then
    /// carries the request in place, without boxing a copy of it.
    indirect case complete(BufferedRequest)
    /// An HTTP/2 request with neither `:authority` nor `host` (see `HTTP2AuthorityNormalizer`).
    case missingAuthority(HTTPRequestHead)
    /// Bytes the HTTP/1.1 parser refused: the connection's last element. `status` is 400, or 431
    /// for headers past the limits; `details` is Envoy's `response_code_details` for it.
    case unparsable(status: HTTPResponseStatus, details: String)
    /// A piece of the body of a request handed on at its head (`BufferedRequest.isStreamed`).
    case bodyPart(ByteBuffer)
    /// The end of such a request, with its trailers.
    case end(HTTPHeaders?)
    /// A request whose client went away (closed the connection, reset the stream) before its
    /// end: logged and counted as Envoy records it (response code 0, `DC`), and never answered.
    case abandoned(HTTPRequestHead, PartialRequest)
    /// A request whose client sent nothing for the stream idle timeout before its end (see
    /// `StalledRequest`): answered 408, and its connection or stream ends.
    case stalled(HTTPRequestHead, PartialRequest)
}

/// What had come of a request that never came whole: when its head arrived and how many bytes
/// of its body, for the access log's `start_time`, `duration` and `bytes_received`.
struct PartialRequest: Sendable {
    let started: Date
    let bytesReceived: Int
}

/// How many bytes of request bodies the whole proxy holds while it reads them, across every
/// connection and stream. What of a body comes within one read is held until the read is over
/// (and a request that comes whole in it goes on whole), up to `--max-body-bytes`; a body that
/// would take the total past `limit` is passed on as it arrives at once (see `StreamedUpload`),
/// which holds a bounded part of it. What uploads keep for a second attempt is held against it
/// too.
final class BodyBudget: Sendable {
    let limit: Int
    private let held = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// The budget every listener of the process shares: 256 MiB.
    static let shared = BodyBudget(limit: 256 * 1024 * 1024)

    /// Bytes held now.
    var bytesHeld: Int { held.load(ordering: .relaxed) }

    /// Takes `bytes` from the budget, or nothing and `false` when they do not fit.
    func reserve(_ bytes: Int) -> Bool {
        var current = held.load(ordering: .relaxed)
        while true {
            guard current + bytes <= limit else { return false }
            let (exchanged, original) = held.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives `bytes` back.
    func release(_ bytes: Int) {
        if bytes > 0 { held.subtract(bytes, ordering: .relaxed) }
    }
}

/// A response framed for its client (see `HTTPServing.frame`): written as its head, its body when
/// it has one, and its end.
struct FramedResponse: Sendable {
    var head: HTTPResponseHead
    var body: ByteBuffer?
    var trailers: HTTPHeaders?
    /// The upstream byte stream to join the connection to once this 101 is written.
    var upgraded: UpgradedConnection?
    /// For a request passed on as it arrives: the exchange that makes the response (see
    /// `StreamRelay`); `head` is then a placeholder.
    var relay: StreamRelay?
    /// The rest of the body, passed on as the upstream sends it (see `StreamedBody`): `body` is
    /// then what came with the head, and `trailers` nil.
    var streamed: StreamedBody?
    /// How `streamed`'s parts are rewritten for a gRPC-Web client (see `GRPCWeb`).
    var webEncoder: GRPCWeb.ResponseEncoder?
}

/// What an HTTP/2 stream's async code writes: a whole response, or the parts of one relayed as
/// the upstream sends them (see `StreamRelay`).
enum ResponseWrite: Sendable {
    /// Held by reference, so that the pipeline carries it without boxing a copy.
    indirect case whole(FramedResponse)
    case head(HTTPResponseHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// The state machine behind `HTTPRequestAssembler`: request parts in, whole requests out.
struct RequestAssembly {
    private enum State {
        case idle
        /// A request whose body is being held (in `held`) until the end of the read that brings it.
        case reading(HTTPRequestHead)
        /// A request handed on before the end of its body (at the end of a read, or past what is
        /// held): the rest of its body goes into the upload as it arrives.
        case uploading(StreamedUpload)
        /// A request to be handed on at its head, and what of it came in the same read (in
        /// `held`): it is handed on when that read is over (`startStream`), so that a unary call's
        /// head, message and end are passed on together.
        case startingStream(HTTPRequestHead, ended: Bool, trailers: HTTPHeaders?)
        /// A request handed on at its head: its body is handed on as it arrives.
        case streaming
    }

    private var state = State.idle
    /// The body of the request being read, held apart from `state` so that it is referenced once
    /// and grows in place: a buffer inside the state, read through a pattern, is shared with the
    /// copy the pattern binds, and every chunk added would copy all of it.
    private var held = ByteBuffer()
    /// When the current request's head arrived, and the body bytes that have come since.
    private var started = Date.distantPast
    private var received = 0
    let maxBodyBytes: Int
    /// Whether gRPC requests are handed on at their heads (HTTP/2 streams).
    let streamsGRPC: Bool
    /// What every connection's bodies are held against.
    let budget: BodyBudget
    /// The connection or stream the requests come on, which an upload reads again once the
    /// upstream has taken what waits (nil in tests of the state machine alone).
    var channel: (any Channel)?
    /// The body of bodiless requests, allocated once per connection.
    private let empty = ByteBuffer()

    init(maxBodyBytes: Int, budget: BodyBudget = .shared, streamsGRPC: Bool = false) {
        self.maxBodyBytes = maxBodyBytes
        self.budget = budget
        self.streamsGRPC = streamsGRPC
    }

    /// Takes one part; returns the request its end completes.
    mutating func receive(_ part: HTTPServerRequestPart) -> AssembledRequest? {
        if case .body(let chunk) = part { received += chunk.readableBytes }
        switch (part, state) {
        case (.head(var head), _):
            releaseHeld()
            started = Date()
            received = 0
            // Values as a field parser reads them, before anything (a policy, the application) does.
            Self.trimFieldValues(&head.headers)
            if streamsGRPC && GRPCFraming.isGRPC(contentType: head.headers.first(name: "content-type")) {
                // A gRPC call's messages may be a stream in either direction: the call is
                // decided on its head (no policy reads a body) and its body passed on as it comes.
                state = .startingStream(head, ended: false, trailers: nil)
                return nil
            }
            state = .reading(head)
            return nil
        case (.body(var chunk), .startingStream):
            hold(&chunk)
            return nil
        case (.end(let trailers), .startingStream(let head, _, _)):
            state = .startingStream(head, ended: true, trailers: trailers)
            return nil
        case (.body(let chunk), .streaming):
            return .bodyPart(chunk)
        case (.end(let trailers), .streaming):
            state = .idle
            return .end(trailers)
        case (.body(let chunk), .uploading(let upload)):
            upload.deliver(.body(chunk))
            return nil
        case (.end(let trailers), .uploading(let upload)):
            state = .idle
            upload.deliver(.end(trailers))
            return nil
        case (.body(var chunk), .reading(let head)):
            guard held.readableBytes + chunk.readableBytes <= maxBodyBytes, budget.reserve(chunk.readableBytes) else {
                // Past what is held (or what the proxy holds in all): the request goes on now,
                // with what was held, and the rest of its body follows as it arrives.
                let request = handOn(head)
                upload?.deliver(.body(chunk))
                return request
            }
            hold(&chunk)
            return nil
        case (.body, _):
            return nil
        case (.end(let trailers), .reading(let head)):
            // Handed on: the body is no longer one being read.
            state = .idle
            var request = BufferedRequest(head: head, body: takeHeld(), trailers: trailers)
            request.arrived = started
            return .complete(request)
        case (.end, .idle):
            return nil
        }
    }

    /// Removes the spaces and tabs around header values (see `FieldValue`): NIO's HTTP/1 parser
    /// keeps trailing ones, and HPACK keeps both. Most requests have none, and are left as they are.
    static func trimFieldValues(_ headers: inout HTTPHeaders) {
        guard headers.contains(where: { FieldValue.isPadded($0.value) }) else { return }
        var trimmed = HTTPHeaders()
        trimmed.reserveCapacity(headers.count)
        for (name, value) in headers { trimmed.add(name: name, value: FieldValue.trimmed(value)) }
        headers = trimmed
    }

    /// Adds a chunk to the body held. Most bodies come in one chunk, which is kept as it came.
    private mutating func hold(_ chunk: inout ByteBuffer) {
        if held.readableBytes == 0 {
            held = chunk
        } else {
            held.writeBuffer(&chunk)
        }
    }

    /// The body held, no longer held here; a body held against the budget (`releasing`, that of a
    /// request being read whole) is given back to it.
    private mutating func takeHeld(releasing: Bool = true) -> ByteBuffer {
        if releasing { budget.release(held.readableBytes) }
        defer { held = empty }
        return held
    }

    /// Hands on the request being read with the body held so far; the rest of its body follows
    /// into its upload as it arrives.
    private mutating func handOn(_ head: HTTPRequestHead) -> AssembledRequest {
        let body = takeHeld()
        let upload = StreamedUpload(client: channel, held: body.readableBytes, budget: budget)
        state = .uploading(upload)
        var request = BufferedRequest(head: head, body: body)
        request.arrived = started
        request.upload = upload
        return .complete(request)
    }

    /// The request being read, when the read that brought its head (or the last of its body so
    /// far) is over and its body has not ended: it goes on now, with what came, and the rest of
    /// its body follows as the client sends it, as Envoy passes a request on without waiting for
    /// its end. A request whose body comes whole within one read is handed on whole at its end.
    /// One whose `transfer-encoding` names a coding besides `chunked` is held: the parser may yet
    /// refuse it (400), and it is otherwise answered 501 once read (see
    /// `ProxyContext.codecRefusal`), so that its answer does not depend on where a read ends.
    mutating func handOnUnfinished() -> AssembledRequest? {
        guard case .reading(let head) = state, !ProxyContext.hasUnsupportedTransferEncoding(head.headers) else {
            return nil
        }
        return handOn(head)
    }

    /// Hands on a request to be streamed, with what of it has come so far, at the end of the read
    /// that brought its head (see `State.startingStream`).
    mutating func startStream() -> AssembledRequest? {
        guard case .startingStream(let head, let ended, let trailers) = state else { return nil }
        state = ended ? .idle : .streaming
        var request = BufferedRequest(head: head, body: takeHeld(releasing: false), trailers: trailers)
        request.arrived = started
        request.isStreamed = true
        request.streamEnded = ended
        return .complete(request)
    }

    /// The head of a request still being read, which its client abandons as the connection or
    /// stream goes away (or stalls, `error`); what its body holds is given back. A request handed
    /// on with an upload has its upload fail with `error` instead: its exchange ends, and is
    /// answered and recorded by the task that serves it.
    mutating func abandon(_ error: any Error = StreamedUpload.ClientGone()) -> (HTTPRequestHead, PartialRequest)? {
        let head: HTTPRequestHead?
        switch state {
        case .reading(let reading): head = reading
        case .startingStream(let starting, let ended, _) where !ended: head = starting
        default: head = nil
        }
        releaseHeld(error)
        return head.map { ($0, PartialRequest(started: started, bytesReceived: received)) }
    }

    /// Gives back what a body being read holds, and fails an upload under way with `error`: when
    /// the connection or stream goes away with the request unfinished.
    mutating func releaseHeld(_ error: any Error = StreamedUpload.ClientGone()) {
        switch state {
        case .reading: _ = takeHeld()
        case .uploading(let upload): upload.fail(error)
        default: _ = takeHeld(releasing: false)
        }
        state = .idle
    }

    /// The upload under way, if the current request's body is passed on as it arrives.
    var upload: StreamedUpload? {
        if case .uploading(let upload) = state { return upload }
        return nil
    }
}

/// Assembles a server connection's request parts into whole requests, and writes each framed
/// response as its parts, so the connection's async code gets one element per request and
/// writes one per response.
///
/// With `answersParseErrors` it also hands on bytes the HTTP/1.1 parser refuses, as the
/// connection's last element (`AssembledRequest.unparsable`): its task answers them with 400 (431
/// for oversized headers), logs them and ends the connection, after the responses to the requests
/// handed on before them (NIO's protocol-error handler writes its 400 at once, ahead of a response
/// async code is still making, and logs nothing).
final class HTTPRequestAssembler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = AssembledRequest
    typealias OutboundIn = ResponseWrite
    typealias OutboundOut = HTTPServerResponsePart

    private var assembly: RequestAssembly
    private let answersParseErrors: Bool
    /// Requests handed on whose responses have not been written yet.
    private var unanswered = 0
    /// The parser refused the connection's bytes after the requests handed on so far.
    private var refused = false

    /// Told when a request has been handed on, so that a connection idle between requests is
    /// not taken for one stalled in the middle of a request (see `StalledRequestCloser`).
    private let activity: RequestActivity?

    init(
        maxBodyBytes: Int, answersParseErrors: Bool = false, budget: BodyBudget = .shared, activity: RequestActivity? = nil,
        streamsGRPC: Bool = false
    ) {
        self.activity = activity
        assembly = RequestAssembly(
            maxBodyBytes: maxBodyBytes, budget: budget, streamsGRPC: streamsGRPC)
        self.answersParseErrors = answersParseErrors
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var part = unwrapInboundIn(data)
        if case .head(var head) = part, head.version.major == 1, head.headers.contains(name: "expect") {
            // `Expect: 100-continue` is answered here, as Envoy answers it, and not passed on: the
            // proxy reads the body (held, or passed on past what it holds) before the application
            // could answer, so the client must send it now.
            let continues = head.headers["expect"].contains { $0.lowercased() == "100-continue" }
            head.headers.remove(name: "expect")
            part = .head(head)
            if continues, head.version.minor >= 1, unanswered == 0 {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        }
        let uploading = assembly.upload != nil
        guard let request = assembly.receive(part) else {
            // An upload's end: the connection is between requests again.
            if uploading && assembly.upload == nil { activity?.pending = false }
            return
        }
        switch request {
        case .bodyPart, .end:
            // The rest of a request already handed on.
            context.fireChannelRead(wrapInboundOut(request))
            return
        default:
            break
        }
        activity?.pending = false
        unanswered += 1
        context.fireChannelRead(wrapInboundOut(request))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A request still arriving goes on with what came of it: a call to be streamed, or a
        // request whose body follows as an upload. The connection stays inside a request (see
        // `RequestActivity`) until its end.
        if let request = assembly.startStream() ?? assembly.handOnUnfinished() {
            unanswered += 1
            context.fireChannelRead(wrapInboundOut(request))
        }
        context.fireChannelReadComplete()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        assembly.channel = context.channel
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        assembly.releaseHeld()
        assembly.channel = nil
    }

    func read(context: ChannelHandlerContext) {
        // While the upstream is behind with an upload, the client is not read (see
        // `StreamedUpload.admitsRead`).
        if let upload = assembly.upload, !upload.admitsRead() { return }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is StalledRequest {
            if let (head, partial) = assembly.abandon(StreamedUpload.Stalled()) {
                unanswered += 1
                // Outside a read: handed on with a read's end, which is when async code sees it.
                context.fireChannelRead(wrapInboundOut(.stalled(head, partial)))
                context.fireChannelReadComplete()
            }
            return
        }
        guard let refused = event as? HTTP2AuthorityNormalizer.MissingAuthority else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        unanswered += 1
        context.fireChannelRead(wrapInboundOut(.missingAuthority(refused.head)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let (head, partial) = assembly.abandon() { context.fireChannelRead(wrapInboundOut(.abandoned(head, partial))) }
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let response: FramedResponse
        switch unwrapOutboundIn(data) {
        case .whole(let whole):
            response = whole
        case .head(let head):
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            return
        case .body(let body):
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: promise)
            return
        case .end(let trailers):
            context.write(wrapOutboundOut(.end(trailers)), promise: promise)
            unanswered = max(0, unanswered - 1)
            return
        }
        context.write(wrapOutboundOut(.head(response.head)), promise: nil)
        if let body = response.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(response.trailers)), promise: promise)
        unanswered = max(0, unanswered - 1)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard answersParseErrors, error is HTTPParserError else {
            // A reset stream or connection ends a request still being read: recorded before the
            // error ends the elements the connection's task reads.
            if let (head, partial) = assembly.abandon() { context.fireChannelRead(wrapInboundOut(.abandoned(head, partial))) }
            context.fireErrorCaught(error)
            return
        }
        // The parser reads nothing after an error: the requests before it are answered in
        // order, then the refusal, which the connection's task answers, logs and closes on.
        guard !refused else { return }
        refused = true
        if error as? HTTPParserError == .invalidEOFState {
            // The client closed the connection inside a request: not bytes that broke HTTP, but a
            // request abandoned (recorded as Envoy records a downstream that went away), or, inside
            // a head, nothing to record.
            if let (head, partial) = assembly.abandon() { context.fireChannelRead(wrapInboundOut(.abandoned(head, partial))) }
            return
        }
        let refusal: AssembledRequest =
            error as? HTTPParserError == .headerOverflow
            ? .unparsable(status: .requestHeaderFieldsTooLarge, details: "http1.headers_too_large")
            : .unparsable(status: .badRequest, details: "http1.codec_error")
        unanswered += 1
        context.fireChannelRead(wrapInboundOut(refusal))
    }
}
