import NIOCore
import NIOHTTP1
import Synchronization

/// Hands an HTTP/1.1 connection's whole requests (see ``HTTPRequestAssembler``), or an HTTP/2
/// stream's request and the parts of it that follow, to the task serving it, one at a time, and
/// holds back reads while the task is behind.
///
/// A lighter bridge than `NIOAsyncChannel` for this one shape of exchange: the task asks for the
/// next request, decides it and writes its answer before asking again, so the handler keeps a
/// short queue and at most one waiting continuation, and the task writes its responses straight
/// into the channel from the event loop it runs on. Past ``maxQueued`` waiting requests the
/// handler stops asking for reads, so a client that pipelines without end is held back by TCP.
final class HTTPRequestInbox: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = AssembledRequest
    typealias OutboundIn = ResponseWrite
    typealias OutboundOut = ResponseWrite

    /// Requests held while the task is busy, before reads stop.
    static let maxQueued = 16

    private var inbox = InboxQueue<AssembledRequest>(maxQueued: maxQueued)
    private var context: ChannelHandlerContext?
    /// Set when the listener starts draining (a `ChannelShouldQuiesceEvent`).
    let draining = DrainFlag()
    /// Whether the channel's first read waits for the event loop's next turn (HTTP/2 streams).
    private var defersFirstRead: Bool

    /// An inbox whose channel reads at once, or, with `defersFirstRead`, whose first read waits
    /// for the event loop's next turn. An HTTP/2 stream is opened, and reads, as soon as its
    /// HEADERS frame is decoded, before the frames that came after it in the same read of the
    /// connection (its DATA, its end); deferred, the first read takes them all, so a request the
    /// client sent whole (a unary gRPC call) is handed on whole, and goes upstream in one write.
    init(defersFirstRead: Bool = false) {
        self.defersFirstRead = defersFirstRead
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        inbox.end(nil, droppingQueued: true)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.deliver(unwrapInboundIn(data))
    }

    func read(context: ChannelHandlerContext) {
        guard inbox.admitsRead() else { return }
        if defersFirstRead {
            defersFirstRead = false
            // Runs once the connection's read, with every frame it brought, has been handled.
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.read() }
            return
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.end(nil, droppingQueued: true)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The listener drains: the connection's next answer is its last (see `HTTPServing`).
        if event is ChannelShouldQuiesceEvent {
            draining.set()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a TLS failure ends the connection; its task sees the end of its requests.
        inbox.end(nil, droppingQueued: true)
        context.close(promise: nil)
    }

    /// The next request, or nil once the connection has ended. Called on the event loop.
    func take(_ continuation: UnsafeContinuation<AssembledRequest?, any Error>) {
        if inbox.take(continuation) { context?.read() }
    }
}

/// What a handler that hands a channel's elements to one task keeps (see `HTTPRequestInbox`,
/// `UpstreamResponseInbox`): the elements the task has not taken yet, the task's continuation
/// while it waits, and whether reads are held back because `maxQueued` elements wait. Used on the
/// channel's event loop only.
struct InboxQueue<Element: Sendable> {
    private var queue = CircularBuffer<Element>(initialCapacity: 2)
    private var waiting: UnsafeContinuation<Element?, any Error>?
    private(set) var ended = false
    private var failure: (any Error)?
    private var readHeld = false
    let maxQueued: Int

    init(maxQueued: Int) {
        self.maxQueued = maxQueued
    }

    /// Hands `element` to the waiting task, or queues it.
    mutating func deliver(_ element: Element) {
        guard !ended else { return }
        if let waiting {
            self.waiting = nil
            waiting.resume(returning: element)
        } else {
            queue.append(element)
        }
    }

    /// Whether a read may be passed on: not while `maxQueued` elements wait (it is then held until
    /// the task takes one). The caller passes it on, once this access has ended: a read can bring
    /// elements at once, into `deliver`.
    mutating func admitsRead() -> Bool {
        if queue.count >= maxQueued {
            readHeld = true
            return false
        }
        return true
    }

    /// Gives the task the next element, nil once ended, or the error that ended it. Returns
    /// whether a held read is to be passed on now (by the caller, as for `admitsRead`).
    mutating func take(_ continuation: UnsafeContinuation<Element?, any Error>) -> Bool {
        if let element = queue.popFirst() {
            let resumesReading = readHeld && queue.count < maxQueued
            if resumesReading { readHeld = false }
            continuation.resume(returning: element)
            return resumesReading
        } else if ended {
            if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: nil) }
        } else {
            waiting = continuation
        }
        return false
    }

    /// No more elements come: the waiting task gets nil (or `error`) now, a later one once it
    /// has taken what is queued, unless `droppingQueued`.
    mutating func end(_ error: (any Error)?, droppingQueued: Bool = false) {
        guard !ended else { return }
        ended = true
        failure = error
        if droppingQueued { queue.removeAll() }
        if let waiting {
            self.waiting = nil
            if let error { waiting.resume(throwing: error) } else { waiting.resume(returning: nil) }
        }
    }
}

/// An HTTP/1.1 server connection, or an HTTP/2 stream, as its task sees it: the next request (or
/// part of one), and a place to write the answer. Every call is made from the channel's event
/// loop (the task prefers its executor, see ``EventLoopExecutor``); a call from elsewhere hops to it.
struct HTTPRequestStream: Sendable {
    let channel: any Channel
    private let inbox: NIOLoopBound<HTTPRequestInbox>
    /// Whether the listener is draining, so that the next answer ends the connection.
    let draining: DrainFlag

    init(channel: any Channel, inbox: HTTPRequestInbox) {
        self.channel = channel
        self.inbox = NIOLoopBound(inbox, eventLoop: channel.eventLoop)
        self.draining = inbox.draining
    }

    /// The next whole request, or nil when the connection has ended.
    func next() async -> AssembledRequest? {
        let loop = channel.eventLoop
        let inbox = self.inbox
        // The inbox ends without an error: nothing is thrown.
        let next = try? await withUnsafeThrowingContinuation { continuation in
            loop.runOnLoop { inbox.value.take(continuation) }
        }
        return next ?? nil
    }

    /// Writes and flushes one response.
    func write(_ response: FramedResponse) {
        if channel.eventLoop.inEventLoop {
            // Wrapped where its type is known (see `UpstreamClient.exchange`).
            channel.pipeline.syncOperations.writeAndFlush(NIOAny(ResponseWrite.whole(response)), promise: nil)
        } else {
            channel.writeAndFlush(ResponseWrite.whole(response), promise: nil)
        }
    }

    /// Writes the connection's last response, and closes it once the response has gone.
    func writeAndClose(_ response: FramedResponse) {
        let channel = self.channel
        channel.writeAndFlush(ResponseWrite.whole(response)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Writes the connection's last response, and closes the connection `linger` after the write
    /// (a short answer has gone by then, even to a client that reads nothing), or at once if the
    /// write fails.
    func writeAndLinger(_ response: FramedResponse, for linger: TimeAmount) {
        let channel = self.channel
        channel.eventLoop.runOnLoop {
            channel.writeAndFlush(ResponseWrite.whole(response)).whenFailure { _ in channel.close(promise: nil) }
            channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
        }
    }

    /// Closes the connection.
    func close() {
        channel.close(promise: nil)
    }

    /// Writes the 101 that ends the connection's HTTP, then makes it a byte stream joined to the
    /// upstream's: the HTTP handlers go, a tunnel end takes their place.
    func switchToBytes(after response: FramedResponse, joining upgraded: UpgradedConnection) {
        let channel = self.channel
        channel.writeAndFlush(ResponseWrite.whole(response)).whenComplete { result in
            guard case .success = result else {
                channel.close(promise: nil)
                upgraded.tunnel.channel.close(promise: nil)
                upgraded.tally.sideClosed()
                return
            }
            let pipeline = channel.pipeline.syncOperations
            do {
                for context in try Self.httpHandlers(pipeline) { _ = pipeline.removeHandler(context: context) }
                let own = ByteTunnel(channel: channel, tally: upgraded.tally, direction: .fromClient)
                try pipeline.addHandler(own)
                own.join(upgraded.tunnel.channel)
                upgraded.tunnel.join(channel)
            } catch {
                channel.close(promise: nil)
                upgraded.tunnel.channel.close(promise: nil)
                upgraded.tally.sideClosed()
            }
        }
    }

    /// Gives the connection a fresh HTTP/1.1 codec, after the answer to a request the parser stopped
    /// at (see `HTTPUpgrade.stopsParser`) that was not tunneled: an `h2c` offer, served as HTTP/1.1
    /// as Envoy serves it. The old decoder hands the bytes it holds to the new one as it leaves.
    func resumeParsing() {
        let channel = self.channel
        channel.eventLoop.runOnLoop {
            let pipeline = channel.pipeline.syncOperations
            do {
                let decoder = try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
                let encoder = try pipeline.context(handlerType: HTTPResponseEncoder.self)
                try Listening.addHTTP1Codec(pipeline, position: .after(decoder.handler))
                pipeline.removeHandler(context: encoder, promise: nil)
                pipeline.removeHandler(context: decoder, promise: nil)
            } catch {
                channel.close(promise: nil)
            }
        }
    }

    /// The handlers of an HTTP/1.1 server connection, from the idle timeouts to the inbox.
    private static func httpHandlers(_ pipeline: ChannelPipeline.SynchronousOperations) throws -> [ChannelHandlerContext] {
        [
            try? pipeline.context(handlerType: HTTPRequestInbox.self),
            try? pipeline.context(handlerType: HTTPRequestAssembler.self),
            try? pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self),
            try? pipeline.context(handlerType: HTTPResponseEncoder.self),
            try? pipeline.context(handlerType: NIOHTTPResponseHeadersValidator.self),
            // The idle timeouts are those of HTTP requests: an upgraded connection's bytes may go
            // one way only for long stretches.
            try? pipeline.context(handlerType: StalledRequestCloser.self),
            try? pipeline.context(handlerType: IdleTimer.self),
        ].compactMap { $0 }
    }
}

/// Whether a connection's listener has started draining; set once, read from any thread.
final class DrainFlag: Sendable {
    private let value = Atomic(false)

    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
