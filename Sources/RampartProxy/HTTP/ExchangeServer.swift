import NIOCore
import NIOHTTP1

/// Serves an HTTP/1.1 server connection on its own event loop: request parts are assembled into
/// whole requests (see ``RequestAssembly``), each goes to `respond`, and the response it answers
/// with is framed and written before the next request is taken, so pipelined requests are
/// answered in order.
///
/// The common exchange (a request decided at once and forwarded on a pooled upstream connection)
/// thus completes in the connection's channel handlers and callbacks, with no task, no future and
/// no async sequence between the socket and the decision. Requests that arrive while one is being
/// answered wait in a short queue; when it is full the handler stops asking for reads, so a client
/// that pipelines without end is held back by TCP rather than by memory.
final class HTTPExchangeServer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Receives a response; may be called on any thread.
    typealias Answer = @Sendable (BufferedResponse) -> Void
    /// Answers one request; called on the connection's event loop, and calls its `Answer` once.
    typealias Respond = (BufferedRequest, any EventLoop, @escaping Answer) -> Void

    /// Requests held while one is answered, before reads stop.
    static let maxQueued = 16

    private let respond: Respond
    private var assembly: RequestAssembly
    private var queue = CircularBuffer<AssembledRequest>(initialCapacity: 2)
    private var answering = false
    private var closing = false
    private var readHeld = false
    /// The parser refused the connection's bytes after the requests queued so far.
    private var badRequest = false

    init(maxBodyBytes: Int, respond: @escaping Respond) {
        self.assembly = RequestAssembly(maxBodyBytes: maxBodyBytes)
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, let request = assembly.receive(unwrapInboundIn(data)) else { return }
        queue.append(request)
        if !answering { answerNext(context: context) }
    }

    func read(context: ChannelHandlerContext) {
        if queue.count >= Self.maxQueued {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        queue.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !closing else {
            // A reset or a TLS failure ends the connection.
            closing = true
            queue.removeAll()
            context.close(promise: nil)
            return
        }
        // Bytes that are not HTTP/1.1: the requests before them are still answered, in order,
        // then a 400 and the end of the connection (the parser reads nothing after an error).
        badRequest = true
        if !answering && queue.isEmpty { refuse(context: context) }
    }

    /// Answers the bytes the parser refused with 400 and closes the connection.
    private func refuse(context: ChannelHandlerContext) {
        closing = true
        var headers = HTTPHeaders()
        headers.add(name: "connection", value: "close")
        headers.add(name: "content-length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    private func answerNext(context: ChannelHandlerContext) {
        guard !closing else { return }
        guard let assembled = queue.popFirst() else {
            if badRequest { refuse(context: context) }
            return
        }
        if readHeld && queue.count < Self.maxQueued {
            readHeld = false
            context.read()
        }
        answering = true
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        switch assembled {
        case .complete(let request):
            let requestHead = request.head
            respond(request, loop) { response in
                if loop.inEventLoop {
                    let (handler, context) = bound.value
                    handler.write(response, for: requestHead, tooLarge: false, context: context)
                } else {
                    loop.execute {
                        let (handler, context) = bound.value
                        handler.write(response, for: requestHead, tooLarge: false, context: context)
                    }
                }
            }
        case .tooLarge(let head, let limit):
            write(.local(.payloadTooLarge, "request body exceeds \(limit) bytes\n"), for: head, tooLarge: true, context: context)
        }
    }

    private func write(_ response: BufferedResponse, for requestHead: HTTPRequestHead, tooLarge: Bool, context: ChannelHandlerContext) {
        answering = false
        guard !closing else { return }
        let keepAlive = requestHead.isKeepAlive && !tooLarge && !HopByHop.asksToClose(response.head.headers)
        let framed = HTTPServing.frame(response, for: requestHead, keepAlive: keepAlive)
        context.write(wrapOutboundOut(.head(framed.head)), promise: nil)
        if let body = framed.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(framed.trailers)), promise: nil)
            answerNext(context: context)
        } else {
            closing = true
            queue.removeAll()
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(framed.trailers))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
