import Foundation
import Testing

/// Traces from real proxy processes, received by an independent OTLP/gRPC collector (Python,
/// built from the opentelemetry-proto package).
extension ProxyEndToEndTests {
    @Test("both proxies send their spans of a request to an OTLP/gRPC collector, one trace from curl's traceparent; a TEXT access log")
    func tracesToCollector() async throws {
        try await withMesh { mesh in
            let output = "\(mesh.directory)/spans.jsonl"
            let collector = try await offPool {
                try ServiceProcess(
                    "/usr/bin/env", ["python3", Paths.interop.appendingPathComponent("otlp_collector.py").path, output],
                    logFile: "\(mesh.directory)/collector.log", marker: "listening")
            }
            defer { collector.stop() }
            let port = try #require(collector.port(after: "listening "), "\(collector.readyLine)")
            let tracing = ["--tracing-endpoint", "http://127.0.0.1:\(port)", "--tracing-sampling", "100"]
            // s also writes its access log in Istio's text format.
            let s = try await MeshWorkload.start(
                name: "s", namespace: Self.namespace, ca: mesh.ca, directory: mesh.directory, proxyArguments: tracing + ["--access-log-encoding", "TEXT"])
            let c: MeshWorkload
            do {
                c = try await MeshWorkload.start(name: "c", namespace: Self.namespace, ca: mesh.ca, directory: mesh.directory, proxyArguments: tracing)
            } catch {
                _ = try? await offPool { s.stop() }
                throw error
            }
            do {
                let traceID = "0af7651916cd43dd8448eb211c80319c"
                try await eventuallyAsync(timeout: 30, "c's proxy to reach s\n\(c.proxy.log)") {
                    try await Curl.get("http://127.0.0.1:\(c.outbound)/ready", ["-H", "Host: s"]).code == 200
                }
                let answer = try await Curl.get(
                    "http://127.0.0.1:\(c.outbound)/trace-me", ["-H", "Host: s", "-H", "traceparent: 00-\(traceID)-b7ad6b7169203331-01"])
                #expect(answer.code == 200)
                let echoed = answer.body
                // The application got the trace, under s's proxy's span.
                let headers = Curl.json(echoed)["headers"] as? [String: String] ?? [:]
                let context = (headers["traceparent"] ?? "").split(separator: "-").map(String.init)
                #expect(context.count == 4 && context[1] == traceID && context[3] == "01", "\(headers)")

                // Spans leave in batches every 5 s.
                var spans: [[String: Any]] = []
                try await eventuallyAsync(timeout: 20, "two spans of trace \(traceID) at the collector\n\(collector.log)") {
                    let lines = ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n")
                    spans = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                        .filter { $0["trace_id"] as? String == traceID }
                    return spans.count >= 2
                }
                let client = try #require(spans.first { $0["kind"] as? String == "SPAN_KIND_CLIENT" }, "\(spans)")
                let server = try #require(spans.first { $0["kind"] as? String == "SPAN_KIND_SERVER" }, "\(spans)")
                #expect(client["parent_span_id"] as? String == "b7ad6b7169203331", "\(client)")
                #expect(server["parent_span_id"] as? String == client["span_id"] as? String, "\(server) under \(client)")
                #expect(context.count == 4 && context[2] == server["span_id"] as? String, "the app's parent: \(headers)")
                #expect(client["service"] as? String == "c.\(Self.namespace)" && server["service"] as? String == "s.\(Self.namespace)")
                #expect(client["name"] as? String == "s.\(Self.namespace).svc.cluster.local:\(s.appPort)/*", "\(client)")
                for span in [client, server] {
                    let attributes = span["attributes"] as? [String: String] ?? [:]
                    #expect(attributes["http.status_code"] == "200" && attributes["http.method"] == "GET", "\(attributes)")
                    #expect(attributes["http.url"]?.hasSuffix("/trace-me") == true, "\(attributes)")
                    #expect(span["status"] as? String != "STATUS_CODE_ERROR" && (span["duration_ns"] as? Int ?? 0) > 0, "\(span)")
                }

                var textLine = ""
                try await eventuallyAsync(timeout: 10, "s's access-log line for /trace-me") {
                    let log = (try? String(contentsOfFile: s.accessLog, encoding: .utf8)) ?? ""
                    textLine = log.split(separator: "\n").first { $0.contains("/trace-me") }.map(String.init) ?? ""
                    return !textLine.isEmpty
                }
                #expect(textLine.hasPrefix("[") && textLine.contains("] \"GET /trace-me HTTP/1.1\" 200 - via_upstream - \"-\" "), "\(textLine)")
                #expect(textLine.hasSuffix(" default") && textLine.contains(" inbound|\(s.appPort)|| "), "\(textLine)")
            } catch {
                _ = try? await offPool { c.stop() }
                _ = try? await offPool { s.stop() }
                throw error
            }
            _ = try? await offPool { c.stop() }
            _ = try? await offPool { s.stop() }
        }
    }
}
