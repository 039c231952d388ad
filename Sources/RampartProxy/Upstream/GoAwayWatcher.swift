import NIOCore
import NIOHTTP2

/// Watches a client HTTP/2 connection for its peer's GOAWAY: tells its owner at once (so that
/// no new stream is opened on it), and closes the connection once the streams open on it have
/// ended, so that a peer that keeps its socket open after GOAWAY leaves no idle connection behind.
/// Frames on the root stream and the stream events reach the handlers after NIO's HTTP/2 handler.
final class GoAwayWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    private let onGoAway: () -> Void
    private var goingAway = false
    private var openStreams = 0

    init(onGoAway: @escaping () -> Void) {
        self.onGoAway = onGoAway
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !goingAway, case .goAway = unwrapInboundIn(data).payload {
            goingAway = true
            onGoAway()
            if openStreams == 0 { context.close(promise: nil) }
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is NIOHTTP2StreamCreatedEvent:
            openStreams += 1
        case is StreamClosedEvent:
            openStreams = max(0, openStreams - 1)
            if goingAway && openStreams == 0 { context.close(promise: nil) }
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }
}
