import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
@testable import RampartProxy
import Testing

/// An HTTP/1.1 server on loopback that answers every request at once, except those whose path
/// starts with `/slow`, which it never answers (it counts those abandoned), and `/trickle`, which
/// it answers a byte at a time.
final class SelectiveServer: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }
    /// Connections that ended while a `/slow` request on them was unanswered.
    let abandoned = Tally()
    /// `/slow` requests received whole (and left unanswered).
    let held = Tally()

    /// Waits (at most 20 s) until `count` `/slow` requests have arrived.
    func waitUntilHeld(_ count: Int) async throws {
        for _ in 0..<2000 where held.value < count { try await Task.sleep(for: .milliseconds(10)) }
    }

    /// A count shared with the connections' handlers.
    final class Tally: Sendable {
        private let count = Atomic<Int>(0)
        func add() { count.add(1, ordering: .relaxed) }
        var value: Int { count.load(ordering: .relaxed) }
    }

    init() async throws {
        let abandoned = self.abandoned
        let held = self.held
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(abandoned: abandoned, held: held))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private var silent = false
        private var trickle = false
        private var waiting = false
        let abandoned: Tally
        let held: Tally

        init(abandoned: Tally, held: Tally) {
            self.abandoned = abandoned
            self.held = held
        }

        func channelInactive(context: ChannelHandlerContext) {
            if waiting { abandoned.add() }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                silent = head.uri.hasPrefix("/slow")
                trickle = head.uri.hasPrefix("/trickle")
            case .body: break
            case .end:
                guard !silent else {
                    waiting = true
                    held.add()
                    return
                }
                if trickle {
                    // Fifteen bytes, one every 100 ms: never silent for long, done after 1.5 s.
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "15"]))), promise: nil)
                    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                    for index in 1...15 {
                        context.eventLoop.scheduleTask(in: .milliseconds(Int64(100 * index))) {
                            let (handler, context) = bound.value
                            context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "x")))), promise: nil)
                            if index == 15 { context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil) }
                        }
                    }
                    return
                }
                let headers = HTTPHeaders([("content-length", "2")])
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    func stop() async {
        try? await channel.close()
    }
}

@Suite("Upstream timeout")
struct UpstreamTimeoutTests {
    @Test("on a kept-alive connection, each exchange keeps its own deadline: a long one before does not delay a short one")
    func deadlinePerExchange() async throws {
        let server = try await SelectiveServer()
        let client = UpstreamClient(maxIdlePerTarget: 1, maxBodyBytes: 1 << 16)
        defer { client.shutdown() }
        let target = UpstreamTarget(host: "127.0.0.1", port: server.port)
        func send(_ path: String, _ timeout: TimeAmount) async throws -> HTTPResponseStatus {
            try await client.send(TestClient.request(path: path, host: "app", headers: []), to: target, timeout: timeout).response.head.status
        }
        // Answered exchanges leave the connection's timer set for their (long) deadline.
        #expect(try await send("/fast", .seconds(30)) == .ok)
        #expect(try await send("/fast", .seconds(30)) == .ok)
        let start = ContinuousClock.now
        await #expect(throws: UpstreamTimeout.self) { _ = try await send("/slow", .milliseconds(300)) }
        let waited = ContinuousClock.now - start
        #expect(waited < .seconds(10), "the short deadline waited for the earlier long one: \(waited)")
        // The timed-out connection was closed; a new one answers.
        #expect(try await send("/fast", .milliseconds(2000)) == .ok)
        await server.stop()
    }

    @Test("without a timeout an upstream may take as long as it keeps sending; one silent for the stream idle time fails with SI")
    func streamIdleTimeout() async throws {
        let server = try await SelectiveServer()
        // The idle time is ten gaps of the trickle, so a busy machine's scheduling does not make one.
        let client = UpstreamClient(maxBodyBytes: 1 << 16, streamIdleTimeout: .seconds(1))
        defer { client.shutdown() }
        let target = UpstreamTarget(host: "127.0.0.1", port: server.port)
        // 1.5 s of bytes 100 ms apart: longer than the idle time in all, never that long silent.
        let trickled = try await client.send(TestClient.request(path: "/trickle", host: "app", headers: []), to: target, timeout: .zero)
        #expect(trickled.response.head.status == .ok && String(buffer: trickled.response.body) == String(repeating: "x", count: 15))
        // A total timeout still applies, however busy the upstream.
        await #expect(throws: UpstreamTimeout.self) {
            _ = try await client.send(TestClient.request(path: "/trickle", host: "app", headers: []), to: target, timeout: .milliseconds(500))
        }
        let start = ContinuousClock.now
        await #expect(throws: UpstreamIdleTimeout.self) {
            _ = try await client.send(TestClient.request(path: "/slow", host: "app", headers: []), to: target, timeout: .zero)
        }
        #expect(ContinuousClock.now - start < .seconds(10))
        let failure = UpstreamFailure(UpstreamIdleTimeout(milliseconds: 300_000), showError: false)
        #expect(failure.status == .gatewayTimeout && failure.flags == "SI" && failure.details == "stream_idle_timeout")
        await server.stop()
    }

    @Test("a client that goes away before its answer has its upstream request stopped, logged as Envoy logs it (0, DC)")
    func clientGoneStopsUpstream() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await SelectiveServer()
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let log = "\(mesh.directory)/gone-access.log"
        let workload = WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server"], appPort: app.port)
        let proxy = try await TestProxy(workload: workload, identityDirectory: server.directory, appPort: app.port, logFile: log)
        try proxy.install(SnapshotBuilder.snapshot())
        // HTTP/1.1: the client closes its connection while the application holds the request.
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: proxy.inboundPort).get()
        try await client.writeAndFlush(ByteBuffer(string: "GET /slow/http1 HTTP/1.1\r\nHost: app\r\n\r\n"))
        try await app.waitUntilHeld(1)
        try await client.close()
        // HTTP/2: the client's connection, and with it the stream, goes while the request waits.
        try await RawHTTP2.abandon(
            port: proxy.inboundPort, headers: [(":method", "GET"), (":scheme", "http"), (":path", "/slow/http2"), (":authority", "app")]
        ) { try await app.waitUntilHeld(2) }
        for path in ["/slow/http1", "/slow/http2"] {
            let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == path }
            #expect(line["response_code"] as? Int == 0 && line["response_flags"] as? String == "DC", "\(line)")
            #expect(line["response_code_details"] as? String == "downstream_remote_disconnect", "\(line)")
        }
        // The application saw both requests abandoned, well before any timeout.
        for _ in 0..<1000 where app.abandoned.value < 2 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(app.abandoned.value == 2)

        // Through a client-side proxy: its outbound side stops its request to the server's
        // proxy, which stops the application's.
        let caller = try await mesh.identity(namespace: "default", serviceAccount: "client")
        let callerLog = "\(mesh.directory)/gone-caller-access.log"
        let clientProxy = try await TestProxy(
            workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: caller.directory, appPort: 1,
            logFile: callerLog)
        try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(proxy.inboundPort)", server.spiffeID, "server-v1")])]))
        let outbound = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: clientProxy.outboundPort).get()
        try await outbound.writeAndFlush(ByteBuffer(string: "GET /slow/outbound HTTP/1.1\r\nHost: server:8080\r\n\r\n"))
        try await app.waitUntilHeld(3)
        try await outbound.close()
        let callerLine = try await UpgradeTests.accessLogLine(callerLog) { $0["path"] as? String == "/slow/outbound" }
        #expect(callerLine["response_code"] as? Int == 0 && callerLine["response_flags"] as? String == "DC", "\(callerLine)")
        // The outbound side's line names the listener the application connected to, as the inbound side's does.
        #expect((callerLine["downstream_local_address"] as? String)?.hasSuffix(":\(clientProxy.outboundPort)") == true, "\(callerLine)")
        for _ in 0..<1000 where app.abandoned.value < 3 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(app.abandoned.value == 3)
        await clientProxy.stop()
        await proxy.stop()
        await app.stop()
    }

    @Test("an upstream that never answers fails the exchange with a timeout after the request's deadline")
    func clientTimesOut() async throws {
        let server = try await SelectiveServer()
        let client = UpstreamClient(maxBodyBytes: 1 << 16)
        defer { client.shutdown() }
        await #expect(throws: UpstreamTimeout.self) {
            _ = try await client.send(
                TestClient.request(path: "/slow", host: "app", headers: []), to: UpstreamTarget(host: "127.0.0.1", port: server.port),
                timeout: .milliseconds(200))
        }
        await server.stop()
    }

    @Test("an application that never answers gets the client 504 upstream request timeout, logged as UT")
    func proxyAnswers504() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await SelectiveServer()
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let log = "\(mesh.directory)/timeout-access.log"
        let workload = WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server"], appPort: app.port)
        let proxy = try await TestProxy(
            workload: workload, identityDirectory: server.directory, appPort: app.port, logFile: log, upstreamTimeout: .milliseconds(300))
        try proxy.install(SnapshotBuilder.snapshot())
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
        let result = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/slow")
        #expect(result.response.head.status == .gatewayTimeout)
        #expect(String(buffer: result.response.body).contains("upstream request timeout"))
        var line: [String: Any]?
        for _ in 0..<100 where line == nil {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            if line == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(line?["response_code"] as? Int == 504)
        #expect(line?["response_flags"] as? String == "UT")
        #expect(line?["response_code_details"] as? String == "upstream_response_timeout")
        // The application was the upstream, though it never answered.
        #expect(line?["upstream_host"] as? String == "127.0.0.1:\(app.port)", "\(String(describing: line))")
        // Istio's JSON access-log fields: the inbound cluster and route, and the keys of its format.
        #expect(line?["upstream_cluster"] as? String == "inbound|\(app.port)||", "\(String(describing: line))")
        #expect(line?["route_name"] as? String == "default")
        #expect((line?["downstream_local_address"] as? String)?.hasSuffix(":\(proxy.inboundPort)") == true, "\(String(describing: line))")
        for key in ["x_forwarded_for", "requested_server_name", "upstream_service_time", "upstream_local_address", "connection_termination_details", "upstream_transport_failure_reason"] {
            #expect(line?.keys.contains(key) == true, "\(key)")
        }
        await proxy.stop()
        await app.stop()
    }
}
