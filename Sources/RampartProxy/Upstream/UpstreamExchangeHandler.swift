import NIOCore
import NIOHTTP1
import NIOTLS

/// One request and what to call with its response, written into an upstream channel. A class, so
/// that the channel's pipeline carries it as one reference rather than boxing a copy of it.
final class UpstreamExchange: Sendable {
    let request: BufferedRequest
    /// When the whole response must have arrived (`distantFuture`: no timeout), and the timeout
    /// it came from.
    let deadline: NIODeadline
    let timeout: TimeAmount
    /// How long the upstream may send nothing meanwhile (Envoy's `stream_idle_timeout`).
    let idle: TimeAmount
    /// Whether a response whose body does not come whole with its head is answered at its head,
    /// the rest passed on as it arrives (see `StreamedBody`); otherwise it is held whole, up to
    /// the handler's limit.
    let streams: Bool
    private let completion: Completion

    init(
        request: BufferedRequest, completion: @escaping @Sendable (Result<BufferedResponse, any Error>) -> Void, deadline: NIODeadline,
        timeout: TimeAmount, idle: TimeAmount = .minutes(5), streams: Bool = false
    ) {
        self.request = request
        self.completion = Completion(completion)
        self.deadline = deadline
        self.timeout = timeout
        self.idle = idle
        self.streams = streams
    }

    /// Completes the exchange; only the first call has an effect (a write that fails after it
    /// reached the handler is reported by both).
    func complete(_ result: Result<BufferedResponse, any Error>) {
        completion.run(result)
    }

    /// The exchange's callback, run once. Only the upstream channel's event loop touches it.
    private final class Completion: @unchecked Sendable {
        private var body: (@Sendable (Result<BufferedResponse, any Error>) -> Void)?

        init(_ body: @escaping @Sendable (Result<BufferedResponse, any Error>) -> Void) {
            self.body = body
        }

        func run(_ result: Result<BufferedResponse, any Error>) {
            guard let body else { return }
            self.body = nil
            body(result)
        }
    }
}

/// Writes one request at a time, assembles the response, and fails an exchange whose response
/// has not arrived by its deadline, or whose upstream has sent nothing for its idle time (closing
/// the connection).
///
/// For an exchange that `streams`, a response whose end has not come by the end of the read that
/// brought its head (or whose body passes the limit) is answered at once with its head and what
/// of its body came, and the rest is handed on as it arrives (see `StreamedBody`); the exchange
/// stays pending, under the same deadline and idle time, until the response's end.
///
/// The deadline is watched by one timer per connection rather than one per request: the timer
/// is set for the pending exchange's deadline and left running when the response arrives; when
/// it fires it fails the exchange then pending if that one's deadline has passed, sets itself for
/// it otherwise, and stops when none is pending. A keep-alive connection answering in
/// milliseconds thus schedules about one timer per timeout period instead of one per request.
final class UpstreamExchangeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = UpstreamExchange
    typealias OutboundOut = HTTPClientRequestPart

    private let maxBodyBytes: Int
    private var pending: UpstreamExchange?
    /// When the pending exchange fails unless something arrives: its deadline, or its idle time
    /// after the last read, whichever comes first.
    private var pendingDeadline = NIODeadline.distantFuture
    private var pendingTimeout = TimeAmount.zero
    private var timer: Scheduled<Void>?
    private var timerDeadline = NIODeadline.distantFuture
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    /// The rest of the pending exchange's response, once it has been answered at its head.
    private var streaming: StreamedBody?
    /// The rest of the pending exchange's request, while it is passed on as the client sends it
    /// (see `StreamedUpload`); nil once its end has been written.
    private var upload: StreamedUpload?
    /// The upload waits for the connection (or HTTP/2 stream) to take writes again.
    private var uploadAwaitsWritable = false
    /// When the pending exchange's response must have ended: its timeout counts from the end of
    /// its request, as Envoy's route timeout does, so an upload's does once the upload has ended.
    private var exchangeDeadline = NIODeadline.distantFuture

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// Sets the timer for the pending exchange's deadline unless it already fires by then.
    private func armTimer(context: ChannelHandlerContext) {
        guard timer == nil || timerDeadline > pendingDeadline else { return }
        timer?.cancel()
        timerDeadline = pendingDeadline
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: pendingDeadline) {
            let (handler, context) = bound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        timerDeadline = .distantFuture
        guard let pending else { return }
        let now = NIODeadline.now()
        if now >= exchangeDeadline {
            fail(UpstreamTimeout(milliseconds: pendingTimeout.nanoseconds / 1_000_000), context: context)
        } else if now >= pendingDeadline, streaming?.isHoldingReads == true {
            // The upstream is silent because the proxy stopped reading it for a slow client.
            pendingDeadline = min(exchangeDeadline, now + pending.idle)
            armTimer(context: context)
        } else if now >= pendingDeadline {
            fail(UpstreamIdleTimeout(milliseconds: pending.idle.nanoseconds / 1_000_000), context: context)
        } else {
            armTimer(context: context)
        }
    }

    private func stopTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = .distantFuture
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard pending == nil else {
            let error = ProxyError(.upstream, "an upstream connection was given a second request before the first was answered")
            exchange.complete(.failure(error))
            promise?.fail(error)
            return
        }
        pending = exchange
        streaming = nil
        upload = exchange.request.upload
        // A request sent again starts its upload from the first part.
        upload?.rewind()
        uploadAwaitsWritable = false
        exchangeDeadline = upload == nil ? exchange.deadline : .distantFuture
        pendingDeadline = min(exchangeDeadline, .now() + exchange.idle)
        pendingTimeout = exchange.timeout
        armTimer(context: context)
        head = nil
        body.clear()
        var requestHead = exchange.request.head
        let length = exchange.request.body.readableBytes
        if upload != nil {
            // Passed on as it arrives: with the length the client gave, or chunked (an HTTP/2
            // stream drops the header and ends the body with its last frame).
            if !requestHead.headers.contains(name: "content-length") {
                requestHead.headers.set(name: "transfer-encoding", value: "chunked")
            }
        } else if length == 0 && Self.usuallyBodiless(requestHead.method) {
            // Methods without a body in practice get no content-length when they carry none.
            if requestHead.headers.contains(name: "content-length") { requestHead.headers.remove(name: "content-length") }
        } else {
            requestHead.headers.set(name: "content-length", value: String(length))
        }
        guard upload != nil else {
            context.write(wrapOutboundOut(.head(requestHead)), promise: nil)
            if length > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(exchange.request.body))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(exchange.request.trailers)), promise: promise)
            return
        }
        if length > 0 {
            context.write(wrapOutboundOut(.head(requestHead)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(exchange.request.body))), promise: promise)
        } else {
            context.writeAndFlush(wrapOutboundOut(.head(requestHead)), promise: promise)
        }
        passUpload(context: context)
    }

    /// Writes what the client has sent of the pending exchange's upload, while the connection
    /// takes writes; once it takes no more, or nothing waits, it goes on when that changes.
    private func passUpload(context: ChannelHandlerContext) {
        while let upload {
            guard context.channel.isWritable else {
                uploadAwaitsWritable = true
                return
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            // The upload keeps this until it wakes it: held weakly, so that the two never keep
            // each other.
            let taken = upload.take(waking: context.eventLoop) { [weak upload] in
                let (handler, context) = bound.value
                // Only for the upload it waited for: the exchange may have ended meanwhile.
                if let upload, handler.upload === upload { handler.passUpload(context: context) }
            }
            switch taken {
            case .waiting:
                return
            case .failed(let error):
                // The client went away or stalled: the exchange ends, and the connection with it.
                fail(error, context: context)
                return
            case .parts(let parts):
                for part in parts {
                    switch part {
                    case .body(let chunk):
                        context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
                    case .end(let trailers):
                        context.write(wrapOutboundOut(.end(trailers)), promise: nil)
                        self.upload = nil
                        // The request is whole: its timeout starts.
                        if let pending, pending.deadline != .distantFuture {
                            exchangeDeadline = .now() + pending.timeout
                        }
                    }
                }
                context.flush()
                // Bytes went to the upstream: the stream is not idle.
                if let pending { pendingDeadline = min(exchangeDeadline, .now() + pending.idle) }
                armTimer(context: context)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if uploadAwaitsWritable, context.channel.isWritable {
            uploadAwaitsWritable = false
            passUpload(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Stops taking the pending exchange's upload before its end was written (the exchange is
    /// over). The upload is not abandoned here: a request whose connection failed before anything
    /// of the upload was taken may be sent again with it, and the task serving the client drops
    /// what is left once it has answered (see `HTTPServing`).
    private func detachUpload() {
        upload = nil
        uploadAwaitsWritable = false
    }

    /// GET, HEAD, DELETE, OPTIONS and TRACE.
    static func usuallyBodiless(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .DELETE, .OPTIONS, .TRACE: return true
        default: return false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Something arrived: the idle time starts again (the timer, when it fires, finds the later deadline).
        if let pending, pending.deadline == .distantFuture || pending.idle < pending.timeout {
            pendingDeadline = min(exchangeDeadline, .now() + pending.idle)
        }
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            // 1xx interim responses are not forwarded.
            if responseHead.status.code >= 100 && responseHead.status.code < 200 { return }
            head = responseHead
        case .body(var chunk):
            if let streaming {
                streaming.deliver(.body(chunk))
                return
            }
            if body.readableBytes + chunk.readableBytes > maxBodyBytes {
                guard let pending, pending.streams, let head else {
                    fail(ResponseTooLarge(limit: maxBodyBytes), context: context)
                    return
                }
                startStreaming(head, pending, context: context).deliver(.body(chunk))
                return
            }
            if body.readableBytes == 0 {
                // Most responses arrive in one chunk: it is kept as it came, not copied.
                body = chunk
            } else {
                body.writeBuffer(&chunk)
            }
        case .end(let trailers):
            // The response ended before the request did: the rest of the upload is not sent (and
            // the connection, left inside a request, is not pooled, see `UpstreamClient`).
            detachUpload()
            if let streaming {
                // The exchange is over: the connection may take the next one.
                self.pending = nil
                self.head = nil
                self.streaming = nil
                streaming.deliver(.end(trailers))
                return
            }
            guard let head, let pending else { return }
            self.pending = nil
            self.head = nil
            let response = BufferedResponse(head: head, body: body, trailers: trailers)
            body = ByteBuffer()
            pending.complete(.success(response))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A response whose end did not come with its head goes on at its head.
        if streaming == nil, let pending, pending.streams, let head, Self.mayHaveBody(head, to: pending.request.head) {
            startStreaming(head, pending, context: context)
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        // While the client is behind, the upstream is not read (see `StreamedBody.admitsRead`).
        if let streaming, !streaming.admitsRead() { return }
        context.read()
    }

    /// Answers the pending exchange with the head and the body so far, the rest to follow.
    @discardableResult
    private func startStreaming(_ head: HTTPResponseHead, _ pending: UpstreamExchange, context: ChannelHandlerContext) -> StreamedBody {
        let streamed = StreamedBody(upstream: context.channel)
        var response = BufferedResponse(head: head, body: body)
        response.streamed = streamed
        response.isStreamed = true
        body = ByteBuffer()
        streaming = streamed
        pending.complete(.success(response))
        return streamed
    }

    /// Whether a response may carry a body: not one to `HEAD`, nor a 204 or 304.
    static func mayHaveBody(_ head: HTTPResponseHead, to request: HTTPRequestHead) -> Bool {
        request.method != .HEAD && head.status.code != 204 && head.status.code != 304 && head.status.code >= 200
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        detachUpload()
        if let pending {
            self.pending = nil
            let error: any Error = head == nil && body.readableBytes == 0 ? UpstreamClosed() : UpstreamClosedMidResponse()
            if let streaming {
                self.streaming = nil
                streaming.fail(UpstreamClosedMidResponse())
            }
            pending.complete(.failure(error))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        detachUpload()
        if let pending {
            self.pending = nil
            if let streaming {
                self.streaming = nil
                streaming.fail(error)
            }
            pending.complete(.failure(error))
        }
        context.close(promise: nil)
    }
}

/// Completes a promise when the TLS handshake finishes, or fails it when the connection ends first.
final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private var promise: EventLoopPromise<Void>?

    init(promise: EventLoopPromise<Void>?) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if case .handshakeCompleted = event as? TLSUserEvent {
            promise?.succeed()
            promise = nil
            // Its work is done: every read of the connection would otherwise pass through it.
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ProxyError(.upstream, "the connection closed during the TLS handshake"))
        promise = nil
        context.fireChannelInactive()
    }
}

/// Ends a relayed upstream stream (see `StreamRelay`) that runs past its timeout, or on which
/// nothing has gone either way for the idle time (the `IdleTimer` before it): the
/// stream's reader gets `UpstreamTimeout` or `UpstreamIdleTimeout`, and the stream is closed.
final class RelayedStreamLimits: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    private let timeout: TimeAmount
    private let idle: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount, idle: TimeAmount) {
        self.timeout = timeout
        self.idle = idle
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard timeout > .zero else { return }
        let timeout = self.timeout
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            Self.end(bound.value, UpstreamTimeout(milliseconds: timeout.nanoseconds / 1_000_000))
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? IdleStateHandler.IdleStateEvent, event == .all {
            Self.end(context, UpstreamIdleTimeout(milliseconds: idle.nanoseconds / 1_000_000))
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private static func end(_ context: ChannelHandlerContext, _ error: any Error) {
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}

/// Hands a relayed upstream stream's response (see `StreamRelay`) to the relay's task, the parts
/// of each read together, so that what came together goes to the client in one flush (a unary
/// call's head, message and trailers).
///
/// A lighter bridge than `NIOAsyncChannel` for this one shape, as `HTTPRequestInbox` is for
/// requests: a short queue of reads, at most one waiting continuation, and reads held back while
/// the task is behind, so a fast upstream is slowed by HTTP/2 flow control.
final class UpstreamResponseInbox: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// Reads held while the task is busy, before reads stop.
    static let maxQueued = 4

    /// The parts of the read under way.
    private var pending: [HTTPClientResponsePart] = []
    private var inbox = InboxQueue<[HTTPClientResponsePart]>(maxQueued: maxQueued)
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        end(nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !inbox.ended else { return }
        pending.append(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        handOn()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if inbox.admitsRead() { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset, a timeout (see `RelayedStreamLimits`): the task sees it after what came before.
        end(error)
        context.close(promise: nil)
    }

    /// The next read's parts, nil once the stream has ended, or the error that ended it. Called
    /// on the event loop.
    func take(_ continuation: UnsafeContinuation<[HTTPClientResponsePart]?, any Error>) {
        if inbox.take(continuation) { context?.read() }
    }

    private func handOn() {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        inbox.deliver(batch)
    }

    private func end(_ error: (any Error)?) {
        handOn()
        inbox.end(error)
    }
}

/// A relayed upstream stream's response as the relay's task reads it (see `UpstreamResponseInbox`).
struct UpstreamResponses: Sendable {
    let channel: any Channel
    private let inbox: NIOLoopBound<UpstreamResponseInbox>

    init(channel: any Channel, inbox: UpstreamResponseInbox) {
        self.channel = channel
        self.inbox = NIOLoopBound(inbox, eventLoop: channel.eventLoop)
    }

    /// The parts of the next read, nil once the stream has ended; throws what failed the stream.
    func next() async throws -> [HTTPClientResponsePart]? {
        let loop = channel.eventLoop
        let inbox = self.inbox
        return try await withUnsafeThrowingContinuation { continuation in
            loop.runOnLoop { inbox.value.take(continuation) }
        }
    }
}
