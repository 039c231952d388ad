import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import RampartProxy
import Testing

/// What a request leaving in plaintext may hold: the bytes of a target Envoy forwards as they
/// came, and nothing that could split the request.
@Suite("requests leaving in plaintext")
struct RequestTargetTests {
    /// Writes `head` through the check and returns whether it was passed on.
    static func passes(_ head: HTTPRequestHead) throws -> Bool {
        let channel = EmbeddedChannel(handler: PlaintextRequestCheck())
        defer { _ = try? channel.finish() }
        do {
            try channel.writeOutbound(HTTPClientRequestPart.head(head))
        } catch {
            #expect(error as? HTTPParserError == .invalidHeaderToken)
            return false
        }
        return try channel.readOutbound(as: HTTPClientRequestPart.self) != nil
    }

    static func head(_ uri: String, method: HTTPMethod = .GET, headers: [(String, String)] = [("host", "app")]) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    @Test("targets with the characters http-parser's URL table allows beyond RFC 3986 are passed on", arguments: [
        "/search?filter={\"a\":[1,2]}", "/a\\b", "/x?q=<b>|^`", "/é", "*", "http://app/x?y=\"z\"", "/%zz",
    ])
    func lenientTargets(_ uri: String) throws {
        #expect(try Self.passes(Self.head(uri)))
    }

    @Test("a target with white space or a control byte, a header value with CR, LF or NUL, and names that are no tokens are refused", arguments: [
        head("/a b"), head("/a\r\nx: y"), head("/a\u{7f}"), head("/a\tb"), head(""),
        head("/", headers: [("x-claim", "a\r\nx-injected: 1")]), head("/", headers: [("x-claim", "a\nb")]), head("/", headers: [("x-claim", "a\u{0}b")]),
        head("/", headers: [("x claim", "a")]), head("/", headers: [("", "a")]), head("/", method: HTTPMethod(rawValue: "G T")),
    ])
    func refused(_ head: HTTPRequestHead) throws {
        #expect(try !Self.passes(head))
    }

    @Test("trailers are held to the same rule as headers")
    func trailers() throws {
        let channel = EmbeddedChannel(handler: PlaintextRequestCheck())
        defer { _ = try? channel.finish() }
        try channel.writeOutbound(HTTPClientRequestPart.end(HTTPHeaders([("x-sum", "ok")])))
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) != nil)
        #expect(throws: HTTPParserError.invalidHeaderToken) {
            try channel.writeOutbound(HTTPClientRequestPart.end(HTTPHeaders([("x-sum", "a\r\nb")])))
        }
    }

    @Test(
        "through a live proxy, a query with braces, quotes and backslashes reaches the application as sent, over HTTP/1.1 and, as gRPC, over HTTP/2",
        arguments: [false, true])
    func liveQuery(http2: Bool) async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp(http2: http2)
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "b")
        let proxy = try await TestProxy(
            workload: WorkloadInfo(name: "b", namespace: "default", labels: ["app": "b"], appPort: app.port), identityDirectory: server.directory,
            appPort: app.port)
        try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
            SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
        ]))
        let client = try await mesh.identity(namespace: "default", serviceAccount: "c")
        for target in ["/search?filter={\"a\":[1,2]}", "/q?x=a|b^c`d<e>", "/q?path=C:\\temp"] {
            let grpc = http2 ? [("content-type", "application/grpc"), ("te", "trailers")] : []
            let result = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: target, headers: grpc, http2: http2)
            #expect(result.response.head.status == .ok, "\(target): \(result.response.head.status) \(String(buffer: result.response.body))")
            let echoed = try TestClient.echo(result.response)["path"] as? String
            #expect(echoed == target)
        }
        await proxy.stop()
        try? await app.serverChannel.close()
    }
}
