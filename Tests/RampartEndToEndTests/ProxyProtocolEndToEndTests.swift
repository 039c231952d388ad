import Foundation
import Testing

/// End-to-end cases for the protocols beside plain HTTP: gRPC-Web bridged to a grpcio server, and
/// TCP carried from an outbound TCP listener, each checked with independent clients (curl,
/// Python) and through the proxies' own metrics.
extension ProxyEndToEndTests {
    @Test("curl's gRPC-Web calls reach a grpcio server behind --app-protocol grpc-web, and the metrics count them as gRPC")
    func grpcWebToGRPCIO() async throws {
        try await withMesh { mesh in
            let w = try await MeshWorkload.start(
                name: "w", namespace: Self.namespace, ca: mesh.ca, directory: mesh.directory, app: "grpc_stream_app.py",
                proxyArguments: ["--app-protocol", "grpc-web"])
            do {
                /// Makes a base64 gRPC-Web call of one message through proxy A's outbound side;
                /// returns the HTTP status, the response headers (lower-cased names) and the
                /// decoded frames (flag, payload as text).
                func call(_ method: String, _ message: String) async throws -> (Int, [String: String], [(UInt8, String)]) {
                    let payload = Array(message.utf8)
                    let length = UInt32(payload.count)
                    let frame = [0, UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + payload
                    let headerFile = "\(mesh.directory)/grpc-web-\(UUID().uuidString).headers"
                    let result = try await Curl.get(
                        "http://127.0.0.1:\(mesh.a.outbound)/test.Stream/\(method)",
                        [
                            "-H", "Host: w", "-H", "content-type: application/grpc-web-text", "-H", "accept: application/grpc-web-text",
                            "-H", "x-grpc-web: 1", "--data-binary", Data(frame).base64EncodedString(), "-D", headerFile,
                        ])
                    var headers: [String: String] = [:]
                    for line in ((try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "").split(separator: "\r\n") {
                        guard let colon = line.firstIndex(of: ":") else { continue }
                        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                    // Each frame is base64-encoded on its own, so the text is decoded four characters at a time.
                    var bytes: [UInt8] = []
                    let text = Array(result.body.utf8.filter { $0 != UInt8(ascii: "\n") })
                    for start in stride(from: 0, to: text.count - text.count % 4, by: 4) {
                        bytes += Data(base64Encoded: Data(text[start..<start + 4])).map(Array.init) ?? []
                    }
                    var frames: [(UInt8, String)] = []
                    var at = 0
                    while at + 5 <= bytes.count {
                        let size = bytes[at + 1...at + 4].reduce(0) { $0 << 8 | Int($1) }
                        guard at + 5 + size <= bytes.count else { break }
                        frames.append((bytes[at], String(decoding: bytes[at + 5..<at + 5 + size], as: UTF8.self)))
                        at += 5 + size
                    }
                    return (result.code, headers, frames)
                }
                // Proxy A learns of w from the control plane; a server stream then comes back
                // whole, each message a frame, and grpcio's trailers as the last one.
                var countdown: (Int, [String: String], [(UInt8, String)]) = (0, [:], [])
                let limit = Date().addingTimeInterval(30)
                while Date() < limit {
                    countdown = try await call("Countdown", "2")
                    if countdown.0 == 200 { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(countdown.0 == 200, "\(countdown)\n\(w.proxy.log)")
                #expect(countdown.1["content-type"] == "application/grpc-web-text+proto", "\(countdown.1)")
                #expect(countdown.2.map(\.1).prefix(2) == ["tick 2", "tick 1"], "\(countdown.2)")
                #expect(countdown.2.map(\.0) == [0, 0, 0x80], "\(countdown.2)")
                #expect(countdown.2.last?.1.lowercased().contains("grpc-status:0") == true, "\(countdown.2)")
                // The call's messages: one in, two ticks out, counted once the call has ended.
                var counted = ""
                for _ in 0..<50 {
                    counted = try await Curl.get("http://127.0.0.1:\(w.admin)/stats/prometheus").body
                    if Self.total(counted, "istio_response_messages_total") == 2 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(Self.total(counted, "istio_request_messages_total") == 1, "\(counted)")
                #expect(Self.total(counted, "istio_response_messages_total") == 2, "\(counted)")

                // A method grpcio does not have: UNIMPLEMENTED, in the head or the trailers' frame.
                let missing = try await call("Missing", "x")
                #expect(missing.0 == 200, "\(missing)")
                let status = missing.1["grpc-status"] ?? missing.2.last.flatMap { frame in
                    frame.1.lowercased().split(separator: "\r\n").first { $0.hasPrefix("grpc-status:") }.map { String($0.dropFirst(12)) }
                }
                #expect(status == "12", "\(missing)")

                // With grpcio gone, the proxy's own 503 carries UNAVAILABLE for the browser.
                _ = try await offPool { w.app.stop() }
                let unreachable = try await call("Countdown", "1")
                #expect(unreachable.0 == 503 && unreachable.1["grpc-status"] == "14", "\(unreachable)")
                #expect(unreachable.2.isEmpty, "\(unreachable)")

                // w's proxy counts them as gRPC calls with their statuses, as Istio's stats filter
                // (after the gRPC-Web filter) counts them; the 503 keeps its HTTP status.
                let metrics = try await Curl.get("http://127.0.0.1:\(w.admin)/stats/prometheus").body
                let inbound = metrics.split(separator: "\n").filter {
                    $0.hasPrefix("istio_requests_total{") && $0.contains("reporter=\"destination\"")
                }
                #expect(inbound.contains { $0.contains("request_protocol=\"grpc\"") && $0.contains("grpc_response_status=\"0\"") }, "\(metrics)")
                #expect(inbound.contains { $0.contains("request_protocol=\"grpc\"") && $0.contains("grpc_response_status=\"12\"") }, "\(metrics)")
                #expect(
                    inbound.contains {
                        $0.contains("request_protocol=\"grpc\"") && $0.contains("grpc_response_status=\"14\"") && $0.contains("response_code=\"503\"")
                    }, "\(metrics)")
                #expect(!inbound.contains { $0.contains("request_protocol=\"http\"") }, "\(metrics)")
                // No call after the countdown got a message back. Their request messages count
                // only if they came before the answer (grpcio answers an unknown method, and the
                // proxy a refused connection, without waiting for the body), as in Envoy.
                #expect((1...3).contains(Self.total(metrics, "istio_request_messages_total")), "\(metrics)")
                #expect(Self.total(metrics, "istio_response_messages_total") == 2, "\(metrics)")
            } catch {
                _ = try? await offPool { w.stop() }
                throw error
            }
            _ = try? await offPool { w.stop() }
        }
    }

    @Test("an --outbound-tcp listener carries a TCP client's bytes over mTLS to a TCP service, and both proxies count them")
    func outboundTCP() async throws {
        try await withMesh { mesh in
            let t = try await MeshWorkload.start(name: "t", namespace: Self.namespace, ca: mesh.ca, directory: mesh.directory, app: "tcp_echo_app.py")
            let c: MeshWorkload
            do {
                c = try await MeshWorkload.start(
                    name: "c", namespace: Self.namespace, ca: mesh.ca, directory: mesh.directory,
                    proxyArguments: ["--outbound-tcp", "127.0.0.1:0=t:\(t.appPort)"])
            } catch {
                _ = try? await offPool { t.stop() }
                throw error
            }
            do {
                // The ready line names the listener as its flag does, with the port it bound.
                let word = c.proxy.readyLine.split(separator: " ").first { $0.hasPrefix("outbound-tcp=") } ?? ""
                let listener = word.dropFirst("outbound-tcp=".count).split(separator: "=")
                #expect(listener.last == "t:\(t.appPort)", "\(c.proxy.readyLine)")
                let local = try #require(listener.first.flatMap { Int($0.split(separator: ":").last ?? "") }, "\(c.proxy.readyLine)")
                #expect(local > 0 && listener.first == "127.0.0.1:\(local)", "\(c.proxy.readyLine)")
                // A Python client, once c's proxy knows t: its bytes come back through both proxies.
                let client = """
                    import socket, sys
                    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
                    s.sendall(b"\\x00\\x01hello over tcp")
                    data = b""
                    while len(data) < 16:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        data += chunk
                    s.close()
                    print(data[2:].decode())
                    """
                var echoed = ""
                let limit = Date().addingTimeInterval(30)
                while Date() < limit {
                    echoed = (try? await offPool { try run("python3", ["-c", client, String(local)], timeout: 20) })?.trimmedOutput ?? ""
                    if echoed == "hello over tcp" { break }
                    try await Task.sleep(for: .milliseconds(300))
                }
                #expect(echoed == "hello over tcp", "\(c.proxy.log)\n\(t.proxy.log)")

                // Each side reports the connection as Istio's proxies do, the destination with the
                // client's SPIFFE ID from its certificate.
                var source = ""
                var destination = ""
                try await eventually(timeout: 10, "both proxies' TCP metrics") {
                    source = (try? String(contentsOfFile: c.accessLog, encoding: .utf8)) ?? ""
                    destination = (try? String(contentsOfFile: t.accessLog, encoding: .utf8)) ?? ""
                    return source.contains("\"protocol\":\"TCP\"") && destination.contains("\"protocol\":\"TCP\"")
                }
                let tMetrics = try await Curl.get("http://127.0.0.1:\(t.admin)/stats/prometheus").body
                #expect(tMetrics.split(separator: "\n").contains {
                    $0.hasPrefix("istio_tcp_received_bytes_total{") && $0.contains("reporter=\"destination\"")
                        && $0.contains("source_principal=\"\(c.spiffeID)\"") && $0.hasSuffix(" 16")
                }, "\(tMetrics)")
                let cMetrics = try await Curl.get("http://127.0.0.1:\(c.admin)/stats/prometheus").body
                #expect(cMetrics.split(separator: "\n").contains {
                    $0.hasPrefix("istio_tcp_connections_closed_total{") && $0.contains("reporter=\"source\"")
                        && $0.contains("destination_principal=\"\(t.spiffeID)\"") && $0.contains("destination_service=\"t.\(Self.namespace).svc.cluster.local\"")
                }, "\(cMetrics)")

                // A client that half-closes still gets what the application sends after reading
                // its end: the FIN crosses the mTLS hop as a close_notify, the answer comes back.
                let halfClosing = """
                    import socket, sys
                    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
                    s.sendall(b"\\x00\\x02request")
                    s.shutdown(socket.SHUT_WR)
                    data = b""
                    while True:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        data += chunk
                    s.close()
                    print(data[2:].decode())
                    """
                let answered = try await offPool { try run("python3", ["-c", halfClosing, String(local)], timeout: 20) }
                #expect(answered.trimmedOutput == "requestend after 9 bytes", "\(answered.stderr)\n\(c.proxy.log)\n\(t.proxy.log)")
            } catch {
                _ = try? await offPool { c.stop() }
                _ = try? await offPool { t.stop() }
                throw error
            }
            _ = try? await offPool { c.stop() }
            _ = try? await offPool { t.stop() }
        }
    }
}
