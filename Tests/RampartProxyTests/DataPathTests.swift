import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Testing

/// Real TLS handshakes on loopback between in-process proxies, with identities issued by a CA
/// the test makes, and a real HTTP application behind the inbound listener.
@Suite("Proxy data path", .serialized)
struct DataPathTests {
    static let serverWorkload = WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server", "version": "v1"], services: [ServicePort(name: "server", port: 8080)], appPort: 0)

    /// Runs `body` with a mesh, an echo app, and a server-side proxy in front of it.
    func withServer(
        http2App: Bool = false, appProtocol: AppProtocol = .auto, acceptHTTP10: Bool = false, logFile: String? = nil,
        _ body: (MeshFixture, TestProxy, (directory: String, serial: String, spiffeID: String)) async throws -> Void
    ) async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp(http2: http2App)
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let workload = WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server", "version": "v1"], services: [ServicePort(name: "server", port: app.port)], appPort: app.port)
        let proxy = try await TestProxy(
            workload: workload, identityDirectory: server.directory, appPort: app.port, logFile: logFile, appProtocol: appProtocol,
            acceptHTTP10: acceptHTTP10)
        do {
            try await body(mesh, proxy, server)
        } catch {
            await proxy.stop()
            try? await app.serverChannel.close()
            throw error
        }
        await proxy.stop()
        try? await app.serverChannel.close()
    }

    @Test("a proxy that has never received config denies inbound requests")
    func noConfigDenies() async throws {
        try await withServer { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let result = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory)
            #expect(result.response.head.status == .forbidden)
        }
    }

    @Test("an mTLS request reaches the application with the peer's identity in x-forwarded-client-cert")
    func mtlsForwards() async throws {
        try await withServer { mesh, proxy, server in
            try proxy.install(SnapshotBuilder.snapshot())
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let result = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/hello?x=1", expected: [server.spiffeID])
            #expect(result.response.head.status == .ok)
            #expect(result.peer?.spiffeID.string == server.spiffeID)
            let echo = try TestClient.echo(result.response)
            #expect(echo["path"] as? String == "/hello?x=1")
            let headers = echo["headers"] as? [String: String] ?? [:]
            let xfcc = headers["x-forwarded-client-cert"] ?? ""
            #expect(xfcc.contains("URI=\(client.spiffeID)"))
            #expect(xfcc.hasPrefix("By=\(server.spiffeID);Hash="))
            #expect(headers["x-forwarded-proto"] == "https")
            #expect(headers["x-request-id"]?.isEmpty == false)
        }
    }

    @Test("a DENY policy gets 403, a path the normalization refuses 400, and an ALLOW policy that names another identity denies too")
    func authorization() async throws {
        try await withServer { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]"),
            ]))
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/admin/x").response.head.status == .forbidden)
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/ok").response.head.status == .ok)
            // A path the normalization refuses never reaches the policies: 400, not a way past the DENY.
            let refused = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/x/%00../admin")
            #expect(refused.response.head.status == .badRequest)
            try proxy.install(SnapshotBuilder.snapshot(version: 3, resources: [
                SnapshotBuilder.authorizationPolicy(name: "only-frontend", namespace: "default", body: "action: ALLOW\nrules:\n- from:\n  - source:\n      principals: [\"cluster.local/ns/default/sa/frontend\"]"),
            ]))
            let denied = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/ok")
            #expect(denied.response.head.status == .forbidden)
            #expect(String(buffer: denied.response.body).contains("RBAC: access denied"))
            let frontend = try await mesh.identity(namespace: "default", serviceAccount: "frontend")
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: frontend.directory).response.head.status == .ok)
        }
    }

    @Test("the access log shows the normalized path, for requests allowed and denied, as Envoy logs :path after normalize_path")
    func loggedPathIsNormalized() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-logpath-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]"),
            ]))
            for (target, status) in [("/a/../admin/%61?x=1", 403), ("/b/./c/../ok?y=2", 200)] {
                _ = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "GET \(target) HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
                let line = try await UpgradeTests.accessLogLine(log) { $0["response_code"] as? Int == status }
                #expect(line["path"] as? String == InboundHTTP.normalizedTarget(target), "\(line)")
            }
            #expect(InboundHTTP.normalizedTarget("/a/../admin/%61?x=1") == "/admin/a?x=1")
        }
    }

    @Test("every HTTP request is read as Envoy reads it: any method, an absolute-form target, the normalized path forwarded, one Host")
    func requestsAsEnvoyReadsThem() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
                SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]"),
            ]))
            func exchange(_ head: String) async throws -> (status: String, body: String) {
                let received = try await RawClient.untilClosed(port: proxy.inboundPort, sending: head + "Connection: close\r\n\r\n")
                let status = received.components(separatedBy: "\r\n").first ?? ""
                // The echo app writes JSON, whose slashes may be escaped.
                let body = received.range(of: "\r\n\r\n").map { String(received[$0.upperBound...]) } ?? ""
                return (status, body.replacingOccurrences(of: "\\/", with: "/"))
            }
            // A WebDAV method is HTTP too: a plaintext peer's forged client-certificate header is removed.
            let forged = try await exchange("PROPFIND /files HTTP/1.1\r\nHost: app\r\nx-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/prod/sa/admin\r\n")
            #expect(forged.status == "HTTP/1.1 200 OK", "\(forged)")
            #expect(forged.body.contains("PROPFIND") && !forged.body.contains("x-forwarded-client-cert"), "\(forged.body)")
            // An absolute-form target is its path: no way past the DENY, and the authority is the Host.
            let absolute = try await exchange("GET http://app.default.svc/admin HTTP/1.1\r\nHost: other\r\n")
            #expect(absolute.status == "HTTP/1.1 403 Forbidden", "\(absolute)")
            #expect(absolute.body == "RBAC: access denied")
            // A target in any other form is refused before a policy reads it, as Envoy's codec
            // refuses it: a ws:// URL or a bare word would otherwise be a path no rule names, which
            // an application may still read as /admin.
            for target in ["ws://app.default.svc/admin", "ftp://app/admin", "admin", "HTTPS:/admin"] {
                let other = try await exchange("GET \(target) HTTP/1.1\r\nHost: app\r\n")
                #expect(other.status == "HTTP/1.1 400 Bad Request", "\(target): \(other)")
            }
            let allowed = try await exchange("GET http://app.default.svc/ok?x=1 HTTP/1.1\r\nHost: other\r\n")
            #expect(allowed.body.contains("\"path\":\"/ok?x=1\""), "\(allowed.body)")
            #expect(allowed.body.contains("app.default.svc"), "\(allowed.body)")
            // The application gets the path the policies saw.
            let dotted = try await exchange("GET /a/./b/../c%6Cd?q=%2e HTTP/1.1\r\nHost: app\r\n")
            #expect(dotted.body.contains("/a/cld?q=%2e"), "\(dotted.body)")
            // Headers past Envoy's limits (60 KiB, 100 fields) get 431; just under them, the request is served.
            let big = try await exchange("GET /ok HTTP/1.1\r\nHost: app\r\nx-big: \(String(repeating: "b", count: 61 * 1024))\r\n")
            #expect(big.status == "HTTP/1.1 431 Request Header Fields Too Large", "\(big.status)")
            let raw = try await RawClient.untilClosed(
                port: proxy.inboundPort, sending: "GET /ok HTTP/1.1\r\nHost: app\r\nx-big: \(String(repeating: "b", count: 61 * 1024))\r\n\r\n")
            #expect(raw.lowercased().contains("\r\ndate: "), "a refusal carries a date: \(raw.prefix(300))")
            let fits = try await exchange("GET /ok HTTP/1.1\r\nHost: app\r\nx-big: \(String(repeating: "b", count: 50 * 1024))\r\n")
            #expect(fits.status == "HTTP/1.1 200 OK", "\(fits.status)")
            let many = try await exchange("GET /ok HTTP/1.1\r\nHost: app\r\n" + (0..<101).map { "x-h\($0): v\r\n" }.joined())
            #expect(many.status == "HTTP/1.1 431 Request Header Fields Too Large", "\(many.status)")
            // Two Host headers are refused, as RFC 9112 requires.
            let twoHosts = try await exchange("GET /ok HTTP/1.1\r\nHost: app\r\nHost: other\r\n")
            #expect(twoHosts.status == "HTTP/1.1 400 Bad Request", "\(twoHosts)")
            // HTTP/1.0 gets 426 with no body, as from Istio's sidecars (Envoy's accept_http_10 is off).
            let old = try await exchange("GET /ok HTTP/1.0\r\nHost: app\r\n")
            #expect(old.status.hasSuffix(" 426 Upgrade Required") && old.body.isEmpty, "\(old)")
            let outbound = try await RawClient.untilClosed(port: proxy.outboundPort, sending: "GET /ok HTTP/1.0\r\nHost: app\r\n\r\n")
            #expect(outbound.hasPrefix("HTTP/1.") && outbound.contains(" 426 Upgrade Required\r\n"), "\(outbound)")
        }
    }

    @Test("Expect: 100-continue is answered by the proxy, as Envoy answers it, and not passed to the application")
    func expectContinue() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
            ]))
            let body = String(repeating: "x", count: 5000)
            let head = "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
            let (first, rest) = try await RawClient.expecting(port: proxy.inboundPort, head: head, body: body)
            #expect(first.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(first)")
            let all = first + rest
            #expect(all.contains("HTTP/1.1 200 OK"), "\(all)")
            #expect(all.contains("\"body_bytes\":5000"), "\(all)")
            #expect(!all.lowercased().contains("\"expect\""), "the application was sent the Expect header: \(all)")
        }
    }

    @Test("a port declared HTTP (--app-protocol http) is never passed through as TCP: a line protocol gets 400, HTTP is served")
    func declaredHTTP() async throws {
        try await withServer(appProtocol: .http1) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
            ]))
            let line = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "SET key value\r\n\r\n")
            #expect(line.hasPrefix("HTTP/1.1 400 Bad Request"), "\(line)")
            let http = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "GET /ok HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            #expect(http.hasPrefix("HTTP/1.1 200 OK"), "\(http)")
        }
    }

    @Test("with --accept-http10 an HTTP/1.0 request is served, inbound, and outbound gets no 426 either")
    func acceptedHTTP10() async throws {
        try await withServer(acceptHTTP10: true) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
            ]))
            let inbound = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "GET /ok HTTP/1.0\r\nHost: app\r\n\r\n")
            #expect(inbound.contains(" 200 OK"), "\(inbound)")
            let outbound = try await RawClient.untilClosed(port: proxy.outboundPort, sending: "GET /ok HTTP/1.0\r\nHost: nowhere.invalid\r\n\r\n")
            #expect(!outbound.contains(" 426 "), "\(outbound)")
        }
    }

    /// The status of an mTLS request with `headers` to the inbound port, as `client` sends it.
    static func mtlsStatus(port: Int, identityDirectory: String) -> @Sendable ([(String, String)]) async throws -> HTTPResponseStatus {
        { headers in
            try await TestClient.mtls(port: port, identityDirectory: identityDirectory, headers: headers).response.head.status
        }
    }

    @Test("header conditions see the request's headers, in any case and with repeated values joined")
    func headerConditions() async throws {
        try await withServer { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "tenant", namespace: "default",
                    body: "action: ALLOW\nrules:\n- when:\n  - key: request.headers[x-tenant]\n    values: [\"blue\", \"red,green\"]"),
            ]))
            let status = Self.mtlsStatus(port: proxy.inboundPort, identityDirectory: client.directory)
            #expect(try await status([("X-Tenant", "blue")]) == .ok)
            #expect(try await status([("x-tenant", "red"), ("x-tenant", "green")]) == .ok)
            #expect(try await status([("x-tenant", "yellow")]) == .forbidden)
            #expect(try await status([]) == .forbidden)
        }
    }

    @Test("remoteIpBlocks read the last x-forwarded-for address, as Istio's sidecar does; ipBlocks keep the peer's")
    func remoteAddressFromForwardedFor() async throws {
        try await withServer { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            // A policy that reads no header: the proxy still takes remote.ip from the header.
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-client", namespace: "default",
                    body: "action: DENY\nrules:\n- from:\n  - source:\n      remoteIpBlocks: [\"203.0.113.0/24\"]"),
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-peer", namespace: "default",
                    body: "action: DENY\nrules:\n- from:\n  - source:\n      ipBlocks: [\"203.0.113.0/24\"]"),
            ]))
            let status = Self.mtlsStatus(port: proxy.inboundPort, identityDirectory: client.directory)
            #expect(try await status([]) == .ok)
            #expect(try await status([("X-Forwarded-For", "198.51.100.7, 203.0.113.9")]) == .forbidden)
            #expect(try await status([("x-forwarded-for", "198.51.100.7"), ("x-forwarded-for", "203.0.113.9")]) == .forbidden)
            // Only the last address counts, and one that does not parse leaves the peer's (loopback).
            #expect(try await status([("x-forwarded-for", "203.0.113.9, 198.51.100.7")]) == .ok)
            #expect(try await status([("x-forwarded-for", "203.0.113.9, unknown")]) == .ok)
        }
    }

    @Test("STRICT refuses plaintext; PERMISSIVE accepts plaintext and mTLS on the same port")
    func peerAuthenticationModes() async throws {
        try await withServer { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "STRICT")]))
            await #expect(throws: (any Error).self) { try await TestClient.plain(port: proxy.inboundPort) }
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory).response.head.status == .ok)

            try proxy.install(SnapshotBuilder.snapshot(version: 3, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            let plain = try await TestClient.plain(port: proxy.inboundPort, headers: [("x-forwarded-client-cert", "By=forged;URI=spiffe://cluster.local/ns/x/sa/admin")])
            #expect(plain.head.status == .ok)
            let headers = try TestClient.echo(plain)["headers"] as? [String: String] ?? [:]
            #expect(headers["x-forwarded-client-cert"] == nil)
            #expect(headers["x-forwarded-proto"] == "http")
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory).response.head.status == .ok)
        }
    }

    @Test("pipelined HTTP/1.1 requests sent in one write are answered in order, and Connection: close ends the exchange")
    func pipelinedRequests() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            let requests = (1...3).map { "GET /req-\($0) HTTP/1.1\r\nHost: app\r\n\r\n" }.joined() + "GET /req-4 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
            let received = try await RawClient.untilClosed(port: proxy.inboundPort, sending: requests)
            // Each answer's body ends without a newline, so the next status line follows it directly.
            #expect(received.components(separatedBy: "HTTP/1.1 ").count - 1 == 4)
            #expect(received.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1 == 4)
            // The echo app's JSON names each path; their order in the stream is the answers' order.
            let order = (1...4).map { received.range(of: "req-\($0)")?.lowerBound }
            #expect(order.allSatisfy { $0 != nil })
            #expect(order.compactMap { $0 } == order.compactMap { $0 }.sorted())
        }
    }

    @Test("bytes that are not HTTP/1.1 after a request: the request is answered, then 400, then the connection closes")
    func malformedAfterRequest() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            let received = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "GET /first HTTP/1.1\r\nHost: app\r\n\r\nGET /x HTTP/1.1\r\nHost app\r\n\r\n")
            let ok = received.range(of: "HTTP/1.1 200 OK\r\n")
            let bad = received.range(of: "HTTP/1.1 400 Bad Request\r\n")
            #expect(ok != nil && bad != nil)
            if let ok, let bad { #expect(ok.lowerBound < bad.lowerBound) }
            #expect(received.contains("/first"))
        }
    }

    @Test("a request body over what the proxy holds is passed on as it arrives, with its length, and the request after it on the connection is answered")
    func bodyLimit() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
            let big = String(repeating: "x", count: (1 << 20) + 1)
            let answered = try await RawClient.untilClosed(
                port: proxy.inboundPort,
                sending: "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: \(big.utf8.count)\r\n\r\n\(big)GET /after HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
                timeout: .seconds(20))
            let answers = answered.components(separatedBy: "HTTP/1.1 200 OK\r\n")
            #expect(answers.count == 3, "\(answered.prefix(400))")
            guard answers.count == 3 else { return }
            #expect(answers[1].contains("\"body_bytes\":\(big.utf8.count)"), "\(answers[1])")
            #expect(answers[1].contains("\"content-length\":\"\(big.utf8.count)\""), "\(answers[1])")
            #expect(!answers[1].lowercased().contains("connection: close"), "\(answers[1])")
            #expect(answers[2].contains("\"path\":\"\\/after\""), "\(answers[2])")
        }
    }

    @Test("a revoked client certificate is refused in the handshake")
    func revokedPeer() async throws {
        try await withServer { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            try proxy.install(SnapshotBuilder.snapshot(version: 2, revoked: [client.serial]))
            let refusal = await #expect(throws: (any Error).self) { try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory) }
            // The refusal closes the connection, and the client hears of it at once: the request
            // it may have written after its side of the TLS 1.3 handshake does not wait out the timeout.
            #expect(!"\(refusal.map { "\($0)" } ?? "")".contains("did not answer within"))
            let other = try await mesh.identity(namespace: "default", serviceAccount: "client")
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: other.directory).response.head.status == .ok)
        }
    }

    @Test("a certificate from another CA is refused")
    func foreignPeer() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot())
            let stranger = try MeshFixture()
            defer { stranger.remove() }
            let client = try await stranger.identity(namespace: "default", serviceAccount: "client")
            await #expect(throws: (any Error).self) { try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory) }
        }
    }

    @Test("outbound resolves the service, originates mTLS, and checks the server's identity")
    func outbound() async throws {
        try await withServer { mesh, serverProxy, server in
            try serverProxy.install(SnapshotBuilder.snapshot())
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientWorkload = WorkloadInfo(name: "client-v1", namespace: "default", labels: ["app": "client"], appPort: 1)
            let clientProxy = try await TestProxy(workload: clientWorkload, identityDirectory: client.directory, appPort: 1)
            defer { Task { await clientProxy.stop() } }
            let endpoint = "127.0.0.1:\(serverProxy.inboundPort)"
            try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [(endpoint, server.spiffeID, "server-v1")])]))

            let viaHost = try await TestClient.plain(port: clientProxy.outboundPort, path: "/a", host: "server:8080", headers: [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
            #expect(viaHost.head.status == .ok)
            let headers = try TestClient.echo(viaHost)["headers"] as? [String: String] ?? [:]
            #expect(headers["x-forwarded-client-cert"]?.contains("URI=\(client.spiffeID)") == true)
            #expect(headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            #expect(headers["x-request-id"]?.isEmpty == false)
            #expect(headers["host"] == "server:8080")

            let viaProxyForm = try await TestClient.plain(port: clientProxy.outboundPort, path: "http://server.default.svc.cluster.local:8080/b", host: "ignored")
            #expect(viaProxyForm.head.status == .ok)
            #expect(try TestClient.echo(viaProxyForm)["path"] as? String == "/b")

            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "nosuch").head.status == .badGateway)
            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "server:9999").head.status == .notFound)
            // A request addressed to the outbound listener itself is refused at once, not sent round again.
            for own in ["127.0.0.1", "localhost", "127.0.0.2"] {
                let looped = try await TestClient.plain(port: clientProxy.outboundPort, host: "\(own):\(clientProxy.outboundPort)")
                #expect(looped.head.status == .badGateway, "\(own)")
                #expect(String(buffer: looped.body).contains("own outbound listener"), "\(String(buffer: looped.body))")
            }

            // A second port of the same service is reachable by its own number.
            try clientProxy.install(SnapshotBuilder.snapshot(version: 2, services: [
                ("server", "default", 8080, [(endpoint, server.spiffeID, "server-v1")]), ("server", "default", 9090, [(endpoint, server.spiffeID, "server-v1")]),
            ]))
            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "server:9090").head.status == .ok)
            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "server:8080").head.status == .ok)
            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "server:9999").head.status == .notFound)

            // The registry expects another identity for the service: the server is refused.
            try clientProxy.install(SnapshotBuilder.snapshot(version: 3, services: [("server", "default", 8080, [(endpoint, "spiffe://cluster.local/ns/default/sa/impostor", "server-v1")])]))
            let refused = try await TestClient.plain(port: clientProxy.outboundPort, host: "server")
            #expect(refused.head.status == .serviceUnavailable)
            #expect(String(buffer: refused.body).contains("not an identity the registry expects"))
        }
    }

    @Test("HTTP/2 over mTLS (ALPN h2) is served, and reaches an HTTP/1.1 application as HTTP/1.1")
    func http2Inbound() async throws {
        try await withServer { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot())
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let result = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/h2", http2: true)
            #expect(result.response.head.status == .ok)
            let echo = try TestClient.echo(result.response)
            #expect(echo["version"] as? String == "1.1")
            #expect((echo["headers"] as? [String: String])?["x-forwarded-client-cert"]?.contains("URI=\(client.spiffeID)") == true)
        }
    }

    @Test("gRPC goes through both proxies over HTTP/2, with its trailers, and is authorized by path")
    func grpcEndToEnd() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-grpc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await withServer(http2App: true, logFile: log) { mesh, serverProxy, server in
            try serverProxy.install(SnapshotBuilder.snapshot(resources: [
                SnapshotBuilder.authorizationPolicy(name: "deny-delete", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/echo.Echo/Delete\"]"),
            ]))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientProxy = try await TestProxy(
                workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1)
            defer { Task { await clientProxy.stop() } }
            try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")])]))
            let grpc = [("content-type", "application/grpc"), ("te", "trailers")]
            let response = try await TestClient.plain(port: clientProxy.outboundPort, path: "/echo.Echo/Say", host: "server:8080", headers: grpc, http2: true)
            #expect(response.head.status == .ok)
            #expect(response.trailers?.first(name: "grpc-status") == "0")
            let echo = try TestClient.echo(response)
            #expect(echo["version"] as? String == "2.0")
            #expect((echo["headers"] as? [String: String])?["te"] == "trailers")
            // A denial reaches a gRPC caller as a gRPC status, as Envoy sends it: HTTP 200,
            // PERMISSION_DENIED, "trailers-only" (one HEADERS frame that ends the stream).
            func call(_ method: String) async throws -> RawHTTP2.Response {
                try await RawHTTP2.frames(
                    port: clientProxy.outboundPort,
                    headers: [(":method", "POST"), (":scheme", "http"), (":path", "/echo.Echo/\(method)"), (":authority", "server:8080")] + grpc)
            }
            let denied = try await call("Delete")
            #expect(denied.headEndsStream && denied.headerBlocks.count == 1 && denied.body.isEmpty, "\(denied.headerBlocks)")
            #expect(denied.head.first(name: ":status") == "200" && denied.head.first(name: "content-type") == "application/grpc")
            #expect(denied.head.first(name: "grpc-status") == "7" && denied.head.first(name: "grpc-message") == "RBAC: access denied")
            #expect(!denied.head.contains(name: "content-length"), "\(denied.head)")
            // Logged as the caller saw it: HTTP 200, no body bytes sent.
            let logged = try await UpgradeTests.accessLogLine(log) { ($0["path"] as? String)?.hasSuffix("/Delete") == true }
            #expect(logged["response_code"] as? Int == 200, "\(logged)")
            #expect(logged["bytes_sent"] as? Int == 0, "\(logged)")
            // An error the server answers trailers-only reaches the caller trailers-only through both proxies.
            let missing = try await call("Missing")
            #expect(missing.headEndsStream && missing.headerBlocks.count == 1, "\(missing.headerBlocks)")
            #expect(missing.head.first(name: ":status") == "200" && missing.head.first(name: "grpc-status") == "5")
            #expect(missing.head.first(name: "grpc-message") == "no such thing")
            #expect(!missing.head.contains(name: "content-length"), "\(missing.head)")
            // A call that returns a message keeps its head, its message and its trailers apart.
            let said = try await call("Say")
            #expect(!said.headEndsStream && said.headerBlocks.count == 2 && !said.body.isEmpty, "\(said.headerBlocks)")
            #expect(said.headerBlocks.last?.first(name: "grpc-status") == "0")
            // A plain HTTP/2 request still gets the plain 403.
            let plain = try await TestClient.plain(port: clientProxy.outboundPort, path: "/echo.Echo/Delete", host: "server:8080", headers: [], http2: true)
            #expect(plain.head.status == .forbidden)
        }
    }

    @Test("an HTTP/2 response larger than the client's flow-control window arrives whole, through both proxies and straight to the inbound side")
    func largeHTTP2Responses() async throws {
        // The application answers over HTTP/1.1; the proxies answer their clients over HTTP/2.
        try await withServer { mesh, serverProxy, server in
            try serverProxy.install(SnapshotBuilder.snapshot(resources: []))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientProxy = try await TestProxy(
                workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1)
            defer { Task { await clientProxy.stop() } }
            try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")])]))
            // 65,535 bytes is HTTP/2's initial window: each of these needs the client to open it again.
            for size in [70_000, 300_000] {
                let headers = [("x-response-bytes", String(size))]
                let through = try await TestClient.plain(
                    port: clientProxy.outboundPort, path: "/big", host: "server:8080", headers: headers, http2: true)
                #expect(through.head.status == .ok, "\(through.head)")
                #expect((try TestClient.echo(through)["padding"] as? String)?.utf8.count == size)
                let direct = try await TestClient.mtls(port: serverProxy.inboundPort, identityDirectory: client.directory, path: "/big", headers: headers, http2: true)
                #expect(direct.response.head.status == .ok && direct.response.body.readableBytes > size)
                #expect((try TestClient.echo(direct.response)["padding"] as? String)?.utf8.count == size)
            }
        }
    }

    @Test("a CUSTOM policy that matches is refused as Envoy's ext-authz filter refuses without its provider: an empty 403 logged UAEX")
    func customWithoutProvider() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-custom-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await withServer(logFile: log) { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "ext", namespace: "default",
                    body: "action: CUSTOM\nprovider:\n  name: opa\nrules:\n- to:\n  - operation:\n      paths: [\"/ext*\"]"),
            ]))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let refused = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/ext/a")
            #expect(refused.response.head.status == .forbidden && refused.response.body.readableBytes == 0)
            let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/ext/a" }
            #expect(line["response_flags"] as? String == "UAEX" && line["response_code_details"] as? String == "ext_authz_error", "\(line)")
            // Paths the policy does not match are not sent to the provider.
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, path: "/other").response.head.status == .ok)
        }
    }

    @Test("a certificate revoked after its handshake stops working on the connection it opened, logged without a response flag")
    func revokedMidConnection() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-revoked-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await withServer(logFile: log) { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot())
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let identity = try ProxyIdentity(directory: client.directory)
            let upstream = UpstreamClient(maxIdlePerTarget: 1, maxBodyBytes: 1 << 20)
            defer { upstream.shutdown() }
            let target = UpstreamTarget(
                host: "127.0.0.1", port: proxy.inboundPort,
                tls: TLSOrigination(generation: 1, verifier: PeerVerifier(roots: identity.roots, revoked: RevocationList(serials: [])), context: try TLSContexts(identity: identity).client))
            #expect(try await upstream.send(TestClient.request(path: "/", host: "app", headers: []), to: target).response.head.status == .ok)
            try proxy.install(SnapshotBuilder.snapshot(version: 2, revoked: [client.serial]))
            let after = try await upstream.send(TestClient.request(path: "/", host: "app", headers: []), to: target)
            #expect(after.response.head.status == .forbidden)
            #expect(String(buffer: after.response.body).contains("revoked"))
            // A refusal of the proxy's own, as a policy denial is: UAEX would say an external authorizer refused it.
            let line = try await UpgradeTests.accessLogLine(log) { $0["response_code"] as? Int == 403 }
            #expect(line["response_flags"] as? String == "-" && line["response_code_details"] as? String == "peer_certificate_revoked", "\(line)")
        }
    }
}

@Suite("Upstream request framing")
struct UpstreamFramingTests {
    @Test("content-length is sent for a body and for bodiless POST, and left out of a GET without one")
    func contentLength() async throws {
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let client = UpstreamClient(maxBodyBytes: 1 << 16)
        defer { client.shutdown() }
        func sent(_ method: HTTPMethod, body: String, claimed: String? = nil) async throws -> (length: String?, bytes: Int?) {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: "/")
            head.headers.add(name: "host", value: "app")
            if let claimed { head.headers.add(name: "content-length", value: claimed) }
            let result = try await client.send(
                BufferedRequest(head: head, body: ByteBuffer(string: body)), to: UpstreamTarget(host: "127.0.0.1", port: app.port))
            let echo = try TestClient.echo(result.response)
            return ((echo["headers"] as? [String: String])?["content-length"], echo["body_bytes"] as? Int)
        }
        #expect(try await sent(.GET, body: "") == (nil, 0))
        // A stale length from the client is dropped, not forwarded.
        #expect(try await sent(.GET, body: "", claimed: "12") == (nil, 0))
        #expect(try await sent(.POST, body: "") == ("0", 0))
        #expect(try await sent(.POST, body: "hello", claimed: "99") == ("5", 5))
        #expect(try await sent(.DELETE, body: "abc") == ("3", 3))
        #expect(UpstreamExchangeHandler.usuallyBodiless(.HEAD) && !UpstreamExchangeHandler.usuallyBodiless(.PUT))
        try? await app.serverChannel.close()
    }
}
