import Crypto
import Foundation
import JWTKit
import NIOCore
import NIOPosix
@testable import RampartProxy
import Testing

/// A TCP echo server on loopback: every byte received is sent back.
final class TCPEcho: Sendable {
    let channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    var port: Int { channel.channel.localAddress?.port ?? 0 }

    init() async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
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
                            for try await chunk in inbound { try await outbound.write(chunk) }
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
    @Test("opaque TCP is spliced to the application, and denied on its L4 attributes")
    func tcp() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let echo = try await TCPEcho()
        let echoTask = Task { await echo.run() }
        defer { echoTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "db")
        let proxy = try await TestProxy(workload: WorkloadInfo(name: "db", namespace: "default", appPort: echo.port), identityDirectory: server.directory, appPort: echo.port)
        try proxy.install(SnapshotBuilder.snapshot())
        let reply = try await TCPEcho.exchange(port: proxy.inboundPort, text: "\u{0}\u{1}binary protocol\n")
        #expect(reply == "\u{0}\u{1}binary protocol\n")

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
        await proxy.stop()
        try? await echo.channel.channel.close()
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

        let none = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory)
        #expect(none.response.head.status == .ok)
        await proxy.stop()
        try? await app.serverChannel.close()
    }
}
