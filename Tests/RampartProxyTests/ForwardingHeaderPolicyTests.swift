import Foundation
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import NIOHTTP1
import NIOSSL
@testable import RampartProxy
import Testing

/// What a policy reads of a request is what Envoy's connection manager has made of it before its
/// filters: the forwarding headers set by the proxy, whatever the client sent, and the server
/// name from the TLS ClientHello (`connection.sni`).
@Suite("Headers and server names the policies see", .serialized)
struct ForwardingHeaderPolicyTests {
    @Test("x-forwarded-client-cert is set before the policies read it, so a client cannot forge it; x-forwarded-proto is set when absent, as a sidecar's Envoy sets it")
    func forwardingHeadersBeforePolicies() async throws {
        try await DataPathTests().withServer { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "allow-admin-by-xfcc", namespace: "default",
                    body: "action: ALLOW\nrules:\n- when:\n  - key: request.headers[x-forwarded-client-cert]\n    values: [\"*URI=spiffe://cluster.local/ns/default/sa/admin\"]"),
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-plain-proto", namespace: "default",
                    body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/plain-only\"]\n  when:\n  - key: request.headers[x-forwarded-proto]\n    values: [\"http\"]"),
            ]))
            let forged = [("x-forwarded-client-cert", "By=x;URI=spiffe://cluster.local/ns/default/sa/admin")]
            // Plaintext: the forged header is removed before the ALLOW reads it.
            #expect(try await TestClient.plain(port: proxy.inboundPort, headers: forged).head.status == .forbidden)
            // The real admin over mTLS, sending no header: the proxy's own element is what matches.
            let admin = try await mesh.identity(namespace: "default", serviceAccount: "admin")
            #expect(try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: admin.directory).response.head.status == .ok)
            // Another identity over mTLS, forging the admin's element: the proxy's element is appended, and it is not the admin's.
            let other = try await mesh.identity(namespace: "default", serviceAccount: "other")
            let appended = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: other.directory, headers: forged)
            #expect(appended.response.head.status == .forbidden)
            // x-forwarded-proto is set from the connection when the client sends none, and one it
            // sends is kept, as Envoy keeps it on a listener that does not use the remote address:
            // the admin over mTLS claiming http meets the DENY on http.
            let claimed = try await TestClient.mtls(
                port: proxy.inboundPort, identityDirectory: admin.directory, path: "/plain-only", headers: [("x-forwarded-proto", "http")])
            #expect(claimed.response.head.status == .forbidden)
            let kept = try await TestClient.mtls(
                port: proxy.inboundPort, identityDirectory: admin.directory, headers: [("x-forwarded-proto", "http")])
            #expect((try TestClient.echo(kept.response)["headers"] as? [String: String])?["x-forwarded-proto"] == "http")
            let overTLS = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: admin.directory, path: "/plain-only")
            #expect(overTLS.response.head.status == .ok)
        }
    }

    @Test("hop-by-hop headers, te other than trailers and Envoy's request-control headers are gone before the policies read the request")
    func connectionManagerHeadersBeforePolicies() async throws {
        try await DataPathTests().withServer { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-present", namespace: "default",
                    body: "action: DENY\nrules:\n- when:\n  - key: request.headers[keep-alive]\n    values: [\"*\"]\n- when:\n  - key: request.headers[te]\n    values: [gzip]\n- when:\n  - key: request.headers[x-envoy-retry-on]\n    values: [\"*\"]\n- when:\n  - key: request.headers[x-deny]\n    values: [\"*\"]\n- when:\n  - key: request.headers[x-deny-referer]\n    values: [\"*\"]\n  - key: request.headers[referer]\n    values: [\"*\"]"),
            ]))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            for headers in [[("keep-alive", "timeout=5")], [("te", "gzip")], [("x-envoy-retry-on", "5xx")]] {
                let result = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: headers)
                #expect(result.response.head.status == .ok, "\(headers)")
            }
            // A header the connection manager keeps is still read.
            let denied = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: [("x-deny", "1")])
            #expect(denied.response.head.status == .forbidden)
            // A referer Envoy finds invalid is removed before the policies read it; a valid one is kept.
            let invalid = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: [("x-deny-referer", "1"), ("referer", "not a url")])
            #expect(invalid.response.head.status == .ok)
            #expect((try TestClient.echo(invalid.response)["headers"] as? [String: String])?["referer"] == nil)
            let valid = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory, headers: [("x-deny-referer", "1"), ("referer", "https://example.com/a")])
            #expect(valid.response.head.status == .forbidden)
            let twice = try await TestClient.mtls(
                port: proxy.inboundPort, identityDirectory: client.directory, headers: [("x-deny-referer", "1"), ("referer", "/a"), ("referer", "/b")])
            #expect(twice.response.head.status == .ok)
            // Envoy keeps the request-control headers of an internal request (one internal x-forwarded-for address).
            let fromInside = try await TestClient.mtls(
                port: proxy.inboundPort, identityDirectory: client.directory, headers: [("x-envoy-retry-on", "5xx"), ("x-forwarded-for", "10.0.0.7")])
            #expect(fromInside.response.head.status == .forbidden)
        }
    }

    @Test("spaces and tabs around a header value are not a way past a policy, over HTTP/1.1 and HTTP/2, and the application gets the value trimmed")
    func paddedHeaderValues() async throws {
        try await DataPathTests().withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-padded", namespace: "default",
                    body: "action: DENY\nrules:\n- when:\n  - key: request.headers[x-block]\n    values: [\"yes\"]\n- to:\n  - operation:\n      hosts: [\"forbidden.example\"]"),
            ]))
            func raw(_ lines: [String]) async throws -> String {
                try await RawClient.untilClosed(
                    port: proxy.inboundPort, sending: "GET / HTTP/1.1\r\n" + lines.map { $0 + "\r\n" }.joined() + "connection: close\r\n\r\n")
            }
            for padded in ["x-block: yes ", "x-block: yes\t", "x-block:  yes \t "] {
                let answer = try await raw(["host: app", padded])
                #expect(answer.hasPrefix("HTTP/1.1 403"), "\(padded.debugDescription): \(answer)")
            }
            let host = try await raw(["host: forbidden.example "])
            #expect(host.hasPrefix("HTTP/1.1 403"), "\(host)")
            for http2 in [false, true] {
                let allowed = try await TestClient.plain(port: proxy.inboundPort, headers: [("x-role", "admin \t")], http2: http2)
                #expect(allowed.head.status == .ok)
                let headers = try TestClient.echo(allowed)["headers"] as? [String: String] ?? [:]
                #expect(headers["x-role"] == "admin", "the application gets the value without its padding (HTTP/2: \(http2))")
            }
            let overHTTP2 = try await TestClient.plain(port: proxy.inboundPort, headers: [("x-block", "yes ")], http2: true)
            #expect(overHTTP2.head.status == .forbidden)
            let otherHTTP2 = try await TestClient.plain(port: proxy.inboundPort, headers: [("x-block", "no ")], http2: true)
            #expect(otherHTTP2.head.status == .ok)
        }
    }

    @Test("HTTP/2 listeners advertise Envoy's 60 KiB header list and 1024 streams; HTTP/1.1 takes 20 KiB of headers")
    func http2Limits() async throws {
        // NIO reads a connection's header blocks with its 16 KiB limit until the client has
        // acknowledged these settings; from then on, with the advertised one.
        #expect(Listening.http2Server.connection.initialSettings.contains { $0.parameter == .maxHeaderListSize && $0.value == 60 * 1024 })
        #expect(Listening.http2Server.connection.initialSettings.contains { $0.parameter == .maxConcurrentStreams && $0.value == 1024 })
        try await DataPathTests().withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
            let big = try await TestClient.plain(port: proxy.inboundPort, headers: [("x-big", String(repeating: "b", count: 20 * 1024))])
            #expect(big.head.status == .ok)
            let headers = try TestClient.echo(big)["headers"] as? [String: String] ?? [:]
            #expect(headers["x-big"]?.count == 20 * 1024)
        }
    }

    @Test("connection.sni is the server name of the client's ClientHello, for DENY and ALLOW alike")
    func serverNameFromClientHello() async throws {
        try await DataPathTests().withServer { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-legacy-name", namespace: "default",
                    body: "action: DENY\nrules:\n- when:\n  - key: connection.sni\n    values: [\"legacy.example.com\"]"),
                SnapshotBuilder.authorizationPolicy(
                    name: "allow-cluster-names", namespace: "default",
                    body: "action: ALLOW\nrules:\n- when:\n  - key: connection.sni\n    values: [\"*.svc.cluster.local\"]"),
            ]))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            func status(serverName: String?) async throws -> String {
                var arguments = [
                    "-s", "-o", "/dev/null", "-w", "%{http_code}", "-k", "--max-time", "10",
                    "--cert", "\(client.directory)/cert-chain.pem", "--key", "\(client.directory)/key.pem",
                ]
                let host = serverName ?? "127.0.0.1"
                if let serverName { arguments += ["--resolve", "\(serverName):\(proxy.inboundPort):127.0.0.1"] }
                arguments.append("https://\(host):\(proxy.inboundPort)/")
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments = arguments
                return try await curl.outputToExit()
            }
            #expect(try await status(serverName: "reviews.default.svc.cluster.local") == "200")
            #expect(try await status(serverName: "legacy.example.com") == "403")
            #expect(try await status(serverName: "reviews.example.com") == "403")
            // curl sends no server name for an IP address: nothing for the ALLOW to match.
            #expect(try await status(serverName: nil) == "403")
        }
    }
}

/// The server name one proxy's outbound side sends, as Istio's sidecars send it.
@Suite("Server names between proxies", .serialized)
struct MeshServerNameTests {
    @Test("the outbound side names the service in its ClientHello (outbound_.PORT_._.FQDN), which the peer's connection.sni reads")
    func meshServerName() async throws {
        try await DataPathTests().withServer { mesh, serverProxy, server in
            let sni = "outbound_.8080_._.server.default.svc.cluster.local"
            try serverProxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "allow-by-name", namespace: "default",
                    body: "action: ALLOW\nrules:\n- when:\n  - key: connection.sni\n    values: [\"\(sni)\"]"),
            ]))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientWorkload = WorkloadInfo(name: "client-v1", namespace: "default", labels: ["app": "client"], appPort: 1)
            let clientProxy = try await TestProxy(workload: clientWorkload, identityDirectory: client.directory, appPort: 1)
            defer { Task { await clientProxy.stop() } }
            let endpoint = "127.0.0.1:\(serverProxy.inboundPort)"
            try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [(endpoint, server.spiffeID, "server-v1")])]))
            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "server:8080").head.status == .ok)
            try serverProxy.install(SnapshotBuilder.snapshot(version: 3, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-by-name", namespace: "default",
                    body: "action: DENY\nrules:\n- when:\n  - key: connection.sni\n    values: [\"outbound_.8080_._.*\"]"),
            ]))
            #expect(try await TestClient.plain(port: clientProxy.outboundPort, host: "server:8080").head.status == .forbidden)
        }
    }
}

/// How the proxy reads a request's authority and cookies, as Envoy's codecs read them.
@Suite("Authority and cookies as Envoy reads them", .serialized)
struct AuthorityAndCookieTests {
    @Test("an HTTP/2 request's :authority wins over a host field, and a host field alone becomes the :authority")
    func authority() {
        var both = HPACKHeaders([(":method", "GET"), (":scheme", "http"), (":authority", "good.example"), (":path", "/"), ("host", "evil.example"), ("x-a", "1")])
        var normalized = HTTP2AuthorityNormalizer.normalized(both)
        #expect(normalized[":authority"] == ["good.example"] && normalized["host"].isEmpty)
        #expect(normalized.map(\.name) == [":method", ":scheme", ":authority", ":path", "x-a"])
        both = HPACKHeaders([(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "only.example"), ("x-a", "1")])
        normalized = HTTP2AuthorityNormalizer.normalized(both)
        #expect(normalized[":authority"] == ["only.example"] && normalized["host"].isEmpty)
        // Pseudo-headers stay first, the authority among them.
        #expect(normalized.map(\.name) == [":method", ":scheme", ":path", ":authority", "x-a"])
        let neither = HPACKHeaders([(":method", "GET"), (":scheme", "http"), (":path", "/")])
        #expect(HTTP2AuthorityNormalizer.normalized(neither) == neither)
    }

    @Test("an HTTP/2 request with neither :authority nor host reaches no policy: its head is handed on to be answered 400, and nothing else of it")
    func missingAuthority() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            HTTP2AuthorityNormalizer(), HTTP2FramePayloadToHTTP1ServerCodec(), HTTPRequestAssembler(maxBodyBytes: 1 << 20),
        ])
        let request = HPACKHeaders([(":method", "POST"), (":scheme", "http"), (":path", "/admin?x=1"), ("x-a", "1")])
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: request)))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "body")), endStream: true)))
        guard case .missingAuthority(let head)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("expected the request's head, refused for its missing authority")
            return
        }
        #expect(head.method == .POST && head.uri == "/admin?x=1" && head.version == .http2)
        #expect(head.headers["x-a"] == ["1"] && !head.headers.contains(name: "host"))
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        #expect(try channel.readOutbound(as: HTTP2Frame.FramePayload.self) == nil)

        // A request with an authority passes on, and so does what follows it.
        let served = EmbeddedChannel(handler: HTTP2AuthorityNormalizer())
        try served.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: HPACKHeaders([(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "a.example")]))))
        guard case .headers(let passed) = try served.readInbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("expected the request's HEADERS frame")
            return
        }
        #expect(passed.headers[":authority"] == ["a.example"])
        #expect(try served.readOutbound(as: HTTP2Frame.FramePayload.self) == nil)
    }

    @Test("a live proxy answers an HTTP/2 request without an authority 400 on its stream, passes a body past the limit on, and logs both as Envoy does")
    func missingAuthorityLive() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-authority-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await DataPathTests().withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
            let (head, body) = try await RawHTTP2.exchange(
                port: proxy.inboundPort, headers: [(":method", "GET"), (":scheme", "http"), (":path", "/nowhere")])
            #expect(head.first(name: ":status") == "400", "\(head)")
            #expect(head.first(name: "server") == "istio-envoy" && head.first(name: "date") != nil, "\(head)")
            #expect(body == HTTP2AuthorityNormalizer.missingAuthorityText)
            let line = try await UpgradeTests.accessLogLine(log) { $0["response_code"] as? Int == 400 }
            #expect(line["response_code_details"] as? String == "missing_host_header", "\(line)")
            #expect(line["path"] as? String == "/nowhere" && line["protocol"] as? String == "HTTP/2", "\(line)")
            // The connection serves the next stream.
            let (served, _) = try await RawHTTP2.exchange(
                port: proxy.inboundPort, headers: [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "app")])
            #expect(served.first(name: ":status") == "200", "\(served)")
            // A body past what the proxy holds is passed on as it arrives, and logged with its size.
            let large = String(repeating: "x", count: (1 << 20) + 1)
            let answer = try await RawClient.untilClosed(
                port: proxy.inboundPort,
                sending: "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: \(large.utf8.count)\r\nConnection: close\r\n\r\n" + large,
                timeout: .seconds(20))
            #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer.prefix(200))")
            let uploaded = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/upload" }
            #expect(uploaded["response_code"] as? Int == 200 && uploaded["bytes_received"] as? Int == large.utf8.count, "\(uploaded)")
            #expect(uploaded["method"] as? String == "POST" && uploaded["response_flags"] as? String == "-", "\(uploaded)")
        }
    }

    @Test("a response past the limit on held bodies reaches the client whole, as Envoy streams a response, and is logged with its size")
    func responseLargerThanTheLimit() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-large-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await DataPathTests().withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
            // The proxy holds bodies up to 1 MiB; the echo app pads its answer past that.
            let request = "GET /download HTTP/1.1\r\nHost: app\r\nx-response-bytes: \((1 << 20) + 10)\r\nConnection: close\r\n\r\n"
            let answer = try await RawClient.untilClosed(port: proxy.inboundPort, sending: request, timeout: .seconds(20))
            #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer.prefix(200))")
            guard let split = answer.range(of: "\r\n\r\n") else {
                Issue.record("no head in \(answer.prefix(200))")
                return
            }
            let head = answer[..<split.lowerBound].lowercased()
            let body = answer[split.upperBound...]
            // The application's length is passed on, and all of the body with it.
            #expect(head.contains("content-length: \(body.utf8.count)\r\n") || head.hasSuffix("content-length: \(body.utf8.count)"), "\(head)")
            #expect(body.utf8.count > (1 << 20) + 10 && body.hasSuffix("}"), "\(body.utf8.count) bytes")
            let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/download" }
            #expect(line["response_code"] as? Int == 200 && line["response_flags"] as? String == "-", "\(line)")
            #expect(line["bytes_sent"] as? Int == body.utf8.count, "\(line)")
            #expect(line["response_code_details"] as? String == "via_upstream", "\(line)")
        }
    }

    @Test("a request target is origin-form before a policy reads it: http(s) URLs are cut to their path, other forms refused as Envoy refuses them")
    func requestTargets() {
        func head(_ method: HTTPMethod, _ uri: String, http2: Bool = false) -> HTTPRequestHead {
            HTTPRequestHead(version: http2 ? .http2 : .http1_1, method: method, uri: uri, headers: ["host": "app"])
        }
        var absolute = head(.GET, "http://svc.ns/admin?x=1")
        #expect(InboundHTTP.originForm(&absolute) == nil && absolute.uri == "/admin?x=1" && absolute.headers["host"] == ["svc.ns"])
        for target in ["ws://svc/admin", "wss://svc/admin", "admin", "HTTPS:/admin"] {
            var other = head(.GET, target)
            #expect(InboundHTTP.originForm(&other)?.status == .badRequest, "\(target)")
        }
        var star = head(.GET, "*")
        #expect(InboundHTTP.originForm(&star)?.status == .notFound)
        var hostless = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/admin")
        #expect(InboundHTTP.originForm(&hostless)?.details == "missing_host_header")
        for target in ["ws://svc/admin", "http://svc/admin", "admin"] {
            var other = head(.GET, target, http2: true)
            let refused = InboundHTTP.originForm(&other)
            #expect(refused?.status == .notFound && refused?.details == "absolute_path_rejected", "\(target)")
        }
        var options = head(.OPTIONS, "*")
        var connect = head(.CONNECT, "svc:443")
        var plain = head(.GET, "/admin", http2: true)
        #expect(InboundHTTP.originForm(&options) == nil && InboundHTTP.originForm(&connect) == nil && InboundHTTP.originForm(&plain) == nil)
    }

    @Test("a client cannot have Host, the forwarding headers or the request ID removed by naming them in Connection")
    func connectionNominations() {
        var headers: HTTPHeaders = [
            "host": "app", "connection": "x-forwarded-client-cert, x-request-id, host, x-forwarded-proto, x-custom",
            "x-forwarded-client-cert": "By=a;URI=spiffe://cluster.local/ns/a/sa/b", "x-request-id": "r1",
            "x-forwarded-proto": "https", "x-custom": "1", "x-envoy-attempt-count": "1",
        ]
        HopByHop.strip(&headers)
        #expect(headers["host"] == ["app"] && headers["x-request-id"] == ["r1"] && headers["x-forwarded-proto"] == ["https"])
        #expect(headers.contains(name: "x-forwarded-client-cert") && headers.contains(name: "x-envoy-attempt-count"))
        // Other nominated headers are still removed, with Connection itself.
        #expect(!headers.contains(name: "x-custom") && !headers.contains(name: "connection"))
    }

    @Test("an HTTP/2 connection is closed after a connection error's GOAWAY, and kept after one stream's error")
    func closesAfterConnectionError() throws {
        let failed = EmbeddedChannel(handler: HTTP2ConnectionErrorCloser())
        try failed.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        failed.pipeline.fireErrorCaught(NIOHTTP2Errors.unableToParseFrame())
        #expect(!failed.isActive)
        let streamFailed = EmbeddedChannel(handler: HTTP2ConnectionErrorCloser())
        try streamFailed.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        streamFailed.pipeline.fireErrorCaught(NIOHTTP2Errors.streamError(streamID: 1, baseError: NIOHTTP2Errors.unableToParseFrame()))
        #expect(streamFailed.isActive)
        _ = try? streamFailed.finish()
    }

    @Test("cookies sent in several fields are one field joined with '; ', for the policies and the application")
    func cookies() async throws {
        try await DataPathTests().withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-cookie-pair", namespace: "default",
                    body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/pair\"]\n  when:\n  - key: request.headers[cookie]\n    values: [\"a=1; b=2\"]"),
            ]))
            let split = [("cookie", "a=1"), ("cookie", "b=2")]
            #expect(try await TestClient.plain(port: proxy.inboundPort, path: "/pair", headers: split).head.status == .forbidden)
            let echoed = try TestClient.echo(try await TestClient.plain(port: proxy.inboundPort, path: "/other", headers: split))
            #expect((echoed["headers"] as? [String: String])?["cookie"] == "a=1; b=2")
        }
    }

    @Test("a token refused for keys that cannot be fetched gets Envoy's unknown-kid text, as istiod's stand-in key set makes it")
    func unavailableKeysText() {
        #expect(InboundHTTP.jwtStatusText(.keysUnavailable, audience: false) == "Jwks doesn't have key to match kid or alg from Jwt")
        #expect(InboundHTTP.jwtStatusText(.badSignature, audience: false) == "Jwt verification fails")
    }
}

/// The ClientHello reader, on the bytes BoringSSL (through NIOSSL) sends, and on broken ones.
@Suite("ClientHello server names")
struct ClientHelloInspectorTests {
    /// The first flight of a NIOSSL client asking for `serverName`.
    static func clientHello(serverName: String?) throws -> [UInt8] {
        let context = try NIOSSLContext(configuration: .makeClientConfiguration())
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
        channel.pipeline.fireChannelActive()
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += Array(buffer.readableBytesView) }
        _ = try? channel.finish()
        return bytes
    }

    @Test("the name a real client sends is read; no name, a short read and other bytes are told apart")
    func realClientHello() throws {
        let hello = try Self.clientHello(serverName: "reviews.default.svc.cluster.local")
        #expect(ClientHelloInspector.inspect(hello) == .serverName("reviews.default.svc.cluster.local"))
        #expect(ClientHelloInspector.inspect(try Self.clientHello(serverName: nil)) == .none)
        #expect(ClientHelloInspector.inspect(hello.prefix(3)) == .needMore)
        #expect(ClientHelloInspector.inspect(hello.prefix(hello.count - 1)) == .needMore)
        #expect(ClientHelloInspector.inspect(Array("GET / HTTP/1.1\r\n".utf8)) == .none)
    }

    @Test("no cut or changed byte of a ClientHello makes the reader fail other than by answering none or needMore")
    func brokenClientHellos() throws {
        let hello = try Self.clientHello(serverName: "a.example")
        var generator = SystemRandomNumberGenerator()
        for length in 0..<hello.count {
            let outcome = ClientHelloInspector.inspect(hello.prefix(length))
            #expect(outcome == .needMore || outcome == .none, "prefix \(length): \(outcome)")
        }
        // Bounded: a few thousand changed copies, each read once.
        for _ in 0..<3000 {
            var changed = hello
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                changed[Int.random(in: 0..<changed.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            switch ClientHelloInspector.inspect(changed) {
            case .serverName(let name): #expect(!name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F })
            case .none, .needMore: break
            }
        }
    }
}
