import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization

/// The proxy benchmark's application: HTTP/1.1 on loopback, answering every request with 200 and
/// the same body (small by default, `bodyBytes` long when asked, for downloads), on one event loop
/// of its own so that it costs little and never waits.
/// With `grpc`, it speaks HTTP/2 in cleartext (prior knowledge) and answers every call as a
/// unary gRPC method does: the body as one message, then `grpc-status: 0` in trailers.
final class ConstantApp: Sendable {
    /// The body every response carries.
    static let body = "rampart bench: constant response".utf8

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The port it listens on, on 127.0.0.1.
    let port: Int
    private let counter: AnswerCounter
    /// The body of every HTTP/1.1 answer.
    let payload: ByteBuffer

    /// Requests answered so far: a proxy's own answers (a gRPC denial is HTTP 200 too) are not.
    var answered: Int { counter.count.load(ordering: .relaxed) }

    private init(group: MultiThreadedEventLoopGroup, channel: any Channel, port: Int, counter: AnswerCounter, payload: ByteBuffer) {
        self.group = group
        self.channel = channel
        self.port = port
        self.counter = counter
        self.payload = payload
    }

    /// `count` bytes of the constant body, repeated.
    static func payload(bytes count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        while buffer.readableBytes < count { buffer.writeBytes(body.prefix(count - buffer.readableBytes)) }
        return buffer
    }

    /// The gRPC answer's message: the body in a gRPC frame.
    static let message: ByteBuffer = {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
        return buffer
    }()

    /// Binds to 127.0.0.1 on a port the OS picks. `bodyBytes` sets the HTTP/1.1 answers' length.
    static func start(grpc: Bool = false, bodyBytes: Int? = nil) async throws -> ConstantApp {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counter = AnswerCounter()
        let payload = bodyBytes.map { Self.payload(bytes: $0) } ?? ByteBuffer(bytes: body)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    guard grpc else {
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                            try channel.pipeline.syncOperations.addHandler(ConstantResponder(counter: counter, payload: payload))
                        }
                    }
                    return channel.configureHTTP2Pipeline(mode: .server) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            try stream.pipeline.syncOperations.addHandler(ConstantResponder(counter: counter, grpc: true))
                        }
                    }.map { _ in () }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            guard let port = channel.localAddress?.port else { throw BenchError("the benchmark's HTTP app bound no port") }
            return ConstantApp(group: group, channel: channel, port: port, counter: counter, payload: payload)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Closes the listener and stops the event loop.
    func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Answers each request, once it has been read whole, with the constant response.
final class ConstantResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private static let trailers = HTTPHeaders([("grpc-status", "0")])
    private var keepAlive = true
    private let grpc: Bool
    private let counter: AnswerCounter
    private let payload: ByteBuffer

    init(counter: AnswerCounter, grpc: Bool = false, payload: ByteBuffer = ByteBuffer(bytes: ConstantApp.body)) {
        self.counter = counter
        self.grpc = grpc
        self.payload = payload
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end where grpc:
            counter.count.add(1, ordering: .relaxed)
            let head = HTTPResponseHead(version: .http2, status: .ok, headers: HTTPHeaders([("content-type", "application/grpc")]))
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ConstantApp.message))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(Self.trailers)), promise: nil)
        case .end:
            counter.count.add(1, ordering: .relaxed)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain")
            headers.add(name: "content-length", value: String(payload.readableBytes))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(payload))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

/// How many requests the application has answered.
final class AnswerCounter: Sendable {
    let count = Atomic<Int>(0)
}
