import NIOCore
import NIOHTTP1

/// Hands an HTTP/1.1 connection's whole requests (see ``HTTPRequestAssembler``) to the
/// connection's task, one at a time, and holds back reads while the task is behind.
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

    private var queue = CircularBuffer<AssembledRequest>(initialCapacity: 2)
    private var waiting: CheckedContinuation<AssembledRequest?, Never>?
    private var ended = false
    private var readHeld = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        end()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ended else { return }
        let request = unwrapInboundIn(data)
        if let waiting {
            self.waiting = nil
            waiting.resume(returning: request)
        } else {
            queue.append(request)
        }
    }

    func read(context: ChannelHandlerContext) {
        if queue.count >= Self.maxQueued {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a TLS failure ends the connection; its task sees the end of its requests.
        end()
        context.close(promise: nil)
    }

    /// The next request, or nil once the connection has ended. Called on the event loop.
    func take(_ continuation: CheckedContinuation<AssembledRequest?, Never>) {
        if let request = queue.popFirst() {
            if readHeld && queue.count < Self.maxQueued, let context {
                readHeld = false
                context.read()
            }
            continuation.resume(returning: request)
        } else if ended {
            continuation.resume(returning: nil)
        } else {
            waiting = continuation
        }
    }

    private func end() {
        ended = true
        queue.removeAll()
        if let waiting {
            self.waiting = nil
            waiting.resume(returning: nil)
        }
    }
}

/// An HTTP/1.1 server connection as its task sees it: the next request, and a place to write the
/// answer. Every call is made from the connection's event loop (the task prefers its executor,
/// see ``EventLoopExecutor``); a call from elsewhere hops to it.
struct HTTPRequestStream: Sendable {
    let channel: any Channel
    private let inbox: NIOLoopBound<HTTPRequestInbox>

    init(channel: any Channel, inbox: HTTPRequestInbox) {
        self.channel = channel
        self.inbox = NIOLoopBound(inbox, eventLoop: channel.eventLoop)
    }

    /// The next whole request, or nil when the connection has ended.
    func next() async -> AssembledRequest? {
        let loop = channel.eventLoop
        let inbox = self.inbox
        return await withCheckedContinuation { continuation in
            if loop.inEventLoop {
                inbox.value.take(continuation)
            } else {
                loop.execute { inbox.value.take(continuation) }
            }
        }
    }

    /// Writes and flushes one response.
    func write(_ response: FramedResponse) {
        channel.writeAndFlush(ResponseWrite.whole(response), promise: nil)
    }

    /// Writes the connection's last response, and closes it once the response has gone.
    func writeAndClose(_ response: FramedResponse) {
        let channel = self.channel
        channel.writeAndFlush(ResponseWrite.whole(response)).whenComplete { _ in channel.close(promise: nil) }
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
            try? pipeline.context(handlerType: IdleStateHandler.self),
        ].compactMap { $0 }
    }
}
