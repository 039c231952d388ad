import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Testing

/// The inbound side decides a request on its head, as Envoy's filters decide on the headers: a
/// refused upload is answered before its body is sent, and an allowed one is decided again, whole.
@Suite("Requests decided on their heads", .serialized)
struct HeadDecisionTests {
    private static let denyAdmin = SnapshotBuilder.authorizationPolicy(
        name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]")

    // MARK: The assembler

    private static func channel(decidesOnHead: Bool) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 1 << 20, decidesOnHead: decidesOnHead))
        return channel
    }

    private static func post(_ uri: String, length: Int) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: .POST, uri: uri, headers: ["host": "app", "content-length": "\(length)"])
    }

    /// Sends `parts` as one read.
    private static func read(_ channel: EmbeddedChannel, _ parts: [HTTPServerRequestPart]) {
        for part in parts { channel.pipeline.fireChannelRead(part) }
        channel.pipeline.fireChannelReadComplete()
    }

    @Test("a head whose body is still to come is handed on once, at the end of its read, then the request whole")
    func announcedOnce() throws {
        let channel = try Self.channel(decidesOnHead: true)
        Self.read(channel, [.head(Self.post("/upload", length: 10)), .body(ByteBuffer(string: "abc"))])
        guard case .awaitingBody(let head, let partial)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the head was not handed on ahead of its body")
            return
        }
        #expect(head.uri == "/upload" && partial.bytesReceived == 3)
        Self.read(channel, [.body(ByteBuffer(string: "defg"))])
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil, "the head was handed on twice")
        Self.read(channel, [.body(ByteBuffer(string: "hij")), .end(nil)])
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the request did not follow whole")
            return
        }
        #expect(String(buffer: request.body) == "abcdefghij")
        #expect(try channel.finish().isClean)
    }

    @Test("a request that comes whole in one read, a bodiless one, or any on a connection not deciding on heads, is handed on whole only")
    func notAnnounced() throws {
        let deciding = try Self.channel(decidesOnHead: true)
        Self.read(deciding, [.head(Self.post("/upload", length: 3)), .body(ByteBuffer(string: "abc")), .end(nil)])
        Self.read(deciding, [.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a", headers: ["host": "app"])), .end(nil)])
        for uri in ["/upload", "/a"] {
            guard case .complete(let request)? = try deciding.readInbound(as: AssembledRequest.self) else {
                Issue.record("\(uri) was not handed on whole")
                return
            }
            #expect(request.head.uri == uri)
        }
        #expect(try deciding.readInbound(as: AssembledRequest.self) == nil)

        let other = try Self.channel(decidesOnHead: false)
        Self.read(other, [.head(Self.post("/upload", length: 10)), .body(ByteBuffer(string: "abc"))])
        #expect(try other.readInbound(as: AssembledRequest.self) == nil)
        Self.read(other, [.body(ByteBuffer(string: "defghij")), .end(nil)])
        guard case .complete? = try other.readInbound(as: AssembledRequest.self) else {
            Issue.record("the request was not handed on whole")
            return
        }
    }

    @Test("a pipelined request's head is not handed on while an earlier request waits for its answer; a body past the limit in the head's read goes on as an upload, not as a head")
    func notWhileBusy() throws {
        let channel = try Self.channel(decidesOnHead: true)
        Self.read(channel, [.head(Self.post("/first", length: 1)), .body(ByteBuffer(string: "x")), .end(nil), .head(Self.post("/second", length: 10))])
        guard case .complete(let first)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("no first request")
            return
        }
        #expect(first.head.uri == "/first")
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil, "the second head was handed on while the first was unanswered")

        let small = EmbeddedChannel()
        try small.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 4, decidesOnHead: true))
        Self.read(small, [.head(Self.post("/big", length: 10)), .body(ByteBuffer(string: "0123456789"))])
        guard case .complete(let big)? = try small.readInbound(as: AssembledRequest.self) else {
            Issue.record("a body past the limit was not handed on as an upload")
            return
        }
        #expect(big.upload != nil && big.head.uri == "/big")
        #expect(try small.readInbound(as: AssembledRequest.self) == nil, "the request was handed on twice")
    }

    // MARK: A live proxy

    /// Sends `first`, waits a while, sends `second`, and returns everything received until the
    /// server closes the connection (within 5 s).
    private static func inTwoWrites(
        port: Int, _ first: String, _ second: String, between: @Sendable () async throws -> Void = {}
    ) async throws -> String {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let channel = client.channel
        let watchdog = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        return try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: first))
            try await Task.sleep(for: .milliseconds(300))
            try await between()
            try await outbound.write(ByteBuffer(string: second))
            var received = ""
            do {
                for try await chunk in inbound { received += String(buffer: chunk) }
            } catch {
                // A reset after the answer: what came is the answer.
            }
            return received
        }
    }

    /// Runs `body` with an echo application behind a proxy holding `denyAdmin` (see
    /// `DataPathTests.withServer`), and the access log's path.
    private func withProxy(_ body: (MeshFixture, TestProxy, String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-head-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await DataPathTests().withServer(logFile: log) { mesh, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: [Self.denyAdmin]))
            try await body(mesh, proxy, log)
        }
    }

    /// The access log's lines whose path is `path`.
    private static func logged(_ log: String, path: String) -> [[String: Any]] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["path"] as? String == path }
    }

    @Test("a refused upload is answered on its head over HTTP/1.1, with connection: close, and the connection closes soon after")
    func refusedOnHead() async throws {
        try await withProxy { _, proxy, log in
            // The body is never sent: the answer cannot wait for it.
            let head = "POST /admin/upload HTTP/1.1\r\nHost: app\r\nContent-Length: 1000000\r\n\r\n"
            let clock = ContinuousClock()
            let start = clock.now
            let received = try await RawClient.untilClosed(port: proxy.inboundPort, sending: head + "first bytes", timeout: .seconds(8))
            let elapsed = clock.now - start
            #expect(received.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "\(received)")
            #expect(received.lowercased().contains("\r\nconnection: close\r\n"), "\(received)")
            #expect(received.hasSuffix("RBAC: access denied"), "\(received)")
            // Closed after the linger, long before the stream idle timeout (5 minutes).
            #expect(elapsed < .seconds(6), "the connection stayed open \(elapsed)")
            let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/admin/upload" }
            #expect(line["response_code"] as? Int == 403, "\(line)")
            #expect(line["response_code_details"] as? String == "rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]", "\(line)")
            // What of the body had come when the head was decided (the bytes sent with the head,
            // unless a read split them off).
            let bytes = line["bytes_received"] as? Int ?? -1
            #expect((0..."first bytes".utf8.count).contains(bytes), "\(line)")
            // Recorded once: the request is not decided again when the connection closes.
            try await Task.sleep(for: .milliseconds(300))
            #expect(Self.logged(log, path: "/admin/upload").count == 1)
        }
    }

    @Test("curl uploading slowly over mTLS to a refused path gets its 403 long before the upload could end")
    func curlRefusedUpload() async throws {
        try await withProxy { mesh, proxy, _ in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let file = "\(mesh.directory)/upload.bin"
            try Data(repeating: 0x61, count: 2 << 20).write(to: URL(fileURLWithPath: file))
            // 2 MiB at 256 KiB/s takes 8 s to send; the answer must come within 5.
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "-k", "--max-time", "5", "--limit-rate", "256k",
                "--cert", "\(client.directory)/cert-chain.pem", "--key", "\(client.directory)/key.pem",
                "-H", "Expect:", "--data-binary", "@\(file)", "https://127.0.0.1:\(proxy.inboundPort)/admin/upload",
            ]
            let output = Pipe()
            curl.standardOutput = output
            try curl.run()
            curl.waitUntilExit()
            let status = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(status == "403", "curl exited \(curl.terminationStatus) with status \(status)")
            #expect(curl.terminationStatus != 28, "curl timed out: the refusal waited for the upload")
        }
    }

    @Test("Expect: 100-continue on a refused path: the refusal comes without the body being sent")
    func refusedExpectContinue() async throws {
        try await withProxy { _, proxy, _ in
            let head = "PUT /admin/file HTTP/1.1\r\nHost: app\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
            let (received, timedOut) = try await RawClient.exchange(port: proxy.inboundPort, sending: head, timeout: .seconds(5)) {
                $0.contains(" 403 Forbidden\r\n")
            }
            #expect(!timedOut, "no refusal without the body: \(received)")
            #expect(received.contains("HTTP/1.1 403 Forbidden\r\n"), "\(received)")
        }
    }

    @Test("an allowed upload waits for its body, reaches the application whole, and is recorded once, timed from its head")
    func allowedWaitsForBody() async throws {
        try await withProxy { _, proxy, log in
            let body = String(repeating: "y", count: 20_000)
            let head = "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            // The head and a part of the body, then nothing for a while: no answer yet.
            let waiting = try await RawClient.outcome(port: proxy.inboundPort, sending: head + "yyy", timeout: .milliseconds(700))
            #expect(waiting == .stalled, "an allowed request was answered before its body came: \(waiting)")
            // Then the whole request in two writes, the second after the head has been decided.
            let all = try await Self.inTwoWrites(port: proxy.inboundPort, head + "yyy", String(body.dropFirst(3)))
            #expect(all.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(all)")
            #expect(all.contains("\"body_bytes\":20000"), "\(all)")
            let served = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/upload" && $0["response_code"] as? Int == 200 }
            // Its duration counts from its head, as Envoy's does: the 300 ms before the rest of the body are in it.
            #expect((served["duration"] as? Int ?? 0) >= 250, "\(served)")
            try await Task.sleep(for: .milliseconds(300))
            let lines = Self.logged(log, path: "/upload")
            // The stalled request (abandoned when its client went away) and the whole one.
            #expect(lines.filter { $0["response_code"] as? Int == 200 }.count == 1, "\(lines)")
            #expect(lines.filter { $0["response_code"] as? Int == 403 }.isEmpty, "\(lines)")
        }
    }

    @Test("an upload allowed on its head stays allowed when a policy denying it arrives with its body, as Envoy decides a stream once")
    func decidedOnce() async throws {
        try await withProxy { _, proxy, log in
            let body = String(repeating: "z", count: 5_000)
            let head = "POST /upload/once HTTP/1.1\r\nHost: app\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            let denyUploads = SnapshotBuilder.authorizationPolicy(
                name: "deny-uploads", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/upload/*\"]")
            let all = try await Self.inTwoWrites(port: proxy.inboundPort, head + "zzz", String(body.dropFirst(3))) {
                // The head has been decided (allowed); the policy comes before the rest of the body.
                try proxy.install(SnapshotBuilder.snapshot(version: 3, resources: [Self.denyAdmin, denyUploads]))
            }
            #expect(all.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(all.prefix(300))")
            #expect(all.contains("\"body_bytes\":5000"), "\(all.suffix(300))")
            let served = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/upload/once" }
            #expect(served["response_code"] as? Int == 200 && served["authz_policy"] is NSNull, "\(served)")
            // The next request is decided under the new policy.
            let next = try await RawClient.untilClosed(port: proxy.inboundPort, sending: head + body)
            #expect(next.hasPrefix("HTTP/1.1 403 "), "\(next.prefix(200))")
        }
    }

    @Test("over HTTP/2, a refused request whose body is still to come gets its 403 on its stream")
    func refusedOnHeadHTTP2() async throws {
        try await withProxy { _, proxy, log in
            let response = try await RawHTTP2.frames(
                port: proxy.inboundPort,
                headers: [(":method", "POST"), (":path", "/admin/stream"), (":scheme", "http"), (":authority", "app"), ("content-length", "100000")],
                endStream: false, timeout: .seconds(5))
            #expect(response.head.first(name: ":status") == "403", "\(response.head)")
            #expect(response.body == "RBAC: access denied", "\(response.body)")
            let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/admin/stream" }
            #expect(line["response_code"] as? Int == 403, "\(line)")
        }
    }
}
