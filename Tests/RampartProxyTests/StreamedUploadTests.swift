import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Synchronization
import Testing

/// An HTTP/1.1 application on loopback that takes uploads, by path:
/// - `/count`: reads the body, checks that it is `DownloadApp`'s pattern from offset 0, and answers
///   `bytes=N intact=1|0 length=L chunked=1|0` (L the request's `content-length`, or `-`);
/// - `/hold`: the same, but reads nothing of the body until the test opens `gate`;
/// - `/early`: answers `early` as soon as the head has come, before reading the body, then reads
///   and drops the body until the connection closes (`drained` counts those closes) or it ends;
/// - `/echo`: answers at once with a body of unknown length, and writes back each part of the
///   request's body as it reads it, ending its answer with the request.
///
/// `received` counts the body bytes read; `aborted` the connections that closed inside a body.
final class UploadApp: Sendable {
    typealias Connection = LoopbackHTTP.Connection

    let listener: LoopbackHTTP.Listener
    var port: Int { listener.channel.localAddress?.port ?? 0 }
    let received = Atomic<Int>(0)
    let aborted = Atomic<Int>(0)
    let drained = Atomic<Int>(0)
    let gate = DownloadApp.Gate()

    init() async throws {
        listener = try await LoopbackHTTP.listen()
    }

    /// What `count` reads, once it is not zero (or zero after 5 s).
    func once(_ count: (UploadApp) -> Int) async throws -> Int {
        for _ in 0..<250 {
            let count = count(self)
            if count > 0 { return count }
            try await Task.sleep(for: .milliseconds(20))
        }
        return 0
    }

    /// Serves until the task is cancelled.
    func run() async {
        await LoopbackHTTP.run(listener) { try await self.serve($0) }
    }

    private func serve(_ connection: Connection) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var parts = inbound.makeAsyncIterator()
            while let first = try await parts.next() {
                guard case .head(let head) = first else { continue }
                if head.uri == "/early" {
                    let headers = HTTPHeaders([("content-length", "5")])
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "early"))))
                    try await outbound.write(.end(nil))
                    do {
                        while let part = try await parts.next() {
                            if case .end = part { return }
                        }
                    } catch {}
                    drained.add(1, ordering: .relaxed)
                    return
                }
                if head.uri == "/echo" {
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok)))
                    while let part = try await parts.next() {
                        if case .body(let chunk) = part { try await outbound.write(.body(.byteBuffer(chunk))) }
                        if case .end = part { break }
                    }
                    try await outbound.write(.end(nil))
                    continue
                }
                if head.uri == "/hold" { await gate.wait() }
                var bytes = 0
                var intact = true
                var ended = false
                do {
                    reading: while let part = try await parts.next() {
                        switch part {
                        case .body(let chunk):
                            if intact { intact = DownloadApp.isPattern(chunk, from: bytes) }
                            bytes += chunk.readableBytes
                            received.add(chunk.readableBytes, ordering: .relaxed)
                        case .end:
                            ended = true
                            break reading
                        case .head:
                            break reading
                        }
                    }
                } catch {}
                guard ended else {
                    aborted.add(1, ordering: .relaxed)
                    return
                }
                let length = head.headers.first(name: "content-length") ?? "-"
                let chunked = head.headers["transfer-encoding"].contains { $0.lowercased().contains("chunked") }
                let text = "bytes=\(bytes) intact=\(intact ? 1 : 0) length=\(length) chunked=\(chunked ? 1 : 0)"
                let headers = HTTPHeaders([("content-type", "text/plain"), ("content-length", String(text.utf8.count))])
                try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                try await outbound.write(.body(.byteBuffer(ByteBuffer(string: text))))
                try await outbound.write(.end(nil))
            }
        }
    }
}

/// Bytes counted from any thread.
final class ByteCount: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ bytes: Int) { count.add(bytes, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

extension StreamingClient {
    /// Sends `size` bytes of `DownloadApp`'s pattern to `path` in 64 KiB pieces, each write awaited
    /// (so a proxy that stops reading holds the sender back), with a `content-length` when
    /// `declared`; `sent` counts what the client's writes have taken. The response is read as it
    /// comes, while the body is still being sent. With `stopAfter`, the client goes away (closes its
    /// connection) once it has sent that many bytes and `stopWhen` holds (checked for up to 10 s):
    /// the result then has no head.
    func upload(
        _ path: String, host: String = "app", size: Int, declared: Bool = true, sent: ByteCount? = nil, stopAfter: Int? = nil,
        stopWhen: @escaping @Sendable () -> Bool = { true }
    ) async throws -> Received {
        defer { connection?.close(promise: nil) }
        let channel = exchange.channel
        return try await exchange.executeThenClose { inbound, outbound in
            let version: HTTPVersion = connection == nil ? .http1_1 : .http2
            var headers = HTTPHeaders([("host", host)])
            if declared { headers.add(name: "content-length", value: String(size)) }
            try await outbound.write(.head(HTTPRequestHead(version: version, method: .PUT, uri: path, headers: headers)))
            return try await withThrowingTaskGroup(of: Received?.self) { group in
                group.addTask {
                    var offset = 0
                    do {
                        while offset < size {
                            if let stopAfter, offset >= stopAfter {
                                for _ in 0..<500 where !stopWhen() { try await Task.sleep(for: .milliseconds(20)) }
                                channel.close(promise: nil)
                                connection?.close(promise: nil)
                                return nil
                            }
                            let piece = min(64 * 1024, size - offset)
                            try await outbound.write(.body(.byteBuffer(DownloadApp.pattern(piece, from: offset))))
                            offset += piece
                            sent?.add(piece)
                        }
                        try await outbound.write(.end(nil))
                    } catch {
                        // The proxy answered and closed before the body was all sent.
                    }
                    return nil
                }
                group.addTask {
                    var received = Received()
                    do {
                        for try await part in inbound {
                            switch part {
                            case .head(let head): received.head = head
                            case .body(var chunk): received.body.writeBuffer(&chunk)
                            case .end:
                                received.ended = true
                                return received
                            }
                        }
                    } catch {
                        received.failure = error
                    }
                    return received
                }
                var result = Received()
                while let next = try await group.next() {
                    if let next {
                        result = next
                        break
                    }
                }
                group.cancelAll()
                return result
            }
        }
    }
}

/// Request bodies are passed on as they arrive, as Envoy passes a request on (what comes within one
/// read goes with the head, up to `--max-body-bytes`, 1 MiB in the test proxies), with flow control both ways; an upload
/// cut short by either side is logged as Envoy logs it.
@Suite("Requests streamed to the application", .serialized)
struct StreamedUploadTests {
    struct Mesh {
        let app: UploadApp
        let proxies: TwoProxies
    }

    private func withMesh(idleTimeouts: IdleTimeouts = .envoy, _ body: (Mesh) async throws -> Void) async throws {
        let app = try await UploadApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        defer { app.listener.channel.close(promise: nil) }
        try await TwoProxies.with(appPort: app.port, idleTimeouts: idleTimeouts) { proxies in
            try await body(Mesh(app: app, proxies: proxies))
        }
    }

    /// The numbers the application's answer gives.
    static func answer(_ received: StreamingClient.Received) -> [String: String] {
        var fields: [String: String] = [:]
        for field in String(buffer: received.body).split(separator: " ") {
            let pair = field.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        return fields
    }

    @Test(
        "uploads larger than what the proxy holds reach the application whole through both proxies, with or without a length, over HTTP/1.1 and HTTP/2",
        arguments: [false, true])
    func largerThanTheLimit(http2: Bool) async throws {
        try await withMesh { mesh in
            for (size, declared) in [(6 << 20, true), ((3 << 20) + 7, false)] {
                let client = try await StreamingClient.connect(port: mesh.proxies.client.outboundPort, http2: http2)
                let received = try await client.upload("/count", host: "server:8080", size: size, declared: declared)
                #expect(received.head?.status == .ok && received.ended, "\(size): \(String(describing: received.head)) \(String(describing: received.failure))")
                let answer = Self.answer(received)
                #expect(answer["bytes"] == String(size) && answer["intact"] == "1", "\(size): \(answer)")
                // The application sees the length the client gave, or a chunked body.
                if declared {
                    #expect(answer["length"] == String(size) && answer["chunked"] == "0", "\(answer)")
                } else {
                    #expect(answer["length"] == "-" && answer["chunked"] == "1", "\(answer)")
                }
                for log in [mesh.proxies.clientLog, mesh.proxies.serverLog] {
                    let line = try await UpgradeTests.accessLogLine(log) { ($0["bytes_received"] as? Int ?? 0) == size }
                    #expect(line["response_code"] as? Int == 200 && line["response_flags"] as? String == "-", "\(line)")
                    #expect(line["method"] as? String == "PUT" && line["path"] as? String == "/count", "\(line)")
                }
            }
        }
    }

    @Test(
        "an application that reads slowly holds the client back instead of the proxy holding the body, and then gets all of it: over HTTP/1.1 to the server's proxy, over HTTP/2 through both",
        arguments: [false, true])
    func flowControl(http2: Bool) async throws {
        try await withMesh { mesh in
            // Larger than twice every buffer on the way together: each proxy's socket from its
            // client may grow its receive buffer to 32 MiB (tcp_rmem here) while the proxy still
            // reads, and keeps it once reads stop; over HTTP/2 the body crosses two such sockets.
            let size = http2 ? 256 << 20 : 128 << 20
            let client = try await StreamingClient.connect(
                port: http2 ? mesh.proxies.client.outboundPort : mesh.proxies.server.inboundPort, http2: http2)
            let sent = ByteCount()
            let app = mesh.app
            async let received = client.upload("/hold", host: http2 ? "server:8080" : "app", size: size, sent: sent)
            // The application reads nothing for a while: buffers fill, then the proxy stops reading.
            try await Task.sleep(for: .seconds(2))
            let early = sent.value
            app.gate.open()
            let answer = Self.answer(try await received)
            // The proxy itself holds what it holds of a body before passing it on (1 MiB here) and a
            // few hundred KiB more; the rest are the kernel's socket buffers. A proxy that read on
            // regardless would have let the client send it all.
            #expect(early > 0 && early < size / 2, "the client sent \(early) bytes to an application that read none")
            #expect(answer["bytes"] == String(size) && answer["intact"] == "1", "\(answer)")
        }
    }

    @Test(
        "an application that answers before the end of an upload has its answer passed on; the rest is not sent, the application's connection is closed rather than used again, and the client's connection or stream ends after the answer",
        arguments: [false, true])
    func earlyAnswer(http2: Bool) async throws {
        try await withMesh { mesh in
            let size = 256 << 20
            let client = try await StreamingClient.connect(port: mesh.proxies.client.outboundPort, http2: http2)
            let sent = ByteCount()
            let received = try await client.upload("/early", host: "server:8080", size: size, sent: sent)
            #expect(received.head?.status == .ok && received.ended, "\(String(describing: received.head)) \(String(describing: received.failure))")
            #expect(String(buffer: received.body) == "early")
            // The client was not made to send the whole body.
            #expect(sent.value < size, "the whole upload was taken")
            // The application's connection was left inside a request: it is closed, not pooled.
            let drained = try await mesh.app.once { $0.drained.load(ordering: .relaxed) }
            #expect(drained == 1, "the application's connection stayed open after an answer given inside an upload")
            for log in [mesh.proxies.clientLog, mesh.proxies.serverLog] {
                let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/early" }
                #expect(line["response_code"] as? Int == 200 && line["response_flags"] as? String == "-", "\(line)")
                // What had come when the answer did: the request went on at its head.
                let bytes = line["bytes_received"] as? Int ?? -1
                #expect(bytes >= 0 && bytes < size, "\(line)")
            }
        }
    }

    @Test(
        "a client that goes away in the middle of an upload closes the application's connection, and is logged DC",
        arguments: [false, true])
    func clientGoesAway(http2: Bool) async throws {
        try await withMesh { mesh in
            let client = try await StreamingClient.connect(port: mesh.proxies.client.outboundPort, http2: http2)
            // The client goes once the application has begun to get the body.
            let app = mesh.app
            let received = try await client.upload(
                "/count", host: "server:8080", size: 16 << 20, stopAfter: 3 << 20, stopWhen: { app.received.load(ordering: .relaxed) > 0 })
            #expect(received.head == nil)
            let aborted = try await mesh.app.once { $0.aborted.load(ordering: .relaxed) }
            #expect(aborted == 1, "the application's connection did not end inside the body")
            for log in [mesh.proxies.clientLog, mesh.proxies.serverLog] {
                let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/count" }
                #expect(line["response_code"] as? Int == 0 && line["response_flags"] as? String == "DC", "\(line)")
                #expect(line["response_code_details"] as? String == "downstream_remote_disconnect", "\(line)")
                let bytes = line["bytes_received"] as? Int ?? -1
                #expect(bytes > 0 && bytes < 16 << 20, "\(line)")
            }
        }
    }

    @Test(
        "an application that streams its answer while the upload still comes gets every byte, and the client every byte back, through both proxies over HTTP/1.1 and HTTP/2",
        arguments: [false, true])
    func bothWays(http2: Bool) async throws {
        try await withMesh { mesh in
            let size = 8 << 20
            let client = try await StreamingClient.connect(port: mesh.proxies.client.outboundPort, http2: http2)
            let received = try await client.upload("/echo", host: "server:8080", size: size, declared: false)
            #expect(received.head?.status == .ok && received.ended, "\(String(describing: received.head)) \(String(describing: received.failure))")
            #expect(received.body.readableBytes == size && DownloadApp.isPattern(received.body, from: 0), "\(received.body.readableBytes) bytes")
            for log in [mesh.proxies.clientLog, mesh.proxies.serverLog] {
                let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/echo" }
                #expect(line["bytes_received"] as? Int == size && line["bytes_sent"] as? Int == size, "\(line)")
                #expect(line["response_flags"] as? String == "-", "\(line)")
            }
        }
    }

    @Test(
        "a request goes on before its end: the application echoes its first bytes while the client still holds the rest, through both proxies over HTTP/1.1 and HTTP/2",
        arguments: [false, true])
    func beforeItsEnd(http2: Bool) async throws {
        try await withMesh { mesh in
            let client = try await StreamingClient.connect(port: mesh.proxies.client.outboundPort, http2: http2)
            defer { client.connection?.close(promise: nil) }
            let channel = client.exchange.channel
            let connection = client.connection
            // A proxy that waited for the end would leave the client with nothing: it gives up then.
            let watchdog = channel.eventLoop.scheduleTask(in: .seconds(5)) {
                channel.close(promise: nil)
                connection?.close(promise: nil)
            }
            defer { watchdog.cancel() }
            let (first, whole) = try await client.exchange.executeThenClose { inbound, outbound in
                let version: HTTPVersion = http2 ? .http2 : .http1_1
                let head = HTTPRequestHead(
                    version: version, method: .POST, uri: "/echo", headers: ["host": "server:8080", "content-length": "10"])
                try await outbound.write(.head(head))
                try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "first"))))
                var parts = inbound.makeAsyncIterator()
                var echoed = ""
                var status: HTTPResponseStatus?
                var ended = false
                do {
                    while echoed.utf8.count < 5, let part = try await parts.next() {
                        switch part {
                        case .head(let head): status = head.status
                        case .body(let chunk): echoed += String(buffer: chunk)
                        case .end: ended = true
                        }
                        if ended { break }
                    }
                } catch {
                    // Closed by the watchdog: what came is the result.
                }
                let first = (status, echoed)
                guard status == .ok, !ended else { return (first, "") }
                try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "later"))))
                try await outbound.write(.end(nil))
                while let part = try await parts.next() {
                    if case .body(let chunk) = part { echoed += String(buffer: chunk) }
                    if case .end = part { break }
                }
                return (first, echoed)
            }
            #expect(first.0 == .ok && first.1 == "first", "before the client's end: \(String(describing: first.0)) \(first.1)")
            #expect(whole == "firstlater")
            for log in [mesh.proxies.clientLog, mesh.proxies.serverLog] {
                let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/echo" }
                #expect(line["bytes_received"] as? Int == 10 && line["bytes_sent"] as? Int == 10, "\(line)")
            }
        }
    }

    @Test("a client that stops sending an upload for the stream idle timeout gets 408, logged SI, and the application's connection ends")
    func stalled() async throws {
        try await withMesh(idleTimeouts: IdleTimeouts(stalledRequest: .milliseconds(500))) { mesh in
            let size = 4 << 20
            let body = DownloadApp.pattern(2 << 20)
            let head = "PUT /count HTTP/1.1\r\nHost: app\r\nContent-Length: \(size)\r\n\r\n"
            var request = ByteBuffer(string: head)
            request.writeImmutableBuffer(body)
            let answer = try await RawClient.untilClosed(port: mesh.proxies.server.inboundPort, sending: String(buffer: request), timeout: .seconds(10))
            #expect(answer.hasPrefix("HTTP/1.1 408 "), "\(answer.prefix(200))")
            let line = try await UpgradeTests.accessLogLine(mesh.proxies.serverLog) { $0["path"] as? String == "/count" }
            #expect(line["response_code"] as? Int == 408 && line["response_flags"] as? String == "SI", "\(line)")
            #expect(line["bytes_received"] as? Int == 2 << 20, "\(line)")
            let aborted = try await mesh.app.once { $0.aborted.load(ordering: .relaxed) }
            #expect(aborted == 1, "the application's connection did not end inside the body")
        }
    }

    @Test("an upload and then a small request on the same connection are both answered; the connection stays open between them")
    func keepAlive() async throws {
        try await withMesh { mesh in
            let size = (2 << 20) + 3
            var request = ByteBuffer(string: "PUT /count HTTP/1.1\r\nHost: app\r\nContent-Length: \(size)\r\n\r\n")
            request.writeImmutableBuffer(DownloadApp.pattern(size))
            request.writeString("PUT /count HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
            let answer = try await RawClient.untilClosed(port: mesh.proxies.server.inboundPort, sending: String(buffer: request), timeout: .seconds(20))
            let answers = answer.components(separatedBy: "HTTP/1.1 200 OK")
            #expect(answers.count == 3, "\(answer.prefix(600))")
            guard answers.count == 3 else { return }
            #expect(answers[1].hasSuffix("bytes=\(size) intact=1 length=\(size) chunked=0"), "\(answers[1])")
            #expect(!answers[1].lowercased().contains("connection: close"), "\(answers[1])")
            #expect(answers[2].hasSuffix("bytes=3 intact=1 length=3 chunked=0"), "\(answers[2])")
        }
    }

    @Test(
        "curl uploads a file larger than the limit through both proxies, with a length or chunked, over HTTP/1.1 (with Expect: 100-continue) and HTTP/2 (prior knowledge)",
        arguments: [(false, false), (false, true), (true, false), (true, true)])
    func curlUpload(http2: Bool, chunked: Bool) async throws {
        try await withMesh { mesh in
            let size = 8 << 20
            let input = "\(NSTemporaryDirectory())rampart-upload-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: input) }
            let pattern = DownloadApp.pattern(size)
            try Data(pattern.readableBytesView).write(to: URL(fileURLWithPath: input))
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            curl.arguments =
                ["curl", "-sS", "--max-time", "30", "-X", "PUT", "--data-binary", "@\(input)", "-H", "Host: server:8080", "-w", " %{http_code} %{http_version}"]
                + (http2 ? ["--http2-prior-knowledge"] : ["-H", "Expect: 100-continue"])
                + (chunked ? ["-H", "Transfer-Encoding: chunked"] : [])
                + ["http://127.0.0.1:\(mesh.proxies.client.outboundPort)/count"]
            let output = try await curl.outputToExit()
            #expect(curl.terminationStatus == 0)
            let length = chunked ? "-" : String(size)
            #expect(output == "bytes=\(size) intact=1 length=\(length) chunked=\(chunked ? 1 : 0) 200 \(http2 ? "2" : "1.1")", "\(output)")
        }
    }
}
