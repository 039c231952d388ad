import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import RampartProxy

/// The headers an Istio sidecar's Envoy puts on every response: `date`, `server` (`istio-envoy`
/// inbound, `envoy` outbound) and, on what came from upstream, `x-envoy-upstream-service-time`.
@Suite("Response headers of the sidecar")
struct ResponseStampTests {
    @Test("HTTP dates are RFC 9110's IMF-fixdate")
    func imfFixdate() {
        var example: time_t = 784_111_777
        #expect(HTTPDate.format(seconds: &example) == "Sun, 06 Nov 1994 08:49:37 GMT")
        var leap: time_t = 951_782_400  // 2000-02-29 00:00:00
        #expect(HTTPDate.format(seconds: &leap) == "Tue, 29 Feb 2000 00:00:00 GMT")
        let now = HTTPDate.now()
        let parser = DateFormatter()
        parser.locale = Locale(identifier: "en_US_POSIX")
        parser.timeZone = TimeZone(identifier: "GMT")
        parser.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let parsed = parser.date(from: now)
        #expect(parsed != nil && abs(parsed!.timeIntervalSinceNow) < 5, "\(now)")
    }

    @Test("the stamps replace what the response had, in any case and however often; a local answer gets no service time")
    func replaces() {
        var upstream = BufferedResponse(head: HTTPResponseHead(version: .http1_1, status: .ok, headers: [
            "Server": "app", "DATE": "then", "date": "again", "X-Envoy-Upstream-Service-Time": "99", "x-kept": "1", "Servers": "kept",
        ]))
        ResponseStamp.apply(&upstream, server: ResponseStamp.inboundServer, serviceTime: 7)
        #expect(upstream.head.headers["server"] == ["istio-envoy"])
        #expect(upstream.head.headers["date"].count == 1 && upstream.head.headers["date"][0].hasSuffix(" GMT"))
        #expect(upstream.head.headers["x-envoy-upstream-service-time"] == ["7"])
        #expect(upstream.head.headers["x-kept"] == ["1"] && upstream.head.headers["servers"] == ["kept"])
        var local = BufferedResponse.local(.forbidden, "RBAC: access denied")
        local.head.headers.add(name: "X-Envoy-Upstream-Service-Time", value: "5")
        ResponseStamp.apply(&local, server: ResponseStamp.outboundServer, serviceTime: 3)
        #expect(local.head.headers["server"] == ["envoy"])
        #expect(local.head.headers["x-envoy-upstream-service-time"] == ["5"], "a local answer's own header is left as it is")
    }

    @Test("through both proxies and from the inbound side alone: date, server as Envoy names each side, service time only from upstream")
    func stamped() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let serverProxy = try await TestProxy(
            workload: WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server"], appPort: app.port),
            identityDirectory: server.directory, appPort: app.port)
        try serverProxy.install(SnapshotBuilder.snapshot(resources: [
            SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]"),
        ]))
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
        let clientProxy = try await TestProxy(
            workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1)
        try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")])]))

        func serviceTime(_ response: BufferedResponse) -> Int? {
            response.head.headers.first(name: "x-envoy-upstream-service-time").flatMap { Int($0) }
        }

        // Through both proxies, an answer of the application and a denial of the server's proxy:
        // both came from upstream as the client's proxy sees them.
        for (path, status) in [("/hello", HTTPResponseStatus.ok), ("/admin", .forbidden)] {
            let response = try await TestClient.plain(port: clientProxy.outboundPort, path: path, host: "server")
            #expect(response.head.status == status)
            #expect(response.head.headers["server"] == ["envoy"], "\(response.head.headers)")
            #expect(response.head.headers["date"].count == 1 && response.head.headers["date"][0].hasSuffix(" GMT"), "\(response.head.headers)")
            #expect(serviceTime(response).map { $0 >= 0 } == true, "\(response.head.headers)")
        }
        // The outbound side's own refusal: no service time.
        let unknown = try await TestClient.plain(port: clientProxy.outboundPort, path: "/", host: "nowhere.default.svc.cluster.local")
        #expect(unknown.head.status == .badGateway)
        #expect(unknown.head.headers["server"] == ["envoy"] && serviceTime(unknown) == nil, "\(unknown.head.headers)")

        // The inbound side on its own: istio-envoy; the application's answer carries the service
        // time, the proxy's denial does not.
        let direct = try await TestClient.mtls(port: serverProxy.inboundPort, identityDirectory: client.directory, path: "/hello")
        #expect(direct.response.head.headers["server"] == ["istio-envoy"], "\(direct.response.head.headers)")
        #expect(serviceTime(direct.response) != nil)
        let denied = try await TestClient.mtls(port: serverProxy.inboundPort, identityDirectory: client.directory, path: "/admin")
        #expect(denied.response.head.status == .forbidden)
        #expect(denied.response.head.headers["server"] == ["istio-envoy"] && serviceTime(denied.response) == nil, "\(denied.response.head.headers)")
        #expect(denied.response.head.headers.contains(name: "date"))

        await clientProxy.stop()
        await serverProxy.stop()
        try? await app.serverChannel.close()
    }
}
