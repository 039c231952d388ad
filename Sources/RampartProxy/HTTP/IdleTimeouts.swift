import NIOCore
import NIOHTTP2

/// How long a client may leave a request unfinished, and a connection unused, before the proxy
/// closes it: Envoy's `stream_idle_timeout` (5 minutes) and its connection manager's
/// `idle_timeout` (1 hour, as Istio sets it). Without them, a client that sends half a request
/// line, half its headers or half its body and then nothing would hold its connection, and the
/// body's memory, for ever.
public struct IdleTimeouts: Sendable {
    /// No bytes from the client for this long while a request is unfinished closes the connection
    /// (HTTP/1) or resets the stream (HTTP/2).
    public var stalledRequest: TimeAmount
    /// Nothing read or written for this long closes an HTTP/1 connection.
    public var idleConnection: TimeAmount

    /// Creates the timeouts; the defaults are Envoy's, as Istio configures it.
    public init(stalledRequest: TimeAmount = .minutes(5), idleConnection: TimeAmount = .hours(1)) {
        self.stalledRequest = stalledRequest
        self.idleConnection = idleConnection
    }

    public static let envoy = IdleTimeouts()
}

/// Whether an HTTP/1 connection has bytes of a request the proxy has not yet handed on. Set by
/// `StalledRequestCloser` when bytes arrive, cleared by `HTTPRequestAssembler` when it hands a
/// request on; both run on the connection's event loop.
final class RequestActivity {
    var pending = false
}

/// Told to the handlers of a connection or stream whose client stopped in the middle of a
/// request: a request whose head came is answered 408 `stream timeout` (`SI`), as Envoy's
/// `stream_idle_timeout` answers it (see `HTTPRequestAssembler`). The connection or stream is
/// closed a moment later all the same.
struct StalledRequest {
    /// How long the answer has before the connection or stream is closed.
    static let grace: TimeAmount = .seconds(1)
}

/// Closes an HTTP/1 connection whose client stopped in the middle of a request (answered 408 when
/// its head came, see `StalledRequest`), or that nothing has used for an hour, on the events of
/// the `IdleTimer` before it.
final class StalledRequestCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    let activity: RequestActivity

    init(activity: RequestActivity) {
        self.activity = activity
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity.pending = true
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent {
            switch idle {
            case .read where activity.pending:
                context.fireUserInboundEventTriggered(StalledRequest())
                let channel = context.channel
                context.eventLoop.scheduleTask(in: StalledRequest.grace) { channel.close(promise: nil) }
                return
            case .all:
                context.close(promise: nil)
                return
            default:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Resets an HTTP/2 stream whose client stopped before ending its request, on the idle event of
/// the `IdleTimer` before it (nothing read or written for the period). A
/// stream whose request has ended waits for its response however long that takes (the
/// upstream's own timeout bounds it). A stream answering as it goes (a gRPC call relayed, see
/// `StreamRelay`) is reset only when nothing has gone either way for the period, as Envoy's
/// `stream_idle_timeout` counts both directions: the client of a long-lived call may have
/// nothing to send while the server streams to it, and a client that opens no flow-control
/// window lets no write complete.
final class StalledStreamCloser: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload

    private var ended = false
    private var responding = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers) where headers.endStream: ended = true
        case .data(let data) where data.endStream: ended = true
        default: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .headers = unwrapOutboundIn(data) { responding = true }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent {
            switch idle {
            // Until the stream answers, nothing is written, so nothing either way is nothing read.
            case .all where !ended && !responding:
                context.fireUserInboundEventTriggered(StalledRequest())
                let channel = context.channel
                context.eventLoop.scheduleTask(in: StalledRequest.grace) { channel.close(promise: nil) }
                return
            case .all where responding:
                context.close(promise: nil)
                return
            default:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Tells the handlers after it when a connection or stream has been idle, with NIO's
/// `IdleStateHandler.IdleStateEvent`s: `.read` when nothing was read for `readTimeout`, `.all`
/// when nothing was read or written for `allTimeout`, each again every period it stays so.
///
/// It keeps NIO's handler's reading of "read" (a read counts when its burst ends, and nothing is
/// idle while a read is under way) but counts a write when it is flushed rather than when it
/// completes. NIO's handler wraps every write in a promise of its own to see it complete, an
/// allocation and a callback for each part of each response; this one reads the clock once per
/// flush, on the event loop's clock (`EventLoop.now`). A write stuck behind a client that reads
/// nothing still counts as activity here, which only the hour-long connection timeout could
/// notice, and the stalled-stream check resets such a stream all the same when its client sends
/// nothing.
final class IdleTimer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    private let readTimeout: TimeAmount?
    private let allTimeout: TimeAmount?
    private var reading = false
    private var lastRead: NIODeadline = .uptimeNanoseconds(0)
    private var lastWrite: NIODeadline = .uptimeNanoseconds(0)
    private var readTask: Scheduled<Void>?
    private var allTask: Scheduled<Void>?

    init(readTimeout: TimeAmount? = nil, allTimeout: TimeAmount? = nil) {
        self.readTimeout = readTimeout
        self.allTimeout = allTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { stop() }

    func channelActive(context: ChannelHandlerContext) {
        if readTask == nil && allTask == nil { start(context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if reading {
            reading = false
            lastRead = context.eventLoop.now
        }
        context.fireChannelReadComplete()
    }

    func flush(context: ChannelHandlerContext) {
        lastWrite = context.eventLoop.now
        context.flush()
    }

    private func start(_ context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        lastRead = now
        lastWrite = now
        if let readTimeout { readTask = schedule(context, in: readTimeout, .read) }
        if let allTimeout { allTask = schedule(context, in: allTimeout, .all) }
    }

    private func stop() {
        readTask?.cancel()
        allTask?.cancel()
        readTask = nil
        allTask = nil
    }

    private func schedule(_ context: ChannelHandlerContext, in delay: TimeAmount, _ event: IdleStateHandler.IdleStateEvent) -> Scheduled<Void> {
        let box = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = box.value
            if event == .read { handler.checkRead(context) } else { handler.checkAll(context) }
        }
    }

    private func checkRead(_ context: ChannelHandlerContext) {
        guard let readTimeout, readTask != nil, context.channel.isActive else { return }
        let idle = context.eventLoop.now - lastRead
        if reading || idle < readTimeout {
            readTask = schedule(context, in: reading ? readTimeout : readTimeout - idle, .read)
            return
        }
        readTask = schedule(context, in: readTimeout, .read)
        context.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
    }

    private func checkAll(_ context: ChannelHandlerContext) {
        guard let allTimeout, allTask != nil, context.channel.isActive else { return }
        let idle = context.eventLoop.now - max(lastRead, lastWrite)
        if reading || idle < allTimeout {
            allTask = schedule(context, in: reading ? allTimeout : allTimeout - idle, .all)
            return
        }
        allTask = schedule(context, in: allTimeout, .all)
        context.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
    }
}
