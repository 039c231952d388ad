import NIOCore
import NIOHTTP1
import NIOPosix

/// The proxy benchmark's application: HTTP/1.1 on loopback, answering every request with 200 and
/// the same small body, on one event loop of its own so that it costs little and never waits.
final class ConstantApp: Sendable {
    /// The body every response carries.
    static let body = "rampart bench: constant response".utf8

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The port it listens on, on 127.0.0.1.
    let port: Int

    private init(group: MultiThreadedEventLoopGroup, channel: any Channel, port: Int) {
        self.group = group
        self.channel = channel
        self.port = port
    }

    /// Binds to 127.0.0.1 on a port the OS picks.
    static func start() async throws -> ConstantApp {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(ConstantResponder())
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            guard let port = channel.localAddress?.port else { throw BenchError("the benchmark's HTTP app bound no port") }
            return ConstantApp(group: group, channel: channel, port: port)
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

    private static let payload = ByteBuffer(bytes: ConstantApp.body)
    private var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain")
            headers.add(name: "content-length", value: String(Self.payload.readableBytes))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(Self.payload))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
