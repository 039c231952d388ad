import Crypto
import Foundation
import JWTKit
import NIOCore
import NIOPosix
@testable import RampartProxy
import Testing

/// A TCP echo server on loopback: every byte received is sent back. A client's FIN ends only
/// its direction: the server still answers what it read, then closes. With a `greeting`, it
/// speaks first, as a server-first protocol (MySQL, SMTP) does. With `answerAtEnd`, it answers
/// only once the client has half-closed, with everything it read, as a protocol that reads its
/// request to the end of the stream does.
final class TCPEcho: Sendable {
    let channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    let greeting: String?
    let answerAtEnd: Bool
    var port: Int { channel.channel.localAddress?.port ?? 0 }

    init(greeting: String? = nil, answerAtEnd: Bool = false) async throws {
        self.greeting = greeting
        self.answerAtEnd = answerAtEnd
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
    }

    func run() async {
        try? await withThrowingDiscardingTaskGroup { group in
            try await channel.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask {
                        try? await connection.executeThenClose { inbound, outbound in
                            if let greeting = self.greeting { try await outbound.write(ByteBuffer(string: greeting)) }
                            var everything = ByteBuffer()
                            for try await var chunk in inbound {
                                if self.answerAtEnd { everything.writeBuffer(&chunk) } else { try await outbound.write(chunk) }
                            }
                            if self.answerAtEnd { try await outbound.write(ByteBuffer(string: "read to the end: ")); try await outbound.write(everything) }
                        }
                    }
                }
            }
        }
    }

    /// Connects in plaintext to `port`, sends `text`, and returns what came back before the
    /// connection closed or `timeout` passed.
    static func exchange(port: Int, text: String, timeout: Duration = .seconds(3)) async throws -> String {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            return try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask {
                    var received = ""
                    for try await chunk in inbound {
                        received += String(buffer: chunk)
                        if received.utf8.count >= text.utf8.count { break }
                    }
                    return received
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return "<timeout>"
                }
                let first = try await group.next() ?? ""
                group.cancelAll()
                return first
            }
        }
    }
}

struct TokenClaims: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var exp: ExpirationClaim
    func verify(using algorithm: some JWTAlgorithm) throws {}
}

@Suite("Proxy: opaque TCP and request authentication", .serialized)
struct TCPAndJWTTests {
    /// Runs `body` with a proxy in front of a TCP echo app, as workload `name` (`db`) serving
    /// service `db`, its access log in `log` under the mesh's directory; then stops both.
    func withEchoProxy(
        name: String = "db", reportingInterval: TimeAmount = .seconds(15), _ body: (TestProxy, _ log: String) async throws -> Void
    ) async throws {
        try await withEchoProxy(name: name, reportingInterval: reportingInterval) { proxy, log, _, _ in try await body(proxy, log) }
    }

    /// The same, with `policies` installed, and `body` also given the mesh (to make other
    /// identities) and the server's SPIFFE ID.
    func withEchoProxy(
        name: String = "db", reportingInterval: TimeAmount = .seconds(15),
        policies: [(kind: String, namespace: String, name: String, yaml: String)] = [], appProtocol: AppProtocol = .auto,
        greeting: String? = nil, answerAtEnd: Bool = false,
        _ body: (TestProxy, _ log: String, _ mesh: MeshFixture, _ serverID: String) async throws -> Void
    ) async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let echo = try await TCPEcho(greeting: greeting, answerAtEnd: answerAtEnd)
        let echoTask = Task { await echo.run() }
        defer { echoTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "db")
        let log = "\(mesh.directory)/tcp-access.log"
        let workload = WorkloadInfo(name: name, namespace: "default", services: [ServicePort(name: "db", port: echo.port)], appPort: echo.port)
        let proxy = try await TestProxy(
            workload: workload, identityDirectory: server.directory, appPort: echo.port, logFile: log, appProtocol: appProtocol,
            reportingInterval: reportingInterval)
        try proxy.install(SnapshotBuilder.snapshot(resources: policies))
        do {
            try await body(proxy, log, mesh, server.spiffeID)
        } catch {
            await proxy.stop()
            try? await echo.channel.channel.close()
            throw error
        }
        await proxy.stop()
        try? await echo.channel.channel.close()
    }

    @Test("opaque TCP is spliced to the application, and denied on its L4 attributes")
    func tcp() async throws {
        try await withEchoProxy { proxy, log in
            let reply = try await TCPEcho.exchange(port: proxy.inboundPort, text: "\u{0}\u{1}binary protocol\n")
            #expect(reply == "\u{0}\u{1}binary protocol\n")
            // The connection's record, written when it closes, names the service on the application's port.
            let line: [String: Any]? = try await UpgradeTests.accessLogLine(log) { _ in true }
            #expect(line?["protocol"] as? String == "TCP")
            #expect(line?["destination_service"] as? String == "db.default.svc.cluster.local")
            #expect(line?["destination_workload"] as? String == "db")
            #expect((line?["upstream_cluster"] as? String)?.hasPrefix("inbound|") == true, "\(line ?? [:])")
            #expect(line?["downstream_local_address"] is String, "\(line ?? [:])")

            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(name: "deny-loopback", namespace: "default", body: "action: DENY\nrules:\n- from:\n  - source:\n      ipBlocks: [\"127.0.0.0/8\"]"),
            ]))
            let denied = try await TCPEcho.exchange(port: proxy.inboundPort, text: "\u{0}\u{1}again\n")
            #expect(denied.isEmpty, "a denied TCP connection was answered: \(denied)")

            // An ALLOW rule with only HTTP fields is dropped on TCP: nothing is allowed.
            try proxy.install(SnapshotBuilder.snapshot(version: 3, resources: [
                SnapshotBuilder.authorizationPolicy(name: "allow-get", namespace: "default", body: "action: ALLOW\nrules:\n- to:\n  - operation:\n      methods: [\"GET\"]"),
            ]))
            #expect(try await TCPEcho.exchange(port: proxy.inboundPort, text: "\u{0}x\n").isEmpty)
        }
    }

    @Test("a TCP connection's record starts when it was accepted, not when its first bytes came")
    func tcpStartsAtAccept() async throws {
        try await withEchoProxy { proxy, log in
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: proxy.inboundPort) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            let connected = Date()
            try await client.executeThenClose { inbound, outbound in
                try await Task.sleep(for: .milliseconds(600))
                try await outbound.write(ByteBuffer(string: "\u{0}\u{1}late bytes\n"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
            }
            let line = try await UpgradeTests.accessLogLine(log) { $0["protocol"] as? String == "TCP" }
            // Counted from the accept, the record spans the 600 ms before the bytes came; counted
            // from the first bytes, it would be a few milliseconds. On a busy machine the accept
            // itself can come tens of milliseconds after the client's connect, so the bound
            // leaves room for that.
            #expect((line["duration"] as? Int ?? 0) >= 400, "\(line)")
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let started = (line["start_time"] as? String).flatMap(formatter.date(from:))
            #expect(started.map { abs($0.timeIntervalSince(connected)) < 0.3 } == true, "\(line) against \(connected)")
        }
    }

    @Test("a TCP client's half-close reaches the application, whose answer and close come back")
    func tcpHalfClose() async throws {
        try await withEchoProxy(answerAtEnd: true) { proxy, _, _, _ in
            // The app answers only once it reads EOF, then closes: the client gets the answer and
            // then EOF only if the proxy passed its FIN on and kept the other direction open.
            let payload = "\u{0}\u{2}half-closed request\n"
            let received = try await RawClient.untilClosed(port: proxy.inboundPort, sending: payload, halfClose: true)
            #expect(received == "read to the end: " + payload)
        }
    }

    @Test("RequestAuthentication: an invalid token gets 401, a valid one reaches the app with its claims, none passes without a principal")
    func jwt() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "api")
        let proxy = try await TestProxy(
            workload: WorkloadInfo(name: "api", namespace: "default", labels: ["app": "api"], appPort: app.port), identityDirectory: server.directory, appPort: app.port)
        let key = P256.Signing.PrivateKey()
        let point = Array(key.publicKey.x963Representation)
        func b64(_ bytes: ArraySlice<UInt8>) -> String {
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let jwks = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"\#(b64(point[1...32]))","y":"\#(b64(point[33...64]))"}]}"#
        let authn = (
            kind: "RequestAuthentication", namespace: "default", name: "jwt",
            yaml: """
                apiVersion: security.istio.io/v1
                kind: RequestAuthentication
                metadata:
                  name: jwt
                  namespace: default
                spec:
                  selector:
                    matchLabels:
                      app: api
                  jwtRules:
                  - issuer: https://issuer.example
                    jwks: '\(jwks)'
                    outputClaimToHeaders:
                    - header: x-jwt-sub
                      claim: sub
                """
        )
        try proxy.install(SnapshotBuilder.snapshot(resources: [authn]))
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")

        let keys = JWTKeyCollection()
        await keys.add(ecdsa: try ES256PrivateKey(backing: key), kid: "k1")
        let token = try await keys.sign(
            TokenClaims(iss: "https://issuer.example", sub: "alice", exp: .init(value: Date().addingTimeInterval(600))), kid: "k1")

        let valid = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: [("authorization", "Bearer \(token)")])
        #expect(valid.response.head.status == .ok)
        #expect((try TestClient.echo(valid.response)["headers"] as? [String: String])?["x-jwt-sub"] == "alice")

        let forged = token.dropLast(4) + "AAAA"
        let invalid = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: [("authorization", "Bearer \(forged)")])
        #expect(invalid.response.head.status == .unauthorized)
        #expect(invalid.response.head.headers.first(name: "www-authenticate") == #"Bearer realm="https://app/", error="invalid_token""#)
        #expect(String(buffer: invalid.response.body) == "Jwt verification fails")
        // The realm keeps the query and is cut at 256 characters, as Envoy's JWT filter writes it.
        let long = "/q?x=" + String(repeating: "y", count: 300)
        let queried = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: long, headers: [("authorization", "Bearer \(forged)")])
        #expect(queried.response.head.headers.first(name: "www-authenticate") == "Bearer realm=\"https://app\(long.prefix(256))\", error=\"invalid_token\"")

        // The body names the fault as Envoy's JWT filter does.
        let stale = try await keys.sign(
            TokenClaims(iss: "https://issuer.example", sub: "alice", exp: .init(value: Date().addingTimeInterval(-600))), kid: "k1")
        let expired = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: [("authorization", "Bearer \(stale)")])
        #expect(expired.response.head.status == .unauthorized)
        #expect(String(buffer: expired.response.body) == "Jwt is expired")

        let none = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory)
        #expect(none.response.head.status == .ok)

        // A token in ?access_token= is verified, then taken out of the path the app gets.
        let fromQuery = try await TestClient.mtls(
            port: proxy.inboundPort, identityDirectory: client.directory, path: "/items?page=2&access_token=\(token)")
        #expect(fromQuery.response.head.status == .ok)
        let echoed = try TestClient.echo(fromQuery.response)
        #expect(echoed["path"] as? String == "/items?page=2", "\(echoed)")
        #expect((echoed["headers"] as? [String: String])?["x-jwt-sub"] == "alice")

        // Authorization sent twice: each value is a token, and a forged second one is refused.
        let twice = try await TestClient.mtls(
            port: proxy.inboundPort, identityDirectory: client.directory,
            headers: [("authorization", "Bearer \(token)"), ("authorization", "Bearer \(forged)")])
        #expect(twice.response.head.status == .unauthorized)
        await proxy.stop()
        try? await app.serverChannel.close()
    }
}
