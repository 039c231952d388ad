import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Testing

/// A request goes on at the end of the read that brought its head, with what came of its body,
/// the rest following as the client sends it (see `StreamedUpload`), as Envoy passes a request on:
/// the inbound side decides it on its head, so a refused upload is answered before its body is
/// sent, and an allowed one reaches the application while its body still comes.
@Suite("Requests passed on before their ends", .serialized)
struct HeadDecisionTests {
    private static let denyAdmin = SnapshotBuilder.authorizationPolicy(
        name: "deny-admin", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin*\"]")

    // MARK: The assembler

    private static func channel(maxBodyBytes: Int = 1 << 20) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: maxBodyBytes))
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

    /// What the upload holds for the upstream now: its body text, and whether its end came.
    private static func taken(_ upload: StreamedUpload) -> (body: String, ended: Bool) {
        guard case .parts(let parts) = upload.take(waking: EmbeddedEventLoop(), {}) else { return ("", false) }
        var body = ""
        var ended = false
        for part in parts {
            switch part {
            case .body(let chunk): body += String(buffer: chunk)
            case .end: ended = true
            }
        }
        return (body, ended)
    }

    @Test("a request whose body is still to come goes on once, at the end of its head's read, with what came; the rest follows into its upload")
    func handedOnAtReadEnd() throws {
        let channel = try Self.channel()
        Self.read(channel, [.head(Self.post("/upload", length: 10)), .body(ByteBuffer(string: "abc"))])
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self), let upload = request.upload else {
            Issue.record("the request did not go on at the end of the read")
            return
        }
        #expect(request.head.uri == "/upload" && String(buffer: request.body) == "abc")
        Self.read(channel, [.body(ByteBuffer(string: "defg"))])
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil, "the request was handed on twice")
        #expect(Self.taken(upload) == ("defg", false))
        Self.read(channel, [.body(ByteBuffer(string: "hij")), .end(nil)])
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        #expect(Self.taken(upload) == ("hij", true))
        #expect(upload.hasEnded && upload.bytesReceived == 10)
        #expect(try channel.finish().isClean)
    }

    @Test("a request that comes whole in one read, or a bodiless one, goes on whole, without an upload")
    func wholeInOneRead() throws {
        let channel = try Self.channel()
        Self.read(channel, [.head(Self.post("/upload", length: 3)), .body(ByteBuffer(string: "abc")), .end(nil)])
        Self.read(channel, [.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a", headers: ["host": "app"])), .end(nil)])
        for uri in ["/upload", "/a"] {
            guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
                Issue.record("\(uri) was not handed on whole")
                return
            }
            #expect(request.head.uri == uri && request.upload == nil)
        }
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
    }

    @Test("a pipelined request goes on at its read's end behind the one before it; a body past the limit within a read goes on at once; an unsupported transfer coding is held")
    func pipelinedAndLimits() throws {
        let channel = try Self.channel()
        Self.read(channel, [.head(Self.post("/first", length: 1)), .body(ByteBuffer(string: "x")), .end(nil), .head(Self.post("/second", length: 10))])
        guard case .complete(let first)? = try channel.readInbound(as: AssembledRequest.self),
            case .complete(let second)? = try channel.readInbound(as: AssembledRequest.self)
        else {
            Issue.record("the two requests did not go on in turn")
            return
        }
        #expect(first.head.uri == "/first" && first.upload == nil && String(buffer: first.body) == "x")
        #expect(second.head.uri == "/second" && second.upload != nil && second.body.readableBytes == 0)

        let small = try Self.channel(maxBodyBytes: 4)
        small.pipeline.fireChannelRead(HTTPServerRequestPart.head(Self.post("/big", length: 10)))
        small.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "0123456789")))
        // Before the read is over.
        guard case .complete(let big)? = try small.readInbound(as: AssembledRequest.self), let upload = big.upload else {
            Issue.record("a body past the limit did not go on at once")
            return
        }
        #expect(big.head.uri == "/big" && Self.taken(upload) == ("0123456789", false))
        small.pipeline.fireChannelReadComplete()
        #expect(try small.readInbound(as: AssembledRequest.self) == nil, "the request was handed on twice")

        let coded = try Self.channel()
        var head = Self.post("/gzip", length: 0)
        head.headers.remove(name: "content-length")
        head.headers.add(name: "transfer-encoding", value: "gzip, chunked")
        Self.read(coded, [.head(head), .body(ByteBuffer(string: "abc"))])
        #expect(try coded.readInbound(as: AssembledRequest.self) == nil, "a request the proxy answers 501 once read went on")
        Self.read(coded, [.end(nil)])
        guard case .complete(let whole)? = try coded.readInbound(as: AssembledRequest.self) else {
            Issue.record("the request was not handed on whole at its end")
            return
        }
        #expect(whole.upload == nil && String(buffer: whole.body) == "abc")
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
            let status = try await curl.outputToExit()
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

    @Test("an allowed upload reaches the application before its end, which then gets all of it, recorded once and timed from its head")
    func allowedGoesOn() async throws {
        try await withProxy { _, proxy, log in
            let body = String(repeating: "y", count: 20_000)
            let head = "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            // The head and a part of the body, then nothing for a while: the application waits for
            // the rest, so no answer yet.
            let waiting = try await RawClient.outcome(port: proxy.inboundPort, sending: head + "yyy", timeout: .milliseconds(700))
            #expect(waiting == .stalled, "an allowed request was answered before its body came: \(waiting)")
            // Then the whole request in two writes.
            let all = try await Self.inTwoWrites(port: proxy.inboundPort, head + "yyy", String(body.dropFirst(3)))
            #expect(all.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(all)")
            #expect(all.contains("\"body_bytes\":20000"), "\(all)")
            let served = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/upload" && $0["response_code"] as? Int == 200 }
            // Its duration counts from its head, as Envoy's does: the 300 ms before the rest of the body are in it.
            #expect((served["duration"] as? Int ?? 0) >= 250, "\(served)")
            #expect(served["bytes_received"] as? Int == 20_000, "\(served)")
            try await Task.sleep(for: .milliseconds(300))
            let lines = Self.logged(log, path: "/upload")
            // The stalled request (cut short when its client went away) and the whole one.
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
