import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ServiceLifecycle
import Synchronization

/// What the inbound and outbound listeners share: binding, the accept loop, and HTTP/2 streams.
enum Listening {
    /// Binds a TCP listener whose connections each yield a negotiation future, then runs
    /// `handle` for each negotiated connection in a task of its own until graceful shutdown.
    static func serve<Negotiated: Sendable>(
        host: String, port: Int, name: String, logger: Logger, onBound: @Sendable (Int) -> Void,
        drain: TimeAmount = Listening.drainDuration,
        negotiate: @escaping @Sendable (any Channel) throws -> EventLoopFuture<Negotiated>,
        handle: @escaping @Sendable (Negotiated) async -> Void
    ) async throws {
        let open = OpenConnections()
        let unclaimed = Unclaimed<Negotiated>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                let draining = open.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    let negotiated = try negotiate(channel)
                    unclaimed.add(channel, negotiated)
                    if draining { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
                    return Accepted(channel: channel, negotiated: negotiated)
                }
            }
        let bound = server.channel.localAddress?.port ?? port
        onBound(bound)
        logger.info("\(name) listener ready", metadata: ["proxy.\(name)": "\(host):\(bound)"])
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                func serve(_ negotiated: EventLoopFuture<Negotiated>) {
                    // The connection's task runs on its channel's event loop (see EventLoopExecutor).
                    group.addTask(executorPreference: EventLoopExecutor(negotiated.eventLoop)) {
                        do {
                            await handle(try await negotiated.get())
                        } catch {
                            logger.info("\(name) connection refused", metadata: ["error": "\(InboundRefusal.describe(error))"])
                        }
                    }
                }
                // A connection accepted as the listener closed may never reach the loop: it is
                // served all the same (its streams are not left to be dropped unread), also when
                // the listener fails.
                do {
                    try await server.executeThenClose { connections in
                        for try await accepted in connections where unclaimed.claim(accepted.channel) {
                            serve(accepted.negotiated)
                        }
                    }
                } catch {
                    for negotiated in unclaimed.claimAll() { serve(negotiated) }
                    throw error
                }
                for negotiated in unclaimed.claimAll() { serve(negotiated) }
            }
        } onGracefulShutdown: {
            // No new connections; those open are told and get the drain period to finish (a peer's pooled
            // connection may stay open and idle for ever), then are closed, as Envoy drains
            // (Istio's terminationDrainDuration, 5 s by default).
            server.channel.close(promise: nil)
            // HTTP/2 connections get GOAWAY and close once their streams end; HTTP/1.1 ones answer
            // their next request with `connection: close`.
            for channel in open.startDraining() { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
            server.channel.eventLoop.scheduleTask(in: drain) {
                let closing = open.all()
                if !closing.isEmpty {
                    logger.info("\(name) listener closing connections left after draining", metadata: ["proxy.connections": "\(closing.count)"])
                }
                for channel in closing { channel.close(promise: nil) }
            }
        }
    }

    /// Envoy's default limits on a request's headers (`max_request_headers_kb` 60,
    /// `max_headers_count` 100); past them a request is answered 431.
    static var headerLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = 60 * 1024
        limits.maxHeaderFieldSize = 60 * 1024
        limits.maxHeaderFieldCount = 100
        return limits
    }

    /// The HTTP/2 settings a listener advertises: Envoy's 60 KiB header list (NIO's default is
    /// 16 KiB, past which the whole connection ends), and 1024 concurrent streams (NIO's default
    /// of 100 ends the whole connection of a client that opens the 101st before it reads them).
    static var http2Server: NIOHTTP2Handler.Configuration {
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 1024),
            HTTP2Setting(parameter: .maxHeaderListSize, value: headerListBytes),
        ]
        return configuration
    }

    /// What NIO's connection manager does for a listener's HTTP/2 connections: only the graceful
    /// close, when the listener drains (a `ChannelShouldQuiesceEvent`): a GOAWAY naming the
    /// highest stream id, a PING, then a GOAWAY naming the last stream opened, and the close once
    /// the streams before it have ended. Idle connections, keep-alive pings and the drain's own
    /// limit are the proxy's (`IdleTimeouts`, `drainDuration`).
    static var http2Management: NIOHTTP2ServerConnectionManagementHandler.Configuration {
        .init(maxIdleTime: nil, maxAge: nil, maxGraceTime: nil, keepalive: nil)
    }

    /// The largest header list either side of the proxy takes over HTTP/2, as over HTTP/1.1.
    static let headerListBytes = 60 * 1024

    /// How long open connections may go on after shutdown begins: Istio's default
    /// `terminationDrainDuration`.
    static let drainDuration: TimeAmount = .seconds(5)

    /// Configures `channel` as an HTTP/1.1 server whose requests its task takes one at a time
    /// (see ``HTTPRequestInbox``) and answers (see ``HTTPServing``).
    ///
    /// Without NIO's pipelining assistance: ``HTTPServing`` reads a connection's requests one after
    /// another and answers each before it takes the next, so pipelined requests are answered in
    /// order without it, and the socket's read interest is not switched off and on around every
    /// request. Without NIO's protocol-error handler, which every response part would pass
    /// through: ``HTTPRequestAssembler`` answers bytes the parser refuses with 400 itself, after
    /// the responses to the requests before them. Without NIO's check of outbound response
    /// headers: every response header value the listeners write was parsed from an upstream
    /// (HTTP/1.1 by llhttp, HTTP/2 by NIO's header-block validation, both of which refuse control
    /// characters) or is the proxy's own, made from such values. Plaintext requests to upstreams
    /// keep the check: they may carry JWT claims copied into headers.
    ///
    /// Requests reach async code whole when they come whole within a read, and otherwise with what
    /// came, their bodies following as they arrive (see ``HTTPRequestAssembler``).
    static func configureHTTP1Server(
        _ channel: any Channel, maxBodyBytes: Int, timeouts: IdleTimeouts = .envoy
    ) throws -> HTTPRequestStream {
        let activity = RequestActivity()
        try channel.pipeline.syncOperations.addHandler(
            IdleTimer(readTimeout: timeouts.stalledRequest, allTimeout: timeouts.idleConnection))
        try channel.pipeline.syncOperations.addHandler(StalledRequestCloser(activity: activity))
        try addHTTP1Codec(channel.pipeline.syncOperations, position: .last)
        try channel.pipeline.syncOperations.addHandler(
            HTTPRequestAssembler(
                maxBodyBytes: maxBodyBytes, answersParseErrors: true, activity: activity))
        let inbox = HTTPRequestInbox()
        try channel.pipeline.syncOperations.addHandler(inbox)
        return HTTPRequestStream(channel: channel, inbox: inbox)
    }

    /// Adds NIO's HTTP/1.1 server codec at `position`: the response encoder and the request decoder,
    /// paired so that answers to `HEAD` carry no body. The decoder keeps the bytes that follow a
    /// request it stops at (an upgrade, see `HTTPUpgrade.stopsParser`) and hands them on when it
    /// is removed: to the tunnel of a WebSocket (a client's first frames, sent before the 101), or
    /// to the fresh codec of a connection that goes on with HTTP/1.1. NIO keeps them only when
    /// given an upgrade configuration; one with no upgraders answers no upgrade itself, and its
    /// handler leaves the pipeline at the connection's first request.
    static func addHTTP1Codec(_ pipeline: ChannelPipeline.SynchronousOperations, position: ChannelPipeline.SynchronousOperations.Position) throws {
        try pipeline.configureHTTPServerPipeline(
            position: position, withPipeliningAssistance: false, withServerUpgrade: (upgraders: [], completionHandler: { _ in }),
            withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: headerLimits)
    }

    /// Answers one request from a connection's task: the decision is made at once in the task
    /// (`respond` runs inside the continuation's closure), and the task waits only for the
    /// upstream exchange, which completes through a callback rather than a future.
    static func answer(_ request: BufferedRequest, on loop: any EventLoop, _ respond: Respond) async -> BufferedResponse {
        await withUnsafeContinuation { continuation in
            respond(request, loop) { continuation.resume(returning: $0) }
        }
    }

    /// Receives a response; may be called on any thread.
    typealias Answer = @Sendable (BufferedResponse) -> Void
    /// Decides one request and calls its `Answer` once.
    typealias Respond = (BufferedRequest, any EventLoop, @escaping Answer) -> Void

    /// An HTTP/2 server connection whose streams each arrive as one request, taken through an
    /// inbox as an HTTP/1.1 connection's requests are (see ``HTTPRequestInbox``).
    typealias HTTP2Streams = NIOHTTP2Handler.AsyncStreamMultiplexer<HTTPRequestStream>

    /// Configures `channel` as an HTTP/2 server whose streams each carry one request, converted from
    /// HTTP/2 frames to HTTP/1-style parts and assembled as for `configureHTTP1Server`.
    static func configureHTTP2Server(
        _ channel: any Channel, maxBodyBytes: Int, timeouts: IdleTimeouts = .envoy
    ) throws -> HTTP2Streams {
        try channel.pipeline.syncOperations.addHandler(HTTP2FloodGuard())
        let streams = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
            mode: .server, connectionManagerConfiguration: Self.http2Management, http2HandlerConfiguration: Self.http2Server
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    IdleTimer(allTimeout: timeouts.stalledRequest))
                try stream.pipeline.syncOperations.addHandler(StalledStreamCloser())
                try stream.pipeline.syncOperations.addHandler(HTTP2AuthorityNormalizer())
                try stream.pipeline.syncOperations.addHandler(GRPCTrailersOnly())
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(
                    HTTPRequestAssembler(maxBodyBytes: maxBodyBytes, streamsGRPC: true))
                let inbox = HTTPRequestInbox(defersFirstRead: true)
                try stream.pipeline.syncOperations.addHandler(inbox)
                return HTTPRequestStream(channel: stream, inbox: inbox)
            }
        }
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionErrorCloser())
        return streams
    }

    /// Serves every stream of an HTTP/2 connection, each one request answered by `respond`, then closes it.
    static func serveStreams(
        _ streams: HTTP2Streams, connection: any Channel, logger: Logger,
        respond: @escaping @Sendable (BufferedRequest) async -> BufferedResponse, refused: @escaping HTTPServing.Refused
    ) async {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for try await stream in streams.inbound {
                    group.addTask {
                        await HTTPServing.serveHTTP2(stream, respond: respond, refused: refused)
                    }
                }
            }
        } catch {
            logger.debug("HTTP/2 connection ended", metadata: ["error": "\(error)"])
        }
        try? await connection.close()
    }
}

/// A connection the listener accepted, with the future of its negotiation.
struct Accepted<Negotiated: Sendable>: Sendable {
    let channel: any Channel
    let negotiated: EventLoopFuture<Negotiated>
}

/// The accepted connections no task serves yet. The accept loop claims each as it comes; when the
/// listener closes, the loop may end before it has seen every connection accepted just before,
/// and those are claimed after it, so that every connection is served (an unserved HTTP/2
/// connection's streams would be dropped unread).
final class Unclaimed<Negotiated: Sendable>: Sendable {
    private let pending = Mutex<[ObjectIdentifier: EventLoopFuture<Negotiated>]>([:])

    func add(_ channel: any Channel, _ negotiated: EventLoopFuture<Negotiated>) {
        let key = ObjectIdentifier(channel)
        pending.withLock { $0[key] = negotiated }
    }

    /// Whether `channel` was still unclaimed (it is claimed now).
    func claim(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        return pending.withLock { $0.removeValue(forKey: key) } != nil
    }

    /// Claims every connection left.
    func claimAll() -> [EventLoopFuture<Negotiated>] {
        pending.withLock { pending in
            defer { pending.removeAll() }
            return Array(pending.values)
        }
    }
}

/// The connections a listener accepted that are still open, so that shutdown can close them.
final class OpenConnections: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    /// Keeps `channel` until it closes; returns whether the listener is already draining (a
    /// connection accepted as the drain began, which its caller tells as soon as it can).
    func add(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let draining = state.withLock { state in
            state.channels[key] = channel
            return state.draining
        }
        channel.closeFuture.whenComplete { _ in
            _ = self.state.withLock { $0.channels.removeValue(forKey: key) }
        }
        return draining
    }

    /// Marks the listener draining and returns the connections open now: every connection is
    /// either among them or told by `add` that the drain has begun.
    func startDraining() -> [any Channel] {
        state.withLock { state in
            state.draining = true
            return Array(state.channels.values)
        }
    }

    /// The connections open now.
    func all() -> [any Channel] {
        state.withLock { Array($0.channels.values) }
    }
}
