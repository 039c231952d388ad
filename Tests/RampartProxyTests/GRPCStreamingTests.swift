import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization
import Testing

@testable import RampartProxy

/// gRPC calls relayed as their messages come: a bidirectional call whose client waits for each
/// reply, a server-streaming call whose client reads each message before the next is sent, and
/// request bodies past the limit that bodies held whole have.
@Suite("gRPC streaming through the proxies")
struct GRPCStreamingTests {
    /// A client proxy and a server proxy with `StreamingApp` behind it, the client's outbound
    /// side knowing the server as `server:8080`.
    func withMesh(
        policies: [(kind: String, namespace: String, name: String, yaml: String)] = [], logFile: String? = nil,
        appProtocol: AppProtocol = .auto, serverName: String = "server-v1", reportingInterval: TimeAmount = .seconds(15),
        _ body: (_ app: StreamingApp, _ outboundPort: Int, _ inboundPort: Int, _ clientIdentity: String) async throws -> Void
    ) async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await StreamingApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let serverProxy = try await TestProxy(
            workload: WorkloadInfo(name: serverName, namespace: "default", labels: ["app": "server"], appPort: app.port),
            identityDirectory: server.directory, appPort: app.port, logFile: logFile, appProtocol: appProtocol,
            reportingInterval: reportingInterval)
        try serverProxy.install(SnapshotBuilder.snapshot(resources: policies))
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
        let clientProxy = try await TestProxy(
            workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1)
        try clientProxy.install(
            SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, serverName)])]))
        do {
            try await body(app, clientProxy.outboundPort, serverProxy.inboundPort, client.directory)
        } catch {
            await clientProxy.stop()
            await serverProxy.stop()
            try? await app.serverChannel.close()
            throw error
        }
        await clientProxy.stop()
        await serverProxy.stop()
        try? await app.serverChannel.close()
    }

    @Test("a bidirectional call whose client waits for each reply before its next message goes through both proxies")
    func pingPong() async throws {
        try await withMesh { _, outboundPort, _, _ in
            try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/PingPong") { call in
                for round in 1...3 {
                    try await call.send("ping \(round)")
                    // Held whole, the call would stop here: the reply comes only while the call is open.
                    #expect(try await call.receive() == "pong: ping \(round)")
                }
                let status = try await call.finish()
                #expect(status.first(name: "grpc-status") == "0")
                #expect(status.first(name: "grpc-message") == "3 messages")
            }
        }
    }

    @Test("messages larger than HTTP/2's flow-control windows cross both ways, on many calls at once")
    func largeMessagesConcurrently() async throws {
        try await withMesh { _, outboundPort, _, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for call in 0..<8 {
                    let letter = UInt8(ascii: "a") + UInt8(call)
                    group.addTask {
                        try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/PingPong") { stream in
                            // 300 KB each way: past the 64 KiB windows of every hop.
                            for round in 0..<2 {
                                let message = String(decoding: [UInt8](repeating: letter + UInt8(round), count: 300_000), as: UTF8.self)
                                try await stream.send(message)
                                #expect(try await stream.receive() == "pong: " + message)
                            }
                            #expect(try await stream.finish().first(name: "grpc-status") == "0")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("a server-streaming call's messages reach the client one by one, each before the application sends the next")
    func serverStreaming() async throws {
        try await withMesh { app, outboundPort, _, _ in
            try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/Countdown") { call in
                try await call.send("3")
                try await call.endRequest()
                for tick in (1...3).reversed() {
                    #expect(try await call.receive() == "tick \(tick)")
                    // The application sends the next tick only once this one has arrived.
                    app.gate.open()
                }
                let status = try await call.trailers()
                #expect(status.first(name: "grpc-status") == "0")
            }
        }
    }

    @Test("a client-streaming call larger than the limit on bodies held whole goes through, and a trailers-only error comes back as one")
    func largeAndTrailersOnly() async throws {
        try await withMesh { _, outboundPort, _, _ in
            // TestProxy holds bodies up to 1 MiB; this call sends 3 MiB in 48 messages.
            try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/Count") { call in
                let message = String(repeating: "m", count: 64 * 1024)
                for _ in 0..<48 { try await call.send(message) }
                try await call.endRequest()
                #expect(try await call.receive() == "\(48 * 64 * 1024) bytes in 48 messages")
                #expect(try await call.trailers().first(name: "grpc-status") == "0")
            }
            let failed = try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/Missing") { call in
                try await call.endRequest()
                return try await call.responseFrames()
            }
            #expect(failed.count == 1, "\(failed)")
            if case .headers(let only)? = failed.first {
                #expect(only.endStream && only.headers.first(name: "grpc-status") == "5" && only.headers.first(name: ":status") == "200")
            }
        }
    }

    @Test("a call's grpc-timeout bounds it: past the deadline the client gets DEADLINE_EXCEEDED, logged UT")
    func callDeadline() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-deadline-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        try await withMesh(logFile: log) { app, outboundPort, inboundPort, _ in
            /// Calls `/Hold` at `port` with a 300 ms deadline; returns its only HEADERS frame and how long it took.
            func holdWithDeadline(port: Int) async throws -> (HPACKHeaders?, Duration) {
                let started = ContinuousClock.now
                let frames = try await GRPCStreamClient.call(port: port, path: "/test.Stream/Hold", headers: [("grpc-timeout", "300m")]) { call in
                    try await call.send("wait")
                    try await call.endRequest()
                    return try await call.responseFrames()
                }
                guard frames.count == 1, case .headers(let only) = frames[0], only.endStream else {
                    Issue.record("expected one HEADERS frame ending the stream, got \(frames)")
                    return (nil, ContinuousClock.now - started)
                }
                return (only.headers, ContinuousClock.now - started)
            }
            // To the server's proxy directly: its own deadline answers, and its access log says so.
            let (direct, took) = try await holdWithDeadline(port: inboundPort)
            #expect(direct?.first(name: ":status") == "200", "\(String(describing: direct))")
            #expect(direct?.first(name: "grpc-status") == "4", "\(String(describing: direct))")
            #expect(direct?.first(name: "grpc-message") == "upstream request timeout", "\(String(describing: direct))")
            #expect(took >= .milliseconds(250) && took < .seconds(5), "the call ended after \(took)")
            var entry: [String: Any] = [:]
            for _ in 0..<100 where entry.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                let first = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").first
                entry = first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
            }
            #expect(entry["response_flags"] as? String == "UT", "\(entry)")
            #expect(entry["response_code_details"] as? String == "upstream_response_timeout", "\(entry)")

            // Through both proxies: the header travels with the call, and the client gets the same status.
            let (relayed, relayedTook) = try await holdWithDeadline(port: outboundPort)
            #expect(relayed?.first(name: "grpc-status") == "4", "\(String(describing: relayed))")
            #expect(relayedTook < .seconds(5), "the call ended after \(relayedTook)")

            // Without the header, the same call waits for the application (the two calls before
            // still wait for the gate in the application, and take one opening each).
            for _ in 0..<3 { app.gate.open() }
            let released = try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/Hold") { call in
                try await call.endRequest()
                return try await call.trailers()
            }
            #expect(released.first(name: "grpc-status") == "0", "\(released)")
        }
    }

    @Test("a denied streaming call gets PERMISSION_DENIED at once, and the application never sees it")
    func denied() async throws {
        let deny = SnapshotBuilder.authorizationPolicy(
            name: "no-pingpong", namespace: "default",
            body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/test.Stream/PingPong\"]")
        try await withMesh(policies: [deny]) { app, outboundPort, _, _ in
            let frames = try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/PingPong") { call in
                try await call.send("ping 1")
                return try await call.responseFrames()
            }
            guard case .headers(let only)? = frames.first else {
                Issue.record("expected a HEADERS frame, got \(frames)")
                return
            }
            #expect(only.endStream && only.headers.first(name: "grpc-status") == "7")
            #expect(app.calls.withLock { $0 } == 0)
        }
    }

    @Test("a client that resets its call mid-stream has the application's stream reset, and the access log says DC with the status sent")
    func clientReset() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-stream-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        try await withMesh(logFile: log) { app, outboundPort, _, _ in
            try await GRPCStreamClient.call(port: outboundPort, path: "/test.Stream/PingPong") { call in
                try await call.send("ping 1")
                #expect(try await call.receive() == "pong: ping 1")
                try await call.reset()
            }
            // The application's stream ends without the request's end: reset through both proxies.
            var abandoned = 0
            for _ in 0..<400 where abandoned == 0 {
                abandoned = app.abandoned.withLock { $0 }
                if abandoned == 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(abandoned == 1)
            // The call's own line: a test elsewhere that calls a port it has just closed may reach
            // one of these proxies' listeners, which took the port meanwhile, and be logged here too.
            let object = try await UpgradeTests.accessLogLine(log) {
                $0["path"] as? String == "/test.Stream/PingPong" && $0["reporter"] as? String == "destination"
            }
            #expect(object["response_flags"] as? String == "DC", "\(object)")
            #expect(object["response_code"] as? Int == 200, "\(object)")
            #expect(object["bytes_received"] as? Int == 11, "\(object)")
        }
    }
}

/// The relay's other outcomes, straight to an inbound side: an application that cannot be
/// reached, and one that speaks HTTP/1.1 only.
@Suite("gRPC calls relayed to unusual applications")
struct GRPCRelayEdgeTests {
    @Test("a call to an application that cannot be reached gets UNAVAILABLE, trailers-only")
    func unreachable() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        // A port that was just free: nothing listens there.
        let closed = try await EchoApp()
        let port = closed.port
        try await closed.serverChannel.close()
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let proxy = try await TestProxy(
            workload: WorkloadInfo(name: "server-v1", namespace: "default", appPort: port), identityDirectory: server.directory, appPort: port)
        try proxy.install(SnapshotBuilder.snapshot())
        let frames = try await GRPCStreamClient.call(port: proxy.inboundPort, path: "/test.Stream/PingPong") { call in
            try await call.send("ping 1")
            try await call.endRequest()
            return try await call.responseFrames()
        }
        await proxy.stop()
        guard frames.count == 1, case .headers(let only) = frames[0] else {
            Issue.record("expected one HEADERS frame, got \(frames)")
            return
        }
        #expect(only.endStream && only.headers.first(name: "grpc-status") == "14", "\(only.headers)")
    }

    @Test("a call to an application declared HTTP/1.1 is read whole and sent as one request")
    func http1Application() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let proxy = try await mesh.serverProxy(appPort: app.port, appProtocol: .http1, permissive: false)
        let frames = try await GRPCStreamClient.call(port: proxy.inboundPort, path: "/test.Stream/Upload") { call in
            try await call.send("first")
            try await call.send("second")
            try await call.endRequest()
            return try await call.responseFrames()
        }
        await proxy.stop()
        try? await app.serverChannel.close()
        var body = ByteBuffer()
        for case .data(let data) in frames {
            if case .byteBuffer(var bytes) = data.data { body.writeBuffer(&bytes) }
        }
        let echo = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any], "\(frames)")
        #expect(echo["version"] as? String == "1.1")
        #expect(echo["body_bytes"] as? Int == 2 * 5 + 5 + 6)
    }
}

/// An HTTP/2 (h2c) gRPC-style application whose calls stream:
/// - `/test.Stream/PingPong` answers each message as it arrives with `pong: <message>`, and ends
///   with `grpc-message: N messages` when the client ends;
/// - `/test.Stream/Countdown` sends `tick N` … `tick 1` after the request, each after `gate` opens;
/// - `/test.Stream/Count` answers once the request ends, with the bytes and messages received;
/// - `/test.Stream/Missing` answers trailers-only with NOT_FOUND;
/// - `/test.Stream/Hold` answers nothing until `gate` opens, then OK.
final class StreamingApp: Sendable {
    typealias Stream = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    let listener: NIOAsyncChannel<NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>, Never>
    var serverChannel: any Channel { listener.channel }
    var port: Int { serverChannel.localAddress?.port ?? 0 }
    /// Calls received, and calls whose stream ended without the request's end.
    let calls = Mutex(0)
    let abandoned = Mutex(0)
    /// Opened by the test once it has read a countdown's tick.
    let gate = Gate()

    init() async throws {
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
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
        await LoopbackHTTP.runHTTP2(listener) { stream, _ in await self.serve(stream) }
    }

    private func serve(_ stream: Stream) async {
        calls.withLock { $0 += 1 }
        let channel = stream.channel
        var ended = false
        do {
            try await stream.executeThenClose { inbound, _ in
                var path = ""
                var pending = ByteBuffer()
                var messages: [String] = []
                var bytes = 0
                var headSent = false
                func head() async throws {
                    guard !headSent else { return }
                    headSent = true
                    try await channel.writeAndFlush(
                        HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: .ok, headers: ["content-type": "application/grpc"])))
                }
                func send(_ text: String) async throws {
                    try await head()
                    try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(GRPCStreamClient.frame(text))))
                }
                func end(_ status: String, _ message: String) async throws {
                    try await head()
                    try await channel.writeAndFlush(HTTPServerResponsePart.end(["grpc-status": status, "grpc-message": message]))
                }
                for try await part in inbound {
                    switch part {
                    case .head(let request):
                        path = request.uri
                    case .body(var chunk):
                        bytes += chunk.readableBytes
                        pending.writeBuffer(&chunk)
                        for message in GRPCStreamClient.messages(&pending) {
                            messages.append(message)
                            if path.hasSuffix("/PingPong") { try await send("pong: \(message)") }
                        }
                    case .end:
                        ended = true
                        if path.hasSuffix("/Hold") {
                            try await gate.wait()
                            try await end("0", "released")
                        } else if path.hasSuffix("/Missing") {
                            let only: HTTPHeaders = ["content-type": "application/grpc", "grpc-status": "5", "grpc-message": "no such call"]
                            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: .ok, headers: only)), promise: nil)
                            try await channel.writeAndFlush(HTTPServerResponsePart.end(nil))
                        } else if path.hasSuffix("/Countdown") {
                            for tick in (1...(Int(messages.first ?? "") ?? 1)).reversed() {
                                try await send("tick \(tick)")
                                try await gate.wait()
                            }
                            try await end("0", "lift-off")
                        } else if path.hasSuffix("/Count") {
                            try await send("\(bytes - 5 * messages.count) bytes in \(messages.count) messages")
                            try await end("0", "counted")
                        } else {
                            try await end("0", "\(messages.count) messages")
                        }
                        return
                    }
                }
            }
        } catch {}
        if !ended { abandoned.withLock { $0 += 1 } }
    }
}

/// Lets a waiting task go on once per `open`, or fails it after 10 s.
final class Gate: Sendable {
    private let opened = Mutex(0)

    func open() { opened.withLock { $0 += 1 } }

    func wait() async throws {
        for _ in 0..<1000 {
            let passed = opened.withLock { count -> Bool in
                guard count > 0 else { return false }
                count -= 1
                return true
            }
            if passed { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ProxyError(.upstream, "the gate stayed shut for 10 s")
    }
}

/// A gRPC client over cleartext HTTP/2 that sends and reads a call's messages one at a time.
final class GRPCStreamClient {
    /// One call's stream.
    struct Call {
        let inbound: NIOAsyncChannelInboundStream<HTTP2Frame.FramePayload>.AsyncIterator.Box
        let outbound: NIOAsyncChannelOutboundWriter<HTTP2Frame.FramePayload>
        let channel: any Channel

        func send(_ text: String) async throws {
            try await outbound.write(.data(.init(data: .byteBuffer(GRPCStreamClient.frame(text)))))
        }

        func endRequest() async throws {
            try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        }

        /// The next message.
        func receive() async throws -> String {
            while true {
                if let message = GRPCStreamClient.messages(&inbound.pending).first { return message }
                guard let frame = try await inbound.next() else { throw ProxyError(.upstream, "the call ended before a message") }
                switch frame {
                case .headers(let block) where block.endStream:
                    throw ProxyError(.upstream, "the call ended before a message: \(block.headers)")
                case .data(let data):
                    if case .byteBuffer(var bytes) = data.data { inbound.pending.writeBuffer(&bytes) }
                default:
                    continue
                }
            }
        }

        /// The trailers that end the call.
        func trailers() async throws -> HPACKHeaders {
            while let frame = try await inbound.next() {
                if case .headers(let block) = frame, block.endStream { return block.headers }
            }
            throw ProxyError(.upstream, "the call ended without trailers")
        }

        /// Ends the request and reads the trailers.
        func finish() async throws -> HPACKHeaders {
            try await endRequest()
            return try await trailers()
        }

        /// Every frame of the response until the stream ends.
        func responseFrames() async throws -> [HTTP2Frame.FramePayload] {
            var frames: [HTTP2Frame.FramePayload] = []
            while let frame = try await inbound.next() {
                frames.append(frame)
                if case .headers(let block) = frame, block.endStream { break }
                if case .data(let data) = frame, data.endStream { break }
            }
            return frames
        }

        /// Resets the stream, as a client cancelling its call does.
        func reset() async throws {
            try await outbound.write(.rstStream(.cancel))
        }
    }

    /// Opens a call to `path` on the outbound listener at `port` (for `server:8080`) and runs `body`
    /// on it, within 15 s.
    static func call<Result: Sendable>(
        port: Int, path: String, headers extra: [(String, String)] = [], _ body: (Call) async throws -> Result
    ) async throws -> Result {
        let (connection, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) { stream in
                        stream.eventLoop.makeSucceededVoidFuture()
                    }
                    return (channel, multiplexer)
                }
            }
        defer { connection.close(promise: nil) }
        let watchdog = connection.eventLoop.scheduleTask(in: .seconds(15)) { connection.close(promise: nil) }
        defer { watchdog.cancel() }
        let stream = try await multiplexer.openStream { stream in
            stream.eventLoop.makeCompletedFuture { try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream) }
        }
        let channel = stream.channel
        return try await stream.executeThenClose { inbound, outbound in
            let headers: [(String, String)] = [
                (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "server:8080"),
                ("content-type", "application/grpc"), ("te", "trailers"),
            ] + extra
            try await outbound.write(.headers(.init(headers: HPACKHeaders(headers))))
            let box = NIOAsyncChannelInboundStream<HTTP2Frame.FramePayload>.AsyncIterator.Box(inbound.makeAsyncIterator())
            return try await body(Call(inbound: box, outbound: outbound, channel: channel))
        }
    }

    /// A gRPC message (uncompressed unless `flag` says otherwise; gRPC-Web marks its trailers
    /// with 0x80): the flag, its length, then `text`.
    static func frame(_ text: String, flag: UInt8 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flag)
        buffer.writeInteger(UInt32(text.utf8.count))
        buffer.writeString(text)
        return buffer
    }

    /// The whole messages at the start of `buffer`, taken out of it.
    static func messages(_ buffer: inout ByteBuffer) -> [String] {
        var messages: [String] = []
        while buffer.readableBytes >= 5, let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self),
            buffer.readableBytes >= 5 + Int(length)
        {
            buffer.moveReaderIndex(forwardBy: 5)
            messages.append(buffer.readString(length: Int(length)) ?? "")
        }
        buffer.discardReadBytes()
        return messages
    }
}

extension NIOAsyncChannelInboundStream.AsyncIterator {
    /// The iterator and the bytes read but not yet taken as messages, held by reference so that
    /// `Call`'s methods can advance it.
    final class Box {
        private var iterator: NIOAsyncChannelInboundStream.AsyncIterator
        var pending = ByteBuffer()

        init(_ iterator: NIOAsyncChannelInboundStream.AsyncIterator) {
            self.iterator = iterator
        }

        func next() async throws -> Inbound? {
            try await iterator.next()
        }
    }
}
