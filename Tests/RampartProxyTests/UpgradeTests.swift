import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import RampartProxy

/// An application that switches protocols: it answers an upgrade request naming `websocket` (in
/// `Upgrade` and `Connection`) with 101, then sends back each chunk it reads upper-cased; any other
/// request gets 400, and the connection is left open. It ends the connection after one echo. Raw bytes, so that what crosses the proxies is seen as it is.
final class UpgradeApp: Sendable {
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
        private var head = ""
        private var switched = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            if switched {
                // One echo, then the application ends the connection: the close must reach the client.
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text.uppercased()))).whenComplete { _ in context.close(promise: nil) }
                return
            }
            head += text
            guard head.contains("\r\n\r\n") else { return }
            let lower = head.lowercased()
            if lower.contains("\r\nupgrade: websocket\r\n") && lower.contains("\r\nconnection: upgrade\r\n") {
                switched = true
                let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
                // Bytes that came with the head are the new protocol's first.
                if let end = head.range(of: "\r\n\r\n"), !head[end.upperBound...].isEmpty {
                    let early = String(head[end.upperBound...])
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: early.uppercased()))).whenComplete { _ in context.close(promise: nil) }
                }
            } else {
                head = ""
                let answer = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
            }
        }
    }

    func stop() async {
        try? await channel.close()
    }
}

@Suite("HTTP/1.1 upgrades (WebSocket)")
struct UpgradeTests {
    static let request = "GET /chat HTTP/1.1\r\nHost: server:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    /// The first access-log line of `path` that `matches`, waiting up to 5 s for it.
    static func accessLogLine(_ path: String, where matches: ([String: Any]) -> Bool) async throws -> [String: Any] {
        for _ in 0..<250 {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            if let line = lines.first(where: matches) { return line }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProxyError(.upstream, "no matching line in \(path) within 5 s: \((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")")
    }

    @Test("a WebSocket goes through both proxies: 101 with its upgrade headers, then bytes both ways; a denied one gets 403")
    func throughBothProxies() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await UpgradeApp()
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let serverLog = "\(mesh.directory)/upgrade-server-access.log"
        let clientLog = "\(mesh.directory)/upgrade-client-access.log"
        let serverProxy = try await TestProxy(
            workload: WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server"], appPort: app.port),
            identityDirectory: server.directory, appPort: app.port, logFile: serverLog)
        try serverProxy.install(SnapshotBuilder.snapshot(resources: [
            SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]"),
        ]))
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
        let clientProxy = try await TestProxy(
            workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1,
            logFile: clientLog)
        try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")])]))

        let (first, rest) = try await RawClient.expecting(port: clientProxy.outboundPort, head: Self.request, body: "hello over the tunnel")
        #expect(first.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(first)")
        let lower = first.lowercased()
        #expect(lower.contains("\r\nupgrade: websocket\r\n") && lower.contains("\r\nconnection: upgrade\r\n"), "\(first)")
        #expect(!lower.contains("content-length"), "\(first)")
        #expect((first + rest).contains("HELLO OVER THE TUNNEL"), "\(first)\(rest)")

        // Each proxy reports the exchange once its connections have closed, with the bytes carried
        // after the 101 each way, as Envoy reports a WebSocket.
        let carried = "hello over the tunnel".utf8.count
        for log in [serverLog, clientLog] {
            let line = try await Self.accessLogLine(log) { $0["response_code"] as? Int == 101 }
            #expect(line["bytes_received"] as? Int == carried, "\(line)")
            #expect(line["bytes_sent"] as? Int == carried, "\(line)")
            #expect(line["response_code_details"] as? String == "via_upstream", "\(line)")
        }

        // A client that sends its first frame with the upgrade request, before the 101: the bytes
        // wait in the proxies until the tunnel is open, then reach the application.
        let early = try await RawClient.untilClosed(port: clientProxy.outboundPort, sending: Self.request + "sent before the answer")
        #expect(early.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(early)")
        #expect(early.hasSuffix("SENT BEFORE THE ANSWER"), "\(early)")

        let deniedRequest = Self.request.replacingOccurrences(of: "GET /chat", with: "GET /admin")
            .replacingOccurrences(of: "Connection: Upgrade", with: "Connection: Upgrade, close")
        let denied = try await RawClient.expecting(port: clientProxy.outboundPort, head: deniedRequest, body: "")
        #expect(denied.first.hasPrefix("HTTP/1.1 403 Forbidden"), "\(denied.first)")

        // An upgrade the application declines is answered as it answered: no tunnel.
        let declined = try await RawClient.expecting(
            port: clientProxy.outboundPort,
            head: Self.request.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: other-protocol")
                .replacingOccurrences(of: "Connection: Upgrade", with: "Connection: Upgrade, close"), body: "")
        #expect(declined.first.hasPrefix("HTTP/1.1 400 Bad Request"), "\(declined.first)")
        // A request that does not ask to upgrade still reaches the application as plain HTTP.
        #expect(!HTTPUpgrade.isUpgrade(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Upgrade": "websocket"])))
        #expect(!HTTPUpgrade.isUpgrade(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Upgrade": "h2c", "Connection": "Upgrade"])))
        #expect(HTTPUpgrade.isUpgrade(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Upgrade": "websocket", "Connection": "keep-alive, Upgrade"])))

        // A refused upgrade ends the connection, as Envoy ends it: the 403 (or the application's
        // answer) says `connection: close`, and a request pipelined behind the upgrade, whose bytes
        // were meant for the new protocol, is not read as HTTP.
        let pipelined = "GET /after HTTP/1.1\r\nHost: server:8080\r\n\r\n"
        for (head, status) in [
            (Self.request.replacingOccurrences(of: "GET /chat", with: "GET /admin"), "403 Forbidden"),
            (Self.request.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: other-protocol"), "400 Bad Request"),
        ] {
            let received = try await RawClient.untilClosed(port: clientProxy.outboundPort, sending: head + pipelined)
            #expect(received.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(received)")
            #expect(received.lowercased().contains("\r\nconnection: close\r\n"), "\(received)")
            #expect(received.components(separatedBy: "HTTP/1.1 ").count == 2, "one answer only: \(received)")
        }

        await clientProxy.stop()
        await serverProxy.stop()
        await app.stop()
    }

    @Test("an h2c upgrade offer on HTTP/1.1 is served as plain HTTP/1.1, and the connection goes on to its next request")
    func h2cOfferDeclined() async throws {
        try await DataPathTests().withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot())
            // What `curl --http2` sends to a plaintext URL, then a second request on the same connection.
            let offer = "GET /first HTTP/1.1\r\nHost: server\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            let next = "GET /second HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n"
            let received = try await RawClient.untilClosed(port: proxy.inboundPort, sending: offer + next)
            #expect(received.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3, "two answers: \(received)")
            #expect(received.contains("/first") && received.contains("/second"), "\(received)")
            // The application is not offered HTTP/2 on the proxy's behalf.
            #expect(!received.lowercased().contains("h2c") && !received.lowercased().contains("http2-settings"), "\(received)")
        }
    }
}
