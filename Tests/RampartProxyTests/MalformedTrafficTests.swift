import Foundation
@testable import RampartPolicy
@testable import RampartProxy
import Testing

/// Requests built at random from the parts clients and attackers get wrong (methods, targets,
/// versions, framing headers, hop-by-hop lists, forwarding headers, bodies that do not match
/// their framing), sent as raw bytes to a live proxy's inbound and outbound listeners. Whatever
/// arrives, the proxy answers with an HTTP status or closes the connection; it keeps serving
/// well-formed requests afterwards, and never holds a connection the client has finished with.
extension DataPathTests {
    @Test("random malformed and unusual requests on both listeners: each is answered or closed, and the proxy keeps serving")
    func malformedTraffic() async throws {
        try await withServer { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [
                SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE"),
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-admin", namespace: "default",
                    body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]\n  when:\n  - key: request.headers[x-user]\n    notValues: [\"root\"]"),
            ]))
            var generator = MalformedRequests(seed: 0x5241_4D50)
            let requests = (0..<240).map { _ in generator.next() }
            var stalled: [String] = []
            var answered = 0
            let inboundPort = proxy.inboundPort
            for (batchIndex, batch) in stride(from: 0, to: requests.count, by: 8).map({ Array(requests[$0..<min($0 + 8, requests.count)]) }).enumerated() {
                let outcomes = try await withThrowingTaskGroup(of: (answered: Bool, stalled: String?).self) { group in
                    for (offset, text) in batch.enumerated() {
                        let port = (batchIndex + offset) % 2 == 0 ? inboundPort : proxy.outboundPort
                        group.addTask {
                            switch try await RawClient.outcome(port: port, sending: text) {
                            case .answered: (true, nil)
                            case .closed: (false, nil)
                            case .stalled: (false, "\(port == inboundPort ? "inbound" : "outbound"): \(text.prefix(300).debugDescription)")
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                answered += outcomes.filter(\.answered).count
                stalled += outcomes.compactMap(\.stalled)
                if batchIndex % 5 == 4 {
                    let fine = try await RawClient.untilClosed(
                        port: proxy.inboundPort, sending: "GET /ok HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
                    #expect(fine.hasPrefix("HTTP/1.1 200 OK"), "after batch \(batchIndex): \(fine.prefix(200))")
                }
            }
            let denied = try await RawClient.untilClosed(
                port: proxy.inboundPort, sending: "GET /admin HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            #expect(denied.hasPrefix("HTTP/1.1 403 Forbidden"), "\(denied.prefix(200))")
            #expect(stalled.isEmpty, "\(stalled.count) connections were neither answered nor closed within 10 s; first: \(stalled.first ?? "")")
            // Most of them get an answer; a few (bytes that are no HTTP at all, on a port that
            // passes such traffic through) may just be closed.
            #expect(answered > requests.count / 2, "\(answered) of \(requests.count) answered")
        }
    }
}

/// Random requests from a vocabulary of well-formed and malformed parts.
private struct MalformedRequests {
    var random: SeededGenerator

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    static let methods = ["GET", "GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT", "TRACE", "get", "G ET", "", "PRI", String(repeating: "M", count: 300)]
    static let targets = [
        "/ok", "/", "*", "http://app/x", "http://app:80/x?y", "//x", "/%00", "/a/../../..", "/x?" + String(repeating: "q", count: 3000), "app:80",
        "/x#f", "/" + String(repeating: "p", count: 9000), "/admin", "/ADMIN", "/%2e%2e/admin", "/a%2Fadmin", "/admin\\..\\x", "", "/\u{7f}", "/é",
    ]
    static let versions = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "", "HTTP/9.9", "http/1.1", "HTTP/1.1 extra"]
    /// Headers other than the framing ones.
    static let headers = [
        "Host: app", "Host: app", "Host:", "Host: app:99999", "Host: [::1", "Host: a b", "Host: app\r\nHost: other",
        "Connection: close", "Connection: upgrade", "Connection: keep-alive", "Connection: te, x-user, x-forwarded-for", "Connection: x-request-id, host",
        "Upgrade: websocket", "Upgrade: h2c", "Upgrade: foo/1, bar", "HTTP2-Settings: AAMAAABkAAQAAP__", "Expect: 100-continue", "Expect: nothing",
        "TE: trailers", "TE: gzip", "x-forwarded-for: not-an-address", "x-forwarded-for: " + (0..<400).map { "10.0.\($0 % 250).1" }.joined(separator: ", "),
        "x-forwarded-client-cert: By=spiffe://x;Hash=zz;URI=\"", "x-forwarded-proto: gopher", "x-request-id: " + String(repeating: "r", count: 2000),
        "traceparent: 00-zz-zz-zz", "grpc-timeout: 99999999999H", "grpc-timeout: x", "content-type: application/grpc", ":authority: app",
        "no colon here", " leading: space", "x-folded: a\r\n b", "x-user: root", "x-user: ", "x-envoy-original-path: /admin",
        "authorization: Bearer a.b.c", "authorization: Bearer ", "cookie: a=b; c", "x-\u{e9}: utf8", "x-nul: a\u{0}b", "x-many: " + String(repeating: "v,", count: 4000),
    ]
    /// Framing headers with a body that completes what they announce, or that the parser refuses
    /// outright: a request whose body is still to come is rightly waited for, as by any proxy.
    static let framings: [(headers: String, body: String)] = [
        ("", ""), ("", ""), ("Content-Length: 0", ""), ("Content-Length: 5", "hello"), ("Content-Length: 70000", String(repeating: "b", count: 70000)),
        ("Content-Length: -1", ""), ("Content-Length: 99999999999999999999", ""), ("Content-Length: 5, 5", "hello"),
        ("Content-Length: 5\r\nContent-Length: 6", "hello!"), ("Content-Length: 0x10", ""), ("Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked", "0\r\nx-trailer: t\r\n\r\n"), ("Transfer-Encoding: chunked", "zz\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: gzip", ""), ("Transfer-Encoding: chunked, chunked", "0\r\n\r\n"), ("Transfer-Encoding: identity", ""),
        ("Transfer-Encoding: chunked\r\nContent-Length: 3", "0\r\n\r\n"),
        ("Content-Length: 3", "abc" + "GET /ok HTTP/1.1\r\nHost: app\r\n\r\n"), ("", "\u{1}\u{2}\u{3}"),
    ]

    mutating func next() -> String {
        if random.chance(0.05) {
            // Not HTTP at all: a TLS record header, a line protocol, bytes.
            return random.pick(["\u{16}\u{3}\u{1}\u{0}\u{5}hello", "SET key value\r\n\r\n", "\u{0}\u{0}\u{0}\u{0}", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\u{0}\u{0}\u{0}\u{4}\u{0}\u{0}\u{0}\u{0}\u{0}GARBAGE, NOT A FRAME"])
        }
        let line = [random.pick(Self.methods), random.pick(Self.targets), random.pick(Self.versions)].filter { !$0.isEmpty || random.chance(0.5) }
        var text = line.joined(separator: " ") + "\r\n"
        for _ in 0..<random.index(6) { text += random.pick(Self.headers) + "\r\n" }
        let framing = random.pick(Self.framings)
        if !framing.headers.isEmpty { text += framing.headers + "\r\n" }
        if random.chance(0.7) { text += "Connection: close\r\n" }
        text += "\r\n" + framing.body
        return text
    }
}
