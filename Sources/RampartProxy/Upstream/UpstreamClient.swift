import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
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
    /// The server name the ClientHello asks for (SNI), as Istio's sidecars name the service they
    /// call (`outbound_.8080_._.reviews.bookinfo.svc.cluster.local`); `nil` sends none.
    public let serverName: String?

    /// Creates an origination.
    public init(generation: Int, verifier: PeerVerifier, context: NIOSSLContext, serverName: String? = nil) {
        self.generation = generation
        self.verifier = verifier
        self.context = context
        self.serverName = serverName
    }

    public static func == (lhs: TLSOrigination, rhs: TLSOrigination) -> Bool {
        lhs.generation == rhs.generation && lhs.serverName == rhs.serverName && lhs.verifier.expected == rhs.verifier.expected
            && lhs.verifier.revoked == rhs.verifier.revoked
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
/// A request goes with the body it holds, and the rest of an upload as the client sends it (see
/// `StreamedUpload`); responses are held whole (up to `maxBodyBytes`), unless the caller asks for
/// them streamed (see `send(_:to:timeout:on:streamsResponse:completion:)`). A connection goes
/// back to the pool after a response both sides allow to keep alive, once all of its request
/// went; a failure closes it.
public final class UpstreamClient: Sendable {
    private struct Pooled: Sendable {
        let channel: any Channel
        let peer: VerifiedPeer?
    }

    /// An HTTP/2 connection, shared by every request to its target from one event loop's tasks
    /// (see `multiplexedConnection`).
    private struct Multiplexed: Sendable {
        let channel: any Channel
        let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
        let peer: VerifiedPeer?
        /// The pool entry it fills.
        let key: PoolKey
    }

    /// Connections are kept per target and per event loop (idle HTTP/1.1 ones, and one HTTP/2
    /// connection): a request takes one of the loop its own task runs on, so the exchange
    /// completes without a hop to another thread. Callers that run off the group's loops share
    /// one pool (`loop` nil).
    private struct PoolKey: Hashable {
        let target: UpstreamTarget
        let loop: ObjectIdentifier?
    }

    let group: any EventLoopGroup
    /// The group's loops (a handful: one per core), searched in order.
    private let loops: [ObjectIdentifier]
    private let idle = Mutex<[PoolKey: [Pooled]]>([:])
    private let multiplexed = Mutex<[PoolKey: Multiplexed]>([:])
    private let maxIdlePerTarget: Int
    let maxBodyBytes: Int
    private let connectTimeout: TimeAmount
    /// How long an upstream may send nothing while its response is awaited: Envoy's
    /// `stream_idle_timeout`, which bounds an exchange that has no timeout of its own.
    let streamIdleTimeout: TimeAmount

    /// Creates a client.
    public init(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxIdlePerTarget: Int = 256, maxBodyBytes: Int,
        connectTimeout: TimeAmount = .seconds(5), streamIdleTimeout: TimeAmount = .minutes(5)
    ) {
        self.group = group
        self.loops = group.makeIterator().map { ObjectIdentifier($0) }
        self.maxIdlePerTarget = maxIdlePerTarget
        self.maxBodyBytes = maxBodyBytes
        self.connectTimeout = connectTimeout
        self.streamIdleTimeout = streamIdleTimeout
    }

    /// Sends a request and waits for the whole response. A `timeout` of zero sets none (the
    /// upstream's silence is still bounded by the stream idle timeout).
    public func send(_ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount = .seconds(60)) async throws -> UpstreamResult {
        if target.http2 { return try await sendHTTP2(request, to: target, timeout: timeout) }
        let current = currentLoop()
        let loop = current ?? group.next()
        let promise = loop.makePromise(of: UpstreamResult.self)
        send(request, to: target, timeout: timeout, poolLoop: current, on: loop, streams: false) { promise.completeWith($0) }
        return try await promise.futureResult.get()
    }

    /// Sends a request from code running on `loop` (a connection's channel handlers), and calls
    /// `completion` with the response or the failure.
    ///
    /// When `loop` is one of the group's, the request takes an idle connection of that loop's
    /// pool: an exchange on a pooled connection is then a write and a read on the one thread,
    /// with no task and no future, and `completion` runs on `loop`. Opening a connection, and
    /// HTTP/2, run as tasks (HTTP/2 on `loop`, with that loop's connection); their `completion`
    /// may run on another thread.
    ///
    /// With `streamsResponse`, a response whose body does not come whole with its head is passed
    /// on at its head, its body to follow as it arrives (see `StreamedBody`), as Envoy passes a
    /// response on; the connection is pooled (or the HTTP/2 stream closed) once that body has ended.
    /// Without it, the response is held whole, up to the client's `maxBodyBytes`.
    public func send(
        _ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount = .seconds(60), on loop: any EventLoop,
        streamsResponse: Bool = false, completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        if target.http2 {
            // On the caller's loop, so that it takes that loop's HTTP/2 connection.
            let preferred: (any TaskExecutor)? = loops.contains(ObjectIdentifier(loop)) ? EventLoopExecutor(loop) : nil
            Task(executorPreference: preferred) {
                do {
                    completion(.success(try await self.sendHTTP2(request, to: target, timeout: timeout, streams: streamsResponse)))
                } catch {
                    completion(.failure(error))
                }
            }
            return
        }
        let own = loops.contains(ObjectIdentifier(loop)) ? loop : nil
        send(request, to: target, timeout: timeout, poolLoop: own, on: own ?? group.next(), streams: streamsResponse, completion: completion)
    }

    /// The HTTP/1.1 exchange: an idle connection of `poolLoop`'s pool (the shared pool when nil),
    /// or a new one on `loop`.
    private func send(
        _ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount, poolLoop: (any EventLoop)?, on loop: any EventLoop,
        streams: Bool, completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        var request = request
        if request.head.version.major == 2 { request.head.version = .http1_1 }
        let key = PoolKey(target: target, loop: poolLoop.map { ObjectIdentifier($0) })
        guard let pooled = takeIdle(key) else {
            exchangeOnNewConnection(request, key: key, on: loop, timeout: timeout, streams: streams, completion: completion)
            return
        }
        // An upload is sent again only while what was taken of it is kept (see `StreamedUpload`).
        let retry = Self.idempotent.contains(request.head.method.rawValue)
        exchange(request, on: pooled, key: key, timeout: timeout, streams: streams) { [request] result in
            // A pooled connection the server closed while it sat idle: the server answered
            // nothing, so an idempotent request is sent once more on a new connection.
            if retry, case .failure(let error) = result, error is UpstreamClosed, request.cancellation?.isCancelled != true,
                request.upload?.canSendAgain != false
            {
                self.exchangeOnNewConnection(request, key: key, on: loop, timeout: timeout, streams: streams, completion: completion)
            } else {
                completion(result)
            }
        }
    }

    private func exchangeOnNewConnection(
        _ request: BufferedRequest, key: PoolKey, on loop: any EventLoop, timeout: TimeAmount, streams: Bool,
        completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        Task {
            do {
                let connection = try await self.connect(key.target, on: loop)
                self.exchange(request, on: connection, key: key, timeout: timeout, streams: streams, completion: completion)
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
        _ request: BufferedRequest, on connection: Pooled, key: PoolKey, timeout: TimeAmount, streams: Bool,
        completion: @escaping @Sendable (Result<UpstreamResult, any Error>) -> Void
    ) {
        let channel = connection.channel
        exchange(request, on: channel, timeout: timeout, streams: streams) { result in
            switch result {
            case .success(let response):
                // The request's headers were edited for forwarding: read without NIO's canonical form.
                let keepAlive = HopByHop.isKeepAlive(request.head.headers, version: request.head.version) && response.head.isKeepAlive
                if let streamed = response.streamed {
                    // Pooled once the body has ended, closed if it did not, or if the request did
                    // not (an upload whose rest was not sent leaves the connection inside it).
                    streamed.whenSettled { clean in
                        if clean && keepAlive && request.upload?.isTakenWhole != false && channel.isActive {
                            request.cancellation?.release(channel)
                            self.release(connection, key: key)
                        } else {
                            channel.close(promise: nil)
                        }
                    }
                } else if keepAlive && request.upload?.isTakenWhole != false && channel.isActive {
                    request.cancellation?.release(channel)
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

    private func sendHTTP2(_ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount, streams: Bool = false) async throws -> UpstreamResult {
        do {
            return try await sendHTTP2Once(request, to: target, timeout: timeout, streams: streams)
        } catch where Self.unprocessed(error) && request.upload?.canSendAgain != false {
            // The peer began draining as the stream opened, and never processed it (RFC 9113
            // §8.7): sent again, on a new connection, whatever its method, as Envoy sends it.
            return try await sendHTTP2Once(request, to: target, timeout: timeout, streams: streams)
        } catch let error as NIOHTTP2Errors.IOOnClosedConnection
            where Self.idempotent.contains(request.head.method.rawValue) && request.upload?.canSendAgain != false
        {
            // Refused by a connection that had just closed, or received GOAWAY, before this side
            // read it: a request that may be repeated is sent on a new connection.
            _ = error
            return try await sendHTTP2Once(request, to: target, timeout: timeout, streams: streams)
        }
    }

    /// Whether an HTTP/2 exchange failed before the peer processed its stream: the stream was
    /// opened after the peer's GOAWAY, or the peer refused it.
    static func unprocessed(_ error: any Error) -> Bool {
        if error is NIOHTTP2Errors.CreatedStreamAfterGoaway { return true }
        if let closed = error as? NIOHTTP2Errors.StreamClosed, closed.errorCode == .refusedStream { return true }
        return false
    }

    private func sendHTTP2Once(_ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount, streams: Bool) async throws -> UpstreamResult {
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
            forget(connection)
            retireIfBroken(connection, after: error)
            throw ProxyError(.upstream, "cannot open an HTTP/2 stream to \(target.host):\(target.port): \(error)")
        }
        do {
            let response = try await exchange(request, on: stream, timeout: timeout, streams: streams)
            if let streamed = response.streamed {
                // The stream ends with the body that follows.
                streamed.whenSettled { _ in stream.close(promise: nil) }
            } else {
                stream.close(promise: nil)
            }
            return UpstreamResult(response: response, peer: connection.peer)
        } catch {
            stream.close(promise: nil)
            retireIfBroken(connection, after: error)
            throw error
        }
    }

    /// Takes a multiplexed connection out of the pool after an error that leaves it unable to
    /// carry new streams (closing it after an HTTP/2 connection error; after the peer's GOAWAY,
    /// `GoAwayWatcher` closes it once its streams end). Otherwise every later request would be
    /// sent on it and fail the same way.
    private func retireIfBroken(_ connection: Multiplexed, after error: any Error) {
        // A stream the application reset (one gRPC call cancelled) leaves the connection fine.
        if error is NIOHTTP2Errors.CreatedStreamAfterGoaway {
            // Draining: its open streams finish, then `GoAwayWatcher` closes it.
            forget(connection)
            return
        }
        guard error is NIOHTTP2Errors.IOOnClosedConnection else { return }
        forget(connection)
        connection.channel.close(promise: nil)
    }

    /// Opens an HTTP/2 stream to `target` for a call relayed as it arrives (see `StreamRelay`),
    /// and runs `body` with the stream (to write the request's parts into), its response's parts
    /// (those of each read together) and the verified server; the stream is closed when `body`
    /// returns.
    ///
    /// The stream fails with `UpstreamTimeout` once `timeout` (when not zero) has passed, and with
    /// `UpstreamIdleTimeout` once nothing has gone either way for the stream idle timeout, as
    /// Envoy's route timeout and `stream_idle_timeout` bound a stream.
    func relayStream<Result: Sendable>(
        to target: UpstreamTarget, timeout: TimeAmount, _ body: (any Channel, UpstreamResponses, VerifiedPeer?) async throws -> Result
    ) async throws -> Result {
        let connection = try await multiplexedConnection(target)
        let idle = streamIdleTimeout
        let responses: UpstreamResponses
        do {
            responses = try await connection.multiplexer.openStream { streamChannel in
                streamChannel.eventLoop.makeCompletedFuture {
                    try streamChannel.pipeline.syncOperations.addHandler(IdleTimer(allTimeout: idle))
                    try streamChannel.pipeline.syncOperations.addHandler(
                        HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: target.tls == nil ? .http : .https))
                    try streamChannel.pipeline.syncOperations.addHandler(RelayedStreamLimits(timeout: timeout, idle: idle))
                    let inbox = UpstreamResponseInbox()
                    try streamChannel.pipeline.syncOperations.addHandler(inbox)
                    return UpstreamResponses(channel: streamChannel, inbox: inbox)
                }
            }
        } catch {
            forget(connection)
            retireIfBroken(connection, after: error)
            throw ProxyError(.upstream, "cannot open an HTTP/2 stream to \(target.host):\(target.port): \(error)")
        }
        let channel = responses.channel
        defer { channel.close(promise: nil) }
        do {
            return try await body(channel, responses, connection.peer)
        } catch {
            retireIfBroken(connection, after: error)
            throw error
        }
    }

    /// The HTTP/2 connection to `target` of the calling task's event loop, opened on that loop
    /// when there is none: each loop has its own, as each Envoy worker has its own pool, so that a
    /// stream's frames, the connection's and the task that waits for them share one thread.
    /// Callers off the group's loops share one connection, opened on the group's next loop.
    private func multiplexedConnection(_ target: UpstreamTarget) async throws -> Multiplexed {
        let current = currentLoop()
        let key = PoolKey(target: target, loop: current.map { ObjectIdentifier($0) })
        if let existing = multiplexed.withLock({ $0[key] }), existing.channel.isActive { return existing }
        let (connected, peer) = try await open(target, on: current ?? group.next()) { channel in
            var configuration = NIOHTTP2Handler.Configuration()
            // Responses' headers and trailers up to Envoy's 60 KiB, as the listeners take requests'.
            configuration.connection.initialSettings = [
                HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
                HTTP2Setting(parameter: .maxHeaderListSize, value: Listening.headerListBytes),
            ]
            let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client, configuration: configuration) { stream in
                stream.eventLoop.makeSucceededVoidFuture()
            }
            // A peer that drains (GOAWAY) takes no new streams: later requests go on a new
            // connection at once, while the streams already open finish on this one.
            try channel.pipeline.syncOperations.addHandler(GoAwayWatcher { [weak self] in self?.forget(channel: channel, key: key) })
            return (channel, multiplexer)
        }
        let fresh = Multiplexed(channel: connected.0, multiplexer: connected.1, peer: peer, key: key)
        let chosen = multiplexed.withLock { pool -> Multiplexed in
            if let existing = pool[key], existing.channel.isActive { return existing }
            pool[key] = fresh
            return fresh
        }
        if chosen.channel !== fresh.channel {
            fresh.channel.close(promise: nil)
        } else {
            fresh.channel.closeFuture.whenComplete { [weak self] _ in self?.forget(fresh) }
        }
        return chosen
    }

    private func forget(channel: any Channel, key: PoolKey) {
        multiplexed.withLock { pool in
            if let current = pool[key], current.channel === channel { pool[key] = nil }
        }
    }

    private func forget(_ connection: Multiplexed) {
        forget(channel: connection.channel, key: connection.key)
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
            // side copied into headers, and are checked (see `PlaintextRequestCheck`).
            try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
            if target.tls == nil { try channel.pipeline.syncOperations.addHandler(PlaintextRequestCheck()) }
            try channel.pipeline.syncOperations.addHandler(UpstreamExchangeHandler(maxBodyBytes: maxBodyBytes))
            return channel
        }
        return Pooled(channel: channel, peer: peer)
    }

    /// Connects to `target`, with mTLS when it asks for it, lets `configure` build the rest of the
    /// pipeline, and waits for the handshake, so a refused server identity is reported as such
    /// rather than as a broken exchange. Returns what `configure` built and the verified server.
    func open<Output: Sendable>(
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
                                context: tls.context, serverHostname: tls.serverName, customVerificationCallbackWithMetadata: tls.verifier.callback(box: box)
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
            throw ProxyError(.upstreamConnect, "cannot connect to \(target.host):\(target.port): \(error)")
        }
        if let handshake {
            do {
                try await handshake.futureResult.get()
            } catch {
                channel.close(promise: nil)
                throw ProxyError(.upstreamConnect, "mTLS to \(target.host):\(target.port) failed: \(box.refusal ?? TLSFailureText.describe(error))")
            }
        }
        return (output, box.peer)
    }

    /// Writes one exchange into `channel` (whose last handler is an ``UpstreamExchangeHandler``).
    private func exchange(
        _ request: BufferedRequest, on channel: any Channel, timeout: TimeAmount, streams: Bool,
        completion: @escaping @Sendable (Result<BufferedResponse, any Error>) -> Void
    ) {
        let exchange = UpstreamExchange(
            request: request, completion: completion, deadline: timeout > .zero ? .now() + timeout : .distantFuture, timeout: timeout,
            idle: streamIdleTimeout, streams: streams)
        // A client gone before the answer ends the exchange: the connection (or HTTP/2 stream) is
        // closed, so the application sees the request abandoned, as Envoy resets it; the
        // exchange's handler then fails it, on the connection's own loop.
        request.cancellation?.closing(channel)
        if channel.eventLoop.inEventLoop && channel.isActive {
            // On the channel's own thread an open channel hands the write to its handler at
            // once; a failure after that reaches the handler, which completes the exchange. The
            // exchange is wrapped here, where its type is known: `Channel.writeAndFlush` would
            // wrap it in generic code, testing it against NIO's buffer types at run time.
            channel.pipeline.syncOperations.writeAndFlush(NIOAny(exchange), promise: nil)
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
    private func exchange(_ request: BufferedRequest, on stream: any Channel, timeout: TimeAmount, streams: Bool) async throws -> BufferedResponse {
        let promise = stream.eventLoop.makePromise(of: BufferedResponse.self)
        exchange(request, on: stream, timeout: timeout, streams: streams) { promise.completeWith($0) }
        return try await promise.futureResult.get()
    }
}

/// Runs `body` on a value in place (a dictionary's `default:` subscript yields its slot once).
@inline(__always)
private func modify<Value>(_ value: inout Value, _ body: (inout Value) -> Void) {
    body(&value)
}
