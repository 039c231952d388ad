import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Testing

/// A TCP server on loopback that answers each request by its path with bytes that are not a
/// proper HTTP response: `/garbage` text that is not HTTP, `/lengths` two different
/// Content-Lengths, `/close` nothing at all (it closes), `/partial` a head and part of its body
/// (see `StreamedResponseTests` for what the client gets then).
final class BrokenApp: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    init() async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var received = ""

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            guard received.contains("\r\n\r\n"), let line = received.split(separator: "\r\n").first else { return }
            let path = line.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
            let reply: String
            switch path {
            case "/garbage": reply = "this is not HTTP at all\r\n\r\n"
            case "/lengths": reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok"
            case "/partial": reply = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"
            default: reply = ""
            }
            let writes = reply.isEmpty ? context.eventLoop.makeSucceededVoidFuture() : context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply)))
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            writes.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    func stop() async {
        try? await channel.close()
    }
}

@Suite("Upstream resets", .serialized)
struct UpstreamResetTests {
    @Test("an application that breaks HTTP gets 502 UPE, one that closes without an answer 503 UC, an unreachable one 503 UF; each names its reset reason")
    func resetReasons() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let log = "\(mesh.directory)/access.log"
        let app = try await BrokenApp()
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let workload = WorkloadInfo(
            name: "server-v1", namespace: "default", labels: ["app": "server"], services: [ServicePort(name: "server", port: app.port)],
            appPort: app.port)
        let proxy = try await TestProxy(workload: workload, identityDirectory: server.directory, appPort: app.port, logFile: log)
        defer { Task { await proxy.stop() } }
        try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
        let cases: [(path: String, status: HTTPResponseStatus, flags: String, reason: String)] = [
            ("/garbage", .badGateway, "UPE", "protocol_error"),
            ("/lengths", .badGateway, "UPE", "protocol_error"),
            ("/close", .serviceUnavailable, "UC", "connection_termination"),
        ]
        for (path, status, flags, reason) in cases {
            let response = try await TestClient.plain(port: proxy.inboundPort, path: path)
            #expect(response.head.status == status, "\(path)")
            let body = String(buffer: response.body)
            #expect(body.hasSuffix("reset reason: \(reason.replacingOccurrences(of: "_", with: " "))\n"), "\(path): \(body)")
            let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == path }
            #expect(line["response_flags"] as? String == flags, "\(path): \(line)")
            #expect(line["response_code_details"] as? String == "upstream_reset_before_response_started{\(reason)}", "\(path): \(line)")
        }
        await app.stop()
        let refused = try await TestClient.plain(port: proxy.inboundPort, path: "/down")
        #expect(refused.head.status == .serviceUnavailable)
        let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/down" }
        #expect(line["response_flags"] as? String == "UF", "\(line)")
        #expect(line["response_code_details"] as? String == "upstream_reset_before_response_started{connection_failure}", "\(line)")
    }

    @Test("each failure maps to Envoy's reset reason")
    func classification() {
        #expect(UpstreamFailure.Reset(UpstreamClosed()) == .connectionTermination)
        #expect(UpstreamFailure.Reset(UpstreamClosedMidResponse()) == .connectionTermination)
        #expect(UpstreamFailure.Reset(HTTPParserError.invalidHeaderToken) == .protocolError)
        #expect(UpstreamFailure.Reset(HTTPParserError.invalidEOFState) == .connectionTermination)
        #expect(UpstreamFailure.Reset(ProxyError(.upstreamConnect, "refused")) == .connectionFailure)
        #expect(UpstreamFailure.Reset(IOError(errnoCode: ECONNRESET, reason: "read")) == .connectionTermination)
        let failure = UpstreamFailure(HTTPParserError.invalidHeaderToken, showError: false)
        #expect(failure.status == .badGateway && failure.flags == "UPE")
        #expect(failure.body == "upstream connect error or disconnect/reset before headers. reset reason: protocol error\n")
    }
}
