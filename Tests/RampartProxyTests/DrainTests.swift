import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization
@testable import RampartProxy
import Testing

/// What a listener's open connections see when the proxy starts draining (SIGTERM): HTTP/1.1
/// answers end their connection with `connection: close`, HTTP/2 connections get GOAWAY and close
/// once their streams have ended, both well before the drain period's forced close.
extension DataPathTests {
    /// Starts the proxy's graceful shutdown and waits until its inbound listener stops accepting.
    static func startDraining(_ proxy: TestProxy) async throws {
        await proxy.group.triggerGracefulShutdown()
        for _ in 0..<200 {
            let refused = (try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: proxy.inboundPort).get().close()) == nil
            if refused { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ProxyError(.badConfiguration, "the inbound listener still accepted connections 2 s after the shutdown began")
    }

    @Test("draining: an HTTP/1.1 connection's next answer carries connection: close and the connection ends")
    func drainHTTP1() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            func connect() async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
                let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: proxy.inboundPort) { channel in
                        channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                    }
                let channel = client.channel
                channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
                return client
            }
            // One connection has had an answer before the drain; the other has sent nothing yet, so
            // the proxy does not know its protocol when the drain begins.
            let used = try await connect()
            let silent = try await connect()
            let (first, second, closedAfter) = try await used.executeThenClose { inbound, outbound in
                var chunks = inbound.makeAsyncIterator()
                try await outbound.write(ByteBuffer(string: "GET /before HTTP/1.1\r\nHost: app\r\n\r\n"))
                var first = ""
                while !Self.isWholeResponse(first), let chunk = try await chunks.next() { first += String(buffer: chunk) }

                try await Self.startDraining(proxy)
                let started = ContinuousClock.now
                try await outbound.write(ByteBuffer(string: "GET /during HTTP/1.1\r\nHost: app\r\n\r\n"))
                var second = ""
                while let chunk = try await chunks.next() { second += String(buffer: chunk) }
                return (first, second, ContinuousClock.now - started)
            }
            #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n") && !first.lowercased().contains("connection: close"), "\(first)")
            #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(second)")
            #expect(second.lowercased().contains("\r\nconnection: close\r\n"), "\(second)")
            #expect(second.contains("/during"))
            // Closed by the answer, not by the drain period's end (5 s).
            #expect(closedAfter < .seconds(3), "the connection closed \(closedAfter) after the request")

            let late = try await silent.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET /late HTTP/1.1\r\nHost: app\r\n\r\n"))
                var text = ""
                for try await chunk in inbound { text += String(buffer: chunk) }
                return text
            }
            #expect(late.hasPrefix("HTTP/1.1 200 OK\r\n") && late.lowercased().contains("\r\nconnection: close\r\n"), "\(late)")
        }
    }

    @Test("draining: an HTTP/2 connection gets GOAWAY, its open stream is still answered, then it closes")
    func drainHTTP2() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            let recorder = GoAwayRecorder()
            let (channel, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: proxy.inboundPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) { stream in
                            stream.eventLoop.makeSucceededVoidFuture()
                        }
                        try channel.pipeline.syncOperations.addHandler(recorder)
                        return (channel, multiplexer)
                    }
                }
            let watchdog = channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
            defer { watchdog.cancel() }
            func open() async throws -> NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload> {
                try await RawHTTP2.openStream(multiplexer)
            }
            // A first exchange, so that the connection is established before the drain.
            let head: [(String, String)] = [(":method", "GET"), (":scheme", "http"), (":authority", "app"), (":path", "/first")]
            let first = try await open().executeThenClose { inbound, outbound in
                try await outbound.write(.headers(.init(headers: HPACKHeaders(head), endStream: true)))
                for try await frame in inbound {
                    if case .headers(let block) = frame { return block.headers.first(name: ":status") }
                }
                return nil
            }
            #expect(first == "200")
            let headers: [(String, String)] = [(":method", "POST"), (":scheme", "http"), (":authority", "app"), (":path", "/in-flight")]
            let (status, body) = try await open().executeThenClose { inbound, outbound in
                // The request's headers go before the drain, its body after the first GOAWAY.
                try await outbound.write(.headers(.init(headers: HPACKHeaders(headers), endStream: false)))
                // A PING after them: once its ACK is back, the proxy has read the headers (and
                // opened the stream) before the drain begins.
                channel.writeAndFlush(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 42), ack: false)), promise: nil)
                for _ in 0..<300 where !recorder.acknowledged(42) { try await Task.sleep(for: .milliseconds(10)) }
                try await Self.startDraining(proxy)
                for _ in 0..<300 where recorder.frames.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
                try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(string: "body")), endStream: true)))
                var status: String?
                var body = ""
                for try await frame in inbound {
                    switch frame {
                    case .headers(let block):
                        status = status ?? block.headers.first(name: ":status")
                        if block.endStream { return (status, body) }
                    case .data(let data):
                        if case .byteBuffer(let bytes) = data.data { body += String(buffer: bytes) }
                        if data.endStream { return (status, body) }
                    default:
                        continue
                    }
                }
                return (status, body)
            }
            #expect(status == "200", "the stream opened before the drain was not answered: \(String(describing: status)) \(body)")
            #expect(body.contains("/in-flight"))
            let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try? await channel.closeFuture.get(); return true }
                group.addTask { try await Task.sleep(for: .seconds(3)); return false }
                let first = try await group.next() ?? false
                group.cancelAll()
                return first
            }
            #expect(closed, "the HTTP/2 connection was still open 3 s after its last stream ended")
            let frames = recorder.frames
            #expect(!frames.isEmpty, "no GOAWAY arrived")
            #expect(frames.allSatisfy { $0.code == .noError }, "\(frames)")
            // The last GOAWAY names the last stream the client opened, which was answered.
            #expect(frames.last?.lastStream == HTTP2StreamID(3), "\(frames)")
        }
    }

    @Test("draining: an HTTP/2 connection accepted before the drain but silent until after it is served, then told to go away")
    func drainLateHTTP2() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            // Everything the client writes (its preface first) is held until the drain has begun.
            let gate = WriteGate()
            let recorder = GoAwayRecorder()
            let (channel, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: proxy.inboundPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(gate)
                        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) { $0.eventLoop.makeSucceededVoidFuture() }
                        try channel.pipeline.syncOperations.addHandler(recorder)
                        return (channel, multiplexer)
                    }
                }
            let watchdog = channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
            defer { watchdog.cancel() }
            // A connection made after it and answered: the listener accepts in order, so the silent
            // one has been accepted (and not left in the backlog, which closing the listener resets).
            #expect(try await TestClient.plain(port: proxy.inboundPort).head.status == .ok)
            try await Self.startDraining(proxy)
            try await channel.eventLoop.submit { gate.open() }.get()
            let stream = try await RawHTTP2.openStream(multiplexer)
            let status = try await stream.executeThenClose { inbound, outbound in
                let head: [(String, String)] = [(":method", "GET"), (":scheme", "http"), (":authority", "app"), (":path", "/late")]
                try await outbound.write(.headers(.init(headers: HPACKHeaders(head), endStream: true)))
                for try await frame in inbound {
                    if case .headers(let block) = frame { return block.headers.first(name: ":status") }
                }
                return nil
            }
            #expect(status == "200")
            let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try? await channel.closeFuture.get(); return true }
                group.addTask { try await Task.sleep(for: .seconds(3)); return false }
                let first = try await group.next() ?? false
                group.cancelAll()
                return first
            }
            #expect(closed, "the late HTTP/2 connection was still open 3 s after its stream")
            #expect(!recorder.frames.isEmpty && recorder.frames.allSatisfy { $0.code == .noError }, "\(recorder.frames)")
        }
    }

    /// Whether `text` holds a whole response with a `content-length` body.
    static func isWholeResponse(_ text: String) -> Bool {
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<end.lowerBound].lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { return true }
        return text.utf8.count - text[..<end.upperBound].utf8.count >= length
    }
}

/// Records the GOAWAY frames and PING acknowledgements a client connection receives.
final class GoAwayRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    private let received = Mutex<[(lastStream: HTTP2StreamID, code: HTTP2ErrorCode)]>([])
    private let pings = Mutex<[HTTP2PingData]>([])

    var frames: [(lastStream: HTTP2StreamID, code: HTTP2ErrorCode)] { received.withLock { $0 } }

    func acknowledged(_ value: UInt64) -> Bool { pings.withLock { $0.contains(HTTP2PingData(withInteger: value)) } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data).payload {
        case .goAway(let lastStream, let code, _): received.withLock { $0.append((lastStream, code)) }
        case .ping(let data, ack: true): pings.withLock { $0.append(data) }
        default: break
        }
        context.fireChannelRead(data)
    }
}

/// Requests whose clients go away before their ends: recorded as Envoy records them.
extension DataPathTests {
    @Test("a request abandoned in the middle of its body is logged and counted with response code 0 and DC, over HTTP/1.1 and HTTP/2")
    func abandonedRequests() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-abandoned-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            // HTTP/1.1: ten of the thousand bytes promised, then the connection closes.
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: proxy.inboundPort) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            try await client.executeThenClose { _, outbound in
                try await outbound.write(ByteBuffer(string: "POST /upload-1 HTTP/1.1\r\nHost: app\r\nContent-Length: 1000\r\n\r\n0123456789"))
                try await Task.sleep(for: .milliseconds(100))
            }
            let http1 = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/upload-1" }
            #expect(http1["response_code"] as? Int == 0, "\(http1)")
            #expect(http1["response_flags"] as? String == "DC", "\(http1)")
            #expect(http1["response_code_details"] as? String == "downstream_remote_disconnect", "\(http1)")
            #expect(http1["method"] as? String == "POST", "\(http1)")
            // From the request's start, with what of its body came.
            #expect(http1["bytes_received"] as? Int == 10, "\(http1)")
            #expect((http1["duration"] as? Int ?? 0) >= 80, "\(http1)")

            // HTTP/2: a stream reset after part of its body.
            let (channel, multiplexer) = try await RawHTTP2.connect(port: proxy.inboundPort)
            defer { channel.close(promise: nil) }
            let stream = try await RawHTTP2.openStream(multiplexer)
            try await stream.executeThenClose { _, outbound in
                let head: [(String, String)] = [(":method", "PUT"), (":scheme", "http"), (":authority", "app"), (":path", "/upload-2"), ("content-length", "1000")]
                try await outbound.write(.headers(.init(headers: HPACKHeaders(head), endStream: false)))
                try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(string: "0123456789")), endStream: false)))
                try await Task.sleep(for: .milliseconds(100))
            }
            let http2 = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/upload-2" }
            #expect(http2["response_code"] as? Int == 0, "\(http2)")
            #expect(http2["response_flags"] as? String == "DC", "\(http2)")
            #expect(http2["protocol"] as? String == "HTTP/2", "\(http2)")
            #expect(http2["bytes_received"] as? Int == 10, "\(http2)")
        }
    }
}

/// A client that stops in the middle of its request, past the stream idle timeout.
@Suite("Stalled requests through a live proxy")
struct StalledRequestTests {
    @Test("a request stalled in its body past the stream idle timeout gets 408 stream timeout, logged SI, and its connection ends")
    func answered408() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let log = "\(mesh.directory)/stalled-access.log"
        let proxy = try await mesh.serverProxy(
            appPort: app.port, logFile: log, idleTimeouts: IdleTimeouts(stalledRequest: .milliseconds(300)), permissive: true)
        defer { Task { await proxy.stop(); try? await app.serverChannel.close() } }

        // HTTP/1.1: three of the ten bytes promised, then nothing.
        let received = try await RawClient.untilClosed(
            port: proxy.inboundPort, sending: "POST /stalled-1 HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nabc")
        #expect(received.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(received)")
        #expect(received.hasSuffix("\r\n\r\nstream timeout"), "\(received)")
        #expect(received.lowercased().contains("connection: close"), "\(received)")
        let http1 = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/stalled-1" }
        #expect(http1["response_code"] as? Int == 408, "\(http1)")
        #expect(http1["response_flags"] as? String == "SI", "\(http1)")
        #expect(http1["response_code_details"] as? String == "stream_idle_timeout", "\(http1)")
        #expect(http1["bytes_received"] as? Int == 3, "\(http1)")
        #expect((http1["duration"] as? Int ?? 0) >= 250, "\(http1)")

        // HTTP/2: a stream whose body stops; the answer comes on the stream, then it ends.
        let (channel, multiplexer) = try await RawHTTP2.connect(port: proxy.inboundPort)
        defer { channel.close(promise: nil) }
        let watchdog = channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        let stream = try await RawHTTP2.openStream(multiplexer)
        let status = try await stream.executeThenClose { inbound, outbound in
            let head: [(String, String)] = [(":method", "PUT"), (":scheme", "http"), (":authority", "app"), (":path", "/stalled-2")]
            try await outbound.write(.headers(.init(headers: HPACKHeaders(head), endStream: false)))
            try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(string: "abc")), endStream: false)))
            for try await frame in inbound {
                if case .headers(let block) = frame { return block.headers.first(name: ":status") }
            }
            return nil
        }
        #expect(status == "408")
        let http2 = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/stalled-2" }
        #expect(http2["response_flags"] as? String == "SI", "\(http2)")
    }
}

/// An HTTP/2 application that answers each request with the number of its connection (in the
/// order accepted), then, after its first answer, sends GOAWAY and keeps its socket open: a peer
/// that drains. With `drains` false it never sends GOAWAY.
final class DrainingApp: Sendable {
    typealias Stream = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    let listener: NIOAsyncChannel<NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>, Never>
    var port: Int { listener.channel.localAddress?.port ?? 0 }
    /// Connections accepted, GOAWAYs sent, and connections the client has closed.
    let connections = SelectiveServer.Tally()
    let goAways = SelectiveServer.Tally()
    let closed = SelectiveServer.Tally()
    private let drains: Bool

    init(drains: Bool = true) async throws {
        self.drains = drains
        let closed = self.closed
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.closeFuture.whenComplete { _ in closed.add() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            return try Stream(wrappingChannelSynchronously: stream)
                        }
                    }
                }
            }
    }

    func run() async {
        let connections = self.connections
        await LoopbackHTTP.runHTTP2(listener, accepted: { connections.add() }) { stream, number in
            await self.serve(stream, connection: number)
        }
    }

    private func serve(_ stream: Stream, connection: Int) async {
        try? await stream.executeThenClose { inbound, _ in
            for try await part in inbound {
                guard case .end = part else { continue }
                let channel = stream.channel
                let body = ByteBuffer(string: "connection \(connection)")
                channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: .ok, headers: ["content-length": "\(body.readableBytes)"])), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
                try await channel.writeAndFlush(HTTPServerResponsePart.end(nil))
                if drains, goAways.value == 0, let parent = channel.parent {
                    try await parent.writeAndFlush(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil)))
                    goAways.add()
                }
                return
            }
        }
    }
}

@Suite("An upstream that drains")
struct UpstreamDrainTests {
    @Test("after an HTTP/2 upstream's GOAWAY, the next request goes on a new connection without failing, and the old one is closed")
    func newConnectionAfterGoAway() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await DrainingApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let proxy = try await mesh.serverProxy(appPort: app.port, appProtocol: .http2, permissive: true)
        defer { Task { await proxy.stop(); try? await app.listener.channel.close() } }

        let first = try await TestClient.plain(port: proxy.inboundPort, path: "/one")
        #expect(first.head.status == .ok && String(buffer: first.body) == "connection 1")
        for _ in 0..<200 where app.goAways.value == 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(300))
        // Each request comes on a client connection of its own, whose event loop has its own
        // HTTP/2 connection to the application (see `UpstreamClient.multiplexedConnection`): the
        // requests after the GOAWAY go on new connections, one per loop they come through.
        var used: Set<String> = []
        for index in 2...5 {
            let next = try await TestClient.plain(port: proxy.inboundPort, path: "/next-\(index)")
            #expect(next.head.status == .ok, "request \(index) after the GOAWAY: \(next.head.status) \(String(buffer: next.body))")
            let answered = String(buffer: next.body)
            #expect(answered.hasPrefix("connection ") && answered != "connection 1", "\(answered)")
            used.insert(answered)
        }
        #expect(used.count <= System.coreCount)
        // The drained connection, with no stream left, is closed by the proxy.
        for _ in 0..<200 where app.closed.value == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(app.closed.value == 1)
        // No connection was opened that no request needed.
        #expect(app.connections.value == 1 + used.count)
    }

    @Test("each event loop has an HTTP/2 connection of its own to an upstream, which the requests of its tasks share")
    func connectionPerLoop() async throws {
        let app = try await DrainingApp(drains: false)
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let client = UpstreamClient(group: group, maxBodyBytes: 1 << 16)
        let target = UpstreamTarget(host: "127.0.0.1", port: app.port, http2: true)
        @Sendable func send(_ path: String) async throws -> String {
            let result = try await client.send(TestClient.request(path: path, host: "app", headers: []), to: target)
            #expect(result.response.head.status == .ok)
            return String(buffer: result.response.body)
        }
        var answers: [[String]] = []
        for (index, loop) in group.makeIterator().enumerated() {
            let answered = try await Task(executorPreference: EventLoopExecutor(loop)) {
                [try await send("/loop-\(index)-a"), try await send("/loop-\(index)-b")]
            }.value
            answers.append(answered)
        }
        #expect(answers == [["connection 1", "connection 1"], ["connection 2", "connection 2"]])
        // Callers off the group's loops share one more connection.
        #expect(try await send("/off-a") == "connection 3")
        #expect(try await send("/off-b") == "connection 3")
        #expect(app.connections.value == 3)
        client.shutdown()
        try await app.listener.channel.close()
        try await group.shutdownGracefully()
    }

    @Test("a stream the peer never processed (opened after its GOAWAY, or refused) is one an exchange may send again")
    func unprocessedStreams() {
        #expect(UpstreamClient.unprocessed(NIOHTTP2Errors.createdStreamAfterGoaway()))
        #expect(UpstreamClient.unprocessed(NIOHTTP2Errors.streamClosed(streamID: HTTP2StreamID(3), errorCode: .refusedStream)))
        #expect(!UpstreamClient.unprocessed(NIOHTTP2Errors.streamClosed(streamID: HTTP2StreamID(3), errorCode: .cancel)))
        #expect(!UpstreamClient.unprocessed(NIOHTTP2Errors.ioOnClosedConnection()))
        #expect(!UpstreamClient.unprocessed(UpstreamTimeout(milliseconds: 10)))
    }
}

/// Holds a client connection's writes until it is opened, then lets them go in order.
final class WriteGate: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = Any

    private var held: [(NIOAny, EventLoopPromise<Void>?)] = []
    private var context: ChannelHandlerContext?
    private var isOpen = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if isOpen { context.write(data, promise: promise) } else { held.append((data, promise)) }
    }

    func flush(context: ChannelHandlerContext) {
        if isOpen { context.flush() }
    }

    /// Lets the held writes go; called on the channel's event loop.
    func open() {
        guard let context, !isOpen else { return }
        isOpen = true
        for (data, promise) in held { context.write(data, promise: promise) }
        held.removeAll()
        context.flush()
    }
}
