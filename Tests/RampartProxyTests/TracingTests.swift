import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

@testable import RampartProxy

/// An OTLP/HTTP collector on loopback that keeps the JSON bodies posted to `/v1/traces`.
final class SpanCollector: Sendable {
    typealias Stream = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    let channel: NIOAsyncChannel<Stream, Never>
    private let bodies = Mutex<[(path: String, body: Data)]>([])
    var port: Int { channel.channel.localAddress?.port ?? 0 }

    init() async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                return try Stream(wrappingChannelSynchronously: channel)
            }
        }
    }

    func run() async {
        try? await withThrowingDiscardingTaskGroup { group in
            try await channel.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask {
                        try? await connection.executeThenClose { inbound, outbound in
                            var path = ""
                            var body = ByteBuffer()
                            for try await part in inbound {
                                switch part {
                                case .head(let head): path = head.uri; body.clear()
                                case .body(var chunk): body.writeBuffer(&chunk)
                                case .end:
                                    self.bodies.withLock { $0.append((path, Data(body.readableBytesView))) }
                                    let answer = ByteBuffer(string: "{}")
                                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: [
                                        "content-type": "application/json", "content-length": "\(answer.readableBytes)",
                                    ])))
                                    try await outbound.write(.body(.byteBuffer(answer)))
                                    try await outbound.write(.end(nil))
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A span as OTLP's JSON encoding carries it, with its resource's service name.
    struct ExportedSpan {
        let service: String
        let traceID: String
        let spanID: String
        let parentSpanID: String
        let name: String
        let kind: Int
        let attributes: [String: String]
        let statusCode: Int
    }

    /// The spans received so far, and the paths they were posted to.
    func spans() -> (paths: [String], spans: [ExportedSpan]) {
        let received = bodies.withLock { $0 }
        var spans: [ExportedSpan] = []
        for (_, body) in received {
            guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { continue }
            for resourceSpans in object["resourceSpans"] as? [[String: Any]] ?? [] {
                let resourceAttributes = (resourceSpans["resource"] as? [String: Any])?["attributes"] as? [[String: Any]] ?? []
                let service = Self.attributes(resourceAttributes)["service.name"] ?? ""
                for scope in resourceSpans["scopeSpans"] as? [[String: Any]] ?? [] {
                    for span in scope["spans"] as? [[String: Any]] ?? [] {
                        spans.append(ExportedSpan(
                            service: service, traceID: Self.hex(span["traceId"]), spanID: Self.hex(span["spanId"]),
                            parentSpanID: Self.hex(span["parentSpanId"]), name: span["name"] as? String ?? "",
                            kind: Self.kind(span["kind"]), attributes: Self.attributes(span["attributes"] as? [[String: Any]] ?? []),
                            statusCode: Self.kind((span["status"] as? [String: Any])?["code"])))
                    }
                }
            }
        }
        return (received.map(\.path), spans)
    }

    /// Waits until `count` spans have come, or 10 s.
    func waitForSpans(_ count: Int) async throws -> [ExportedSpan] {
        for _ in 0..<200 {
            let spans = spans().spans
            if spans.count >= count { return spans }
            try await Task.sleep(for: .milliseconds(50))
        }
        return spans().spans
    }

    /// An id as hex. swift-otel's JSON writes ids in base64, as protobuf's JSON mapping writes
    /// bytes, where OTLP's JSON asks for hex (the reason `rampart proxy` offers no http/json).
    private static func hex(_ value: Any?) -> String {
        guard let text = value as? String, !text.isEmpty else { return "" }
        if text.count % 2 == 0, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// OTLP's JSON writes enums as numbers or as their names.
    private static func kind(_ value: Any?) -> Int {
        if let number = value as? Int { return number }
        switch value as? String {
        case "SPAN_KIND_SERVER": return 2
        case "SPAN_KIND_CLIENT": return 3
        case "STATUS_CODE_OK": return 1
        case "STATUS_CODE_ERROR": return 2
        default: return 0
        }
    }

    private static func attributes(_ list: [[String: Any]]) -> [String: String] {
        var result: [String: String] = [:]
        for attribute in list {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any] else { continue }
            if let text = value["stringValue"] as? String { result[key] = text } else if let other = value.values.first { result[key] = "\(other)" }
        }
        return result
    }
}

/// Spans for each request and side, as Istio's OpenTelemetry tracing provider has Envoy report them.
@Suite("Proxy: tracing", .serialized)
struct TracingTests {
    /// Runs `body` with a span collector, a mesh to make identities in and an echo app, all on loopback.
    func withCollector(_ body: (SpanCollector, MeshFixture, EchoApp) async throws -> Void) async throws {
        let collector = try await SpanCollector()
        let collectorTask = Task { await collector.run() }
        defer { collectorTask.cancel() }
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        try await body(collector, mesh, app)
    }

    @Test("settings: a bare address gets http://, an HTTP endpoint its /v1/traces, and bad values a message naming the option")
    func settings() throws {
        #expect(TracingSettings(endpoint: "127.0.0.1:4317").exporterURL == "http://127.0.0.1:4317")
        #expect(TracingSettings(endpoint: "http://collector:4318", exportProtocol: .httpJSON).exporterURL == "http://collector:4318/v1/traces")
        #expect(TracingSettings(endpoint: "http://collector:4318/custom", exportProtocol: .httpProtobuf).exporterURL == "http://collector:4318/custom")
        for bad in [TracingSettings(endpoint: "ftp://collector"), TracingSettings(endpoint: "http://"), TracingSettings(endpoint: "http://c:4317", samplingPercent: 101),
                    TracingSettings(endpoint: "http://c:4317", samplingPercent: -1)] {
            #expect(throws: ProxyError.self) { try bad.validate() }
            do { try bad.validate() } catch { #expect(error.reason.contains("--tracing-"), "\(error.reason)") }
        }
    }

    @Test("a sampled request gets a CLIENT span on the source's proxy and a SERVER span under it on the destination's, and the app continues the trace")
    func spansThroughBothProxies() async throws {
        try await withCollector { collector, mesh, app in
            let settings = TracingSettings(
                endpoint: "http://127.0.0.1:\(collector.port)", exportProtocol: .httpJSON, samplingPercent: 0, exportDelay: .milliseconds(100))
            let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
            let serverProxy = try await TestProxy(
                workload: WorkloadInfo(
                    name: "server-v1", namespace: "default", labels: ["app": "server", "version": "v1"],
                    services: [ServicePort(name: "server", port: app.port)], appPort: app.port),
                identityDirectory: server.directory, appPort: app.port, tracing: settings)
            try serverProxy.install(SnapshotBuilder.snapshot(resources: []))
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientProxy = try await TestProxy(
                workload: WorkloadInfo(name: "client-v1", namespace: "default", labels: ["app": "client"], appPort: 1),
                identityDirectory: client.directory, appPort: 1, tracing: settings)
            try clientProxy.install(SnapshotBuilder.snapshot(services: [("server", "default", 8080, [("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")])]))
            defer { Task { await clientProxy.stop(); await serverProxy.stop() } }

            // The caller's trace, sampled: kept whatever the proxies' own sampling (0 % here).
            let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
            let callerSpan = "00f067aa0ba902b7"
            let response = try await TestClient.plain(
                port: clientProxy.outboundPort, path: "/orders?id=7", host: "server", headers: [("traceparent", "00-\(traceID)-\(callerSpan)-01")])
            #expect(response.head.status == .ok)
            let echoed = try TestClient.echo(response)
            let appTraceparent = try #require((echoed["headers"] as? [String: String])?["traceparent"])
            let parts = appTraceparent.split(separator: "-").map(String.init)
            #expect(parts.count == 4 && parts[1] == traceID && parts[3] == "01", "\(appTraceparent)")

            let spans = try await collector.waitForSpans(2)
            let clientSpan = try #require(spans.first { $0.kind == 3 }, "\(spans)")
            let serverSpan = try #require(spans.first { $0.kind == 2 }, "\(spans)")
            #expect(clientSpan.traceID == traceID && serverSpan.traceID == traceID)
            // CLIENT under the caller's span, SERVER under CLIENT, the app's parent the SERVER span.
            #expect(clientSpan.parentSpanID == callerSpan)
            #expect(serverSpan.parentSpanID == clientSpan.spanID)
            #expect(parts.count == 4 && parts[2] == serverSpan.spanID, "\(appTraceparent) against \(serverSpan.spanID)")
            // Named by the service and port, as Istio's route decorator names them.
            #expect(clientSpan.name == "server.default.svc.cluster.local:8080/*", "\(clientSpan.name)")
            #expect(serverSpan.name == "server.default.svc.cluster.local:\(app.port)/*", "\(serverSpan.name)")
            #expect(clientSpan.service == "client.default" && serverSpan.service == "server.default", "\(clientSpan.service) \(serverSpan.service)")
            for span in [clientSpan, serverSpan] {
                #expect(span.attributes["http.method"] == "GET", "\(span.attributes)")
                #expect(span.attributes["http.url"] == "http://server/orders?id=7", "\(span.attributes)")
                #expect(span.attributes["http.status_code"] == "200", "\(span.attributes)")
                #expect(span.attributes["component"] == "proxy" && span.attributes["istio.namespace"] == "default", "\(span.attributes)")
                #expect(span.attributes["guid:x-request-id"]?.count == 36, "\(span.attributes)")
                #expect(span.attributes["response_flags"] == "-" && span.statusCode != 2, "\(span.attributes)")
            }
            #expect(clientSpan.attributes["upstream_cluster"] == "outbound|8080||server.default.svc.cluster.local", "\(clientSpan.attributes)")
            #expect(clientSpan.attributes["istio.canonical_service"] == "client" && serverSpan.attributes["istio.canonical_service"] == "server")
            #expect(clientSpan.attributes["guid:x-request-id"] == serverSpan.attributes["guid:x-request-id"])
            #expect(collector.spans().paths.allSatisfy { $0 == "/v1/traces" }, "\(collector.spans().paths)")
        }
    }

    @Test("without a caller's decision the sampling percentage decides; an unsampled trace still reaches the app, and an error is marked")
    func sampling() async throws {
        try await withCollector { collector, mesh, app in
            func proxy(percent: Double, appPort: Int? = nil) async throws -> TestProxy {
                let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
                let proxy = try await TestProxy(
                    workload: WorkloadInfo(name: "server-v1", namespace: "default", labels: ["app": "server"], appPort: appPort ?? app.port),
                    identityDirectory: server.directory, appPort: appPort ?? app.port,
                    tracing: TracingSettings(endpoint: "http://127.0.0.1:\(collector.port)", exportProtocol: .httpJSON, samplingPercent: percent, exportDelay: .milliseconds(100)))
                try proxy.install(SnapshotBuilder.snapshot(resources: [
                    SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
                    SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin\"]"),
                ]))
                return proxy
            }
            // 0 %: no span, but the app still gets a trace context (not sampled) to continue.
            let never = try await proxy(percent: 0)
            let unsampled = try TestClient.echo(try await TestClient.plain(port: never.inboundPort, path: "/a"))
            let context = (unsampled["headers"] as? [String: String])?["traceparent"] ?? ""
            #expect(context.hasPrefix("00-") && context.hasSuffix("-00"), "\(context)")
            await never.stop()

            // 100 %: every new trace is recorded; a denied request's span says 403.
            let always = try await proxy(percent: 100)
            defer { Task { await always.stop() } }
            let sampled = try TestClient.echo(try await TestClient.plain(port: always.inboundPort, path: "/c"))
            #expect(((sampled["headers"] as? [String: String])?["traceparent"] ?? "").hasSuffix("-01"))
            // A caller's decision not to sample is kept even here: no span, and the app is told so.
            let declined = try TestClient.echo(try await TestClient.plain(
                port: always.inboundPort, path: "/b", headers: [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")]))
            let passed = (declined["headers"] as? [String: String])?["traceparent"] ?? ""
            #expect(passed.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") && passed.hasSuffix("-00"), "\(passed)")
            let denied = try await TestClient.plain(port: always.inboundPort, path: "/admin")
            #expect(denied.head.status == .forbidden)
            let spans = try await collector.waitForSpans(2)
            #expect(spans.count == 2, "only the sampled requests: \(spans.map(\.name))")
            let forbidden = try #require(spans.first { $0.attributes["http.status_code"] == "403" }, "\(spans.map(\.attributes))")
            #expect(forbidden.kind == 2 && forbidden.parentSpanID.isEmpty && forbidden.statusCode != 2)
            #expect(spans.allSatisfy { $0.attributes["http.url"]?.hasPrefix("http://app/") == true })

            // An application out of reach: 503, and the span is an error, as Envoy marks a 5xx.
            let unreachable = try await proxy(percent: 100, appPort: 1)
            defer { Task { await unreachable.stop() } }
            let failed = try await TestClient.plain(port: unreachable.inboundPort, path: "/d")
            #expect(failed.head.status == .serviceUnavailable)
            let all = try await collector.waitForSpans(3)
            let error = try #require(all.first { $0.attributes["http.status_code"] == "503" }, "\(all.map(\.attributes))")
            #expect(error.attributes["error"] == "true" && error.statusCode == 2, "\(error.attributes) \(error.statusCode)")
            #expect(error.attributes["response_flags"]?.contains("UF") == true, "\(error.attributes)")
        }
    }

    @Test("a collector out of reach costs the requests nothing: they are answered as usual")
    func collectorOutOfReach() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let proxy = try await TestProxy(
            workload: WorkloadInfo(name: "server-v1", namespace: "default", appPort: app.port), identityDirectory: server.directory, appPort: app.port,
            tracing: TracingSettings(endpoint: "http://127.0.0.1:1", samplingPercent: 100, exportDelay: .milliseconds(50)))
        defer { Task { await proxy.stop() } }
        try proxy.install(SnapshotBuilder.snapshot(resources: [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")]))
        for index in 0..<20 {
            let response = try await TestClient.plain(port: proxy.inboundPort, path: "/r\(index)")
            #expect(response.head.status == .ok)
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
