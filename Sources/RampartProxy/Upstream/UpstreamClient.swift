import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// Where to send a request, and how to secure the connection.
public struct UpstreamTarget: Sendable, Hashable {
    /// The endpoint.
    public let host: String
    public let port: Int
    /// mTLS origination: the client context and the identities the server may present;
    /// `nil` for plaintext (the local application).
    public let tls: TLSOrigination?
    /// Speak HTTP/2 (over TLS with ALPN `h2`, or in plaintext with prior knowledge).
    public let http2: Bool

    /// Creates a target.
    public init(host: String, port: Int, tls: TLSOrigination? = nil, http2: Bool = false) {
        self.host = host
        self.port = port
        self.tls = tls
        self.http2 = http2
    }
}

/// mTLS to an upstream proxy.
public struct TLSOrigination: Sendable, Hashable {
    /// The identity generation whose context is used; pooled connections are keyed by it.
    public let generation: Int
    /// The verifier of the server's certificate.
    public let verifier: PeerVerifier
    /// The client context.
    public let context: NIOSSLContext

    /// Creates an origination.
    public init(generation: Int, verifier: PeerVerifier, context: NIOSSLContext) {
        self.generation = generation
        self.verifier = verifier
        self.context = context
    }

    public static func == (lhs: TLSOrigination, rhs: TLSOrigination) -> Bool {
        lhs.generation == rhs.generation && lhs.verifier.expected == rhs.verifier.expected && lhs.verifier.revoked == rhs.verifier.revoked
    }

    /// Hashes the generation alone: pools look their key up on every request, and hashing the
    /// set of expected identities (and the revocation list `==` compares) would cost more than a
    /// rare shared bucket. Equal originations still hash alike.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(generation)
    }
}

/// What came back from an upstream, and who answered.
public struct UpstreamResult: Sendable {
    /// The response.
    public let response: BufferedResponse
    /// The verified server identity, for mTLS upstreams.
    public let peer: VerifiedPeer?
}

/// An HTTP/1.1 client with a pool of keep-alive connections per target.
///
/// Requests and responses are held whole (up to `maxBodyBytes`). A connection goes back to the
/// pool after a response both sides allow to keep alive; a failure closes it.
public final class UpstreamClient: Sendable {
    private struct Pooled: Sendable {
        let channel: any Channel
        let peer: VerifiedPeer?
    }

    /// An HTTP/2 connection, shared by every request to its target.
    private struct Multiplexed: Sendable {
        let channel: any Channel
        let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
        let peer: VerifiedPeer?
    }

    /// Idle connections are kept per target and per event loop: a request takes one on the loop
    /// its own task runs on, so the exchange completes without a hop to another thread. Callers
    /// that run off the group's loops share one pool (`loop` nil).
    private struct PoolKey: Hashable {
        let target: UpstreamTarget
        let loop: ObjectIdentifier?
    }

    private let group: any EventLoopGroup
    /// The group's loops (a handful: one per core), searched in order.
    private let loops: [ObjectIdentifier]
    private let idle = Mutex<[PoolKey: [Pooled]]>([:])
    private let multiplexed = Mutex<[UpstreamTarget: Multiplexed]>([:])
    private let maxIdlePerTarget: Int
    private let maxBodyBytes: Int
    private let connectTimeout: TimeAmount

    /// Creates a client.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxIdlePerTarget: Int = 256, maxBodyBytes: Int, connectTimeout: TimeAmount = .seconds(5)) {
        self.group = group
        self.loops = group.makeIterator().map { ObjectIdentifier($0) }
        self.maxIdlePerTarget = maxIdlePerTarget
        self.maxBodyBytes = maxBodyBytes
        self.connectTimeout = connectTimeout
    }

    /// Sends a request and waits for the whole response.
    public func send(_ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount = .seconds(60)) async throws -> UpstreamResult {
        if target.http2 { return try await sendHTTP2(request, to: target, timeout: timeout) }
        let current = currentLoop()
        let loop = current ?? group.next()
        let promise = loop.makePromise(of: UpstreamResult.self)
        send(request, to: target, timeout: timeout, poolLoop: current, on: loop) { promise.completeWith($0) }
        return try await promise.futureResult.get()
    }

    /// Sends a request from code running on `loop` (a connection's channel handlers), and calls
    /// `completion` with the response or the failure.
    ///
    /// When `loop` is one of the group's, the request takes an idle connection of that loop's
    /// pool: an exchange on a pooled connection is then a write and a read on the one thread,
    /// with no task and no future, and `completion` runs on `loop`. Opening a connection, and
    /// HTTP/2, run as tasks; their `completion` may run on another thread.
    public func send(
        _ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount = .seconds(60), on loop: any EventLoop,
        completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        if target.http2 {
            Task {
                do {
                    completion(.success(try await self.sendHTTP2(request, to: target, timeout: timeout)))
                } catch {
                    completion(.failure(error))
                }
            }
            return
        }
        let own = loops.contains(ObjectIdentifier(loop)) ? loop : nil
        send(request, to: target, timeout: timeout, poolLoop: own, on: own ?? group.next(), completion: completion)
    }

    /// The HTTP/1.1 exchange: an idle connection of `poolLoop`'s pool (the shared pool when nil),
    /// or a new one on `loop`.
    private func send(
        _ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount, poolLoop: (any EventLoop)?, on loop: any EventLoop,
        completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        var request = request
        if request.head.version.major == 2 { request.head.version = .http1_1 }
        let key = PoolKey(target: target, loop: poolLoop.map { ObjectIdentifier($0) })
        guard let pooled = takeIdle(key) else {
            exchangeOnNewConnection(request, key: key, on: loop, timeout: timeout, completion: completion)
            return
        }
        let retry = Self.idempotent.contains(request.head.method.rawValue)
        exchange(request, on: pooled, key: key, timeout: timeout) { [request] result in
            // A pooled connection the server closed while it sat idle: the server answered
            // nothing, so an idempotent request is sent once more on a new connection.
            if retry, case .failure(let error) = result, error is UpstreamClosed {
                self.exchangeOnNewConnection(request, key: key, on: loop, timeout: timeout, completion: completion)
            } else {
                completion(result)
            }
        }
    }

    private func exchangeOnNewConnection(
        _ request: BufferedRequest, key: PoolKey, on loop: any EventLoop, timeout: TimeAmount,
        completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        Task {
            do {
                let connection = try await self.connect(key.target, on: loop)
                self.exchange(request, on: connection, key: key, timeout: timeout, completion: completion)
            } catch {
                completion(.failure(error))
            }
        }
    }

    /// The event loop the calling task runs on, when it is one of the group's.
    private func currentLoop() -> (any EventLoop)? {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop, loops.contains(ObjectIdentifier(current)) else { return nil }
        return current
    }

    private func exchange(
        _ request: BufferedRequest, on connection: Pooled, key: PoolKey, timeout: TimeAmount,
        completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        let channel = connection.channel
        exchange(request, on: channel, timeout: timeout) { result in
            switch result {
            case .success(let response):
                // The request's headers were edited for forwarding: read without NIO's canonical form.
                if HopByHop.isKeepAlive(request.head.headers, version: request.head.version) && response.head.isKeepAlive && channel.isActive {
                    self.release(connection, key: key)
                } else {
                    channel.close(promise: nil)
                }
                completion(.success(UpstreamResult(response: response, peer: connection.peer)))
            case .failure(let error):
                channel.close(promise: nil)
                completion(.failure(error))
            }
        }
    }

    /// Methods a client may repeat without changing the outcome (RFC 9110 §9.2.2).
    static let idempotent: Set<String> = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]

    /// Closes every idle connection.
    public func shutdown() {
        let all = idle.withLock { pool -> [Pooled] in
            defer { pool.removeAll() }
            return pool.values.flatMap { $0 }
        }
        for connection in all { connection.channel.close(promise: nil) }
        let shared = multiplexed.withLock { pool -> [Multiplexed] in
            defer { pool.removeAll() }
            return Array(pool.values)
        }
        for connection in shared { connection.channel.close(promise: nil) }
    }

    private func sendHTTP2(_ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount) async throws -> UpstreamResult {
        let connection = try await multiplexedConnection(target)
        var request = request
        request.head.version = .http2
        let maxBodyBytes = self.maxBodyBytes
        let stream: any Channel
        do {
            stream = try await connection.multiplexer.openStream { streamChannel in
                streamChannel.eventLoop.makeCompletedFuture {
                    try streamChannel.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: target.tls == nil ? .http : .https))
                    try streamChannel.pipeline.syncOperations.addHandler(UpstreamExchangeHandler(maxBodyBytes: maxBodyBytes))
                    return streamChannel
                }
            }
        } catch {
            forget(connection, target: target)
            throw ProxyError(.upstream, "cannot open an HTTP/2 stream to \(target.host):\(target.port): \(error)")
        }
        defer { stream.close(promise: nil) }
        let response = try await exchange(request, on: stream, timeout: timeout)
        return UpstreamResult(response: response, peer: connection.peer)
    }

    private func multiplexedConnection(_ target: UpstreamTarget) async throws -> Multiplexed {
        if let existing = multiplexed.withLock({ $0[target] }), existing.channel.isActive { return existing }
        let (connected, peer) = try await open(target, on: group.next()) { channel in
            let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) { stream in
                stream.eventLoop.makeSucceededVoidFuture()
            }
            return (channel, multiplexer)
        }
        let fresh = Multiplexed(channel: connected.0, multiplexer: connected.1, peer: peer)
        let chosen = multiplexed.withLock { pool -> Multiplexed in
            if let existing = pool[target], existing.channel.isActive { return existing }
            pool[target] = fresh
            return fresh
        }
        if chosen.channel !== fresh.channel {
            fresh.channel.close(promise: nil)
        } else {
            fresh.channel.closeFuture.whenComplete { [weak self] _ in self?.forget(fresh, target: target) }
        }
        return chosen
    }

    private func forget(_ connection: Multiplexed, target: UpstreamTarget) {
        multiplexed.withLock { pool in
            if let current = pool[target], current.channel === connection.channel { pool[target] = nil }
        }
    }

    /// An idle connection of `key`'s pool that is still open, if there is one.
    private func takeIdle(_ key: PoolKey) -> Pooled? {
        while let pooled = idle.withLock({ pool -> Pooled? in pool[key]?.popLast() }) {
            if pooled.channel.isActive { return pooled }
        }
        return nil
    }

    private func release(_ connection: Pooled, key: PoolKey) {
        let limit = maxIdlePerTarget
        let kept = idle.withLock { pool -> Bool in
            // One lookup: the list is updated in place.
            var kept = false
            modify(&pool[key, default: []]) { list in
                if list.count < limit {
                    list.append(connection)
                    kept = true
                }
            }
            return kept
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    private func connect(_ target: UpstreamTarget, on loop: any EventLoop) async throws -> Pooled {
        let maxBodyBytes = self.maxBodyBytes
        let (channel, peer) = try await open(target, on: loop) { channel in
            // Requests to another proxy over mTLS carry what the application sent (parsed by
            // llhttp or NIO's HTTP/2 validation) and the proxy's own headers; requests in
            // plaintext (to the application, or out of the mesh) may carry JWT claims the inbound
            // side copied into headers, and keep NIO's check of outbound header values.
            try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: target.tls == nil)
            try channel.pipeline.syncOperations.addHandler(UpstreamExchangeHandler(maxBodyBytes: maxBodyBytes))
            return channel
        }
        return Pooled(channel: channel, peer: peer)
    }

    /// Connects to `target`, with mTLS when it asks for it, lets `configure` build the rest of the
    /// pipeline, and waits for the handshake, so a refused server identity is reported as such
    /// rather than as a broken exchange. Returns what `configure` built and the verified server.
    private func open<Output: Sendable>(
        _ target: UpstreamTarget, on loop: any EventLoop, configure: @escaping @Sendable (any Channel) throws -> Output
    ) async throws -> (Output, VerifiedPeer?) {
        let box = PeerBox()
        let handshake = target.tls == nil ? nil : loop.makePromise(of: Void.self)
        let output: Output
        let channel: any Channel
        do {
            (output, channel) = try await ClientBootstrap(group: loop)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: target.host, port: target.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls = target.tls {
                            let handler = try NIOSSLClientHandler(
                                context: tls.context, serverHostname: nil, customVerificationCallbackWithMetadata: tls.verifier.callback(box: box)
                            )
                            try channel.pipeline.syncOperations.addHandler(handler)
                            try channel.pipeline.syncOperations.addHandler(WriteCoalescer())
                            try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: handshake))
                        }
                        return (try configure(channel), channel)
                    }
                }
        } catch {
            handshake?.fail(error)
            throw ProxyError(.upstream, "cannot connect to \(target.host):\(target.port): \(error)")
        }
        if let handshake {
            do {
                try await handshake.futureResult.get()
            } catch {
                channel.close(promise: nil)
                throw ProxyError(.upstream, "mTLS to \(target.host):\(target.port) failed: \(box.refusal ?? "\(error)")")
            }
        }
        return (output, box.peer)
    }

    /// Writes one exchange into `channel` (whose last handler is an ``UpstreamExchangeHandler``).
    private func exchange(
        _ request: BufferedRequest, on channel: any Channel, timeout: TimeAmount,
        completion: @escaping @Sendable (Result<BufferedResponse, any Error>) -> Void
    ) {
        let exchange = UpstreamExchange(request: request, completion: completion, deadline: .now() + timeout, timeout: timeout)
        if channel.eventLoop.inEventLoop && channel.isActive {
            // On the channel's own thread an open channel hands the write to its handler at
            // once; a failure after that reaches the handler, which completes the exchange.
            channel.writeAndFlush(exchange, promise: nil)
            return
        }
        // A connection that closes before this write reaches its handler never sees the request:
        // nothing else would complete the exchange, so the failed write does, as a closed upstream
        // that answered nothing (which lets an idempotent request on a pooled connection be retried).
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            exchange.complete(.failure(error as? ChannelError == .ioOnClosedChannel ? UpstreamClosed() : error))
        }
        channel.writeAndFlush(exchange, promise: written)
    }

    /// The HTTP/2 stream's exchange, awaited.
    private func exchange(_ request: BufferedRequest, on stream: any Channel, timeout: TimeAmount) async throws -> BufferedResponse {
        let promise = stream.eventLoop.makePromise(of: BufferedResponse.self)
        exchange(request, on: stream, timeout: timeout) { promise.completeWith($0) }
        return try await promise.futureResult.get()
    }
}

/// One request and what to call with its response, written into an upstream channel.
struct UpstreamExchange: Sendable {
    let request: BufferedRequest
    /// When the whole response must have arrived, and the timeout it came from.
    let deadline: NIODeadline
    let timeout: TimeAmount
    private let completion: Completion

    init(request: BufferedRequest, completion: @escaping @Sendable (Result<BufferedResponse, any Error>) -> Void, deadline: NIODeadline, timeout: TimeAmount) {
        self.request = request
        self.completion = Completion(completion)
        self.deadline = deadline
        self.timeout = timeout
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
/// has not arrived by its deadline (closing the connection).
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
    private var pendingDeadline = NIODeadline.distantFuture
    private var pendingTimeout = TimeAmount.zero
    private var timer: Scheduled<Void>?
    private var timerDeadline = NIODeadline.distantFuture
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

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
        guard pending != nil else { return }
        if NIODeadline.now() >= pendingDeadline {
            fail(UpstreamTimeout(milliseconds: pendingTimeout.nanoseconds / 1_000_000), context: context)
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
        pendingDeadline = exchange.deadline
        pendingTimeout = exchange.timeout
        armTimer(context: context)
        head = nil
        body.clear()
        var requestHead = exchange.request.head
        let length = exchange.request.body.readableBytes
        // Methods without a body in practice get no content-length when they carry none.
        if length == 0 && Self.usuallyBodiless(requestHead.method) {
            if requestHead.headers.contains(name: "content-length") { requestHead.headers.remove(name: "content-length") }
        } else {
            requestHead.headers.replaceOrAdd(name: "content-length", value: String(length))
        }
        context.write(wrapOutboundOut(.head(requestHead)), promise: nil)
        if exchange.request.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(exchange.request.body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(exchange.request.trailers)), promise: promise)
    }

    /// GET, HEAD, DELETE, OPTIONS and TRACE.
    static func usuallyBodiless(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .DELETE, .OPTIONS, .TRACE: return true
        default: return false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            // 1xx interim responses are not forwarded.
            if responseHead.status.code >= 100 && responseHead.status.code < 200 { return }
            head = responseHead
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes > maxBodyBytes {
                fail(ProxyError(.upstream, "the upstream response body exceeds \(maxBodyBytes) bytes"), context: context)
                return
            }
            if body.readableBytes == 0 {
                // Most responses arrive in one chunk: it is kept as it came, not copied.
                body = chunk
            } else {
                body.writeBuffer(&chunk)
            }
        case .end(let trailers):
            guard let head, let pending else { return }
            self.pending = nil
            self.head = nil
            let response = BufferedResponse(head: head, body: body, trailers: trailers)
            body = ByteBuffer()
            pending.complete(.success(response))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        if let pending {
            self.pending = nil
            pending.complete(.failure(head == nil && body.readableBytes == 0 ? UpstreamClosed() : ProxyError(.upstream, "the upstream closed the connection in the middle of its response")))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        if let pending {
            self.pending = nil
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

/// The upstream did not finish its response within the request's timeout. The proxy answers
/// 504 with Envoy's `UT` response flag.
public struct UpstreamTimeout: Error, CustomStringConvertible {
    /// The timeout that passed.
    public let milliseconds: Int64

    public var description: String { "the upstream did not answer within \(milliseconds) ms" }
}

/// How a failed upstream exchange is answered and logged, as Envoy answers it: 504 `UT` for a
/// timeout, 503 `UF` for a connection that failed or was reset before the response.
struct UpstreamFailure {
    let status: HTTPResponseStatus
    let flags: String
    let details: String
    let body: String

    /// `showError` adds the error to the body: the outbound side tells its own application what
    /// failed; the inbound side does not tell a remote client about the application behind it.
    init(_ error: any Error, resetDetails: String, showError: Bool) {
        if error is UpstreamTimeout {
            status = .gatewayTimeout
            flags = "UT"
            details = "upstream_response_timeout"
            body = "upstream request timeout\n"
        } else {
            status = .serviceUnavailable
            flags = "UF"
            details = resetDetails
            body = "upstream connect error or disconnect/reset before headers" + (showError ? ": \(error)\n" : "\n")
        }
    }

    /// Records the failure and makes the local response.
    func answer(_ record: inout RequestRecord) -> BufferedResponse {
        record.responseFlags = flags
        record.responseDetails = details
        return .local(status, body)
    }
}

/// The upstream closed the connection before sending any of its response.
struct UpstreamClosed: Error, CustomStringConvertible {
    var description: String { "the upstream closed the connection before answering" }
}

/// Runs `body` on a value in place (a dictionary's `default:` subscript yields its slot once).
@inline(__always)
private func modify<Value>(_ value: inout Value, _ body: (inout Value) -> Void) {
    body(&value)
}
