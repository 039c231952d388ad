import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTP2
import NIOPosix
@testable import RampartProxy
import Synchronization
import Testing

/// An HTTP/1.1 application on loopback whose answers are made to be streamed, by path:
/// - `/large/N`: N bytes with a `content-length`, `/chunked/N` the same without one; written in
///   64 KiB pieces, each awaited, and counted in `written`;
/// - `/trickle`: `first\n`, then, once the test opens `gate`, `second\n` and the end;
/// - `/partial`: a `content-length` of 1000, 100 bytes, then the connection closes;
/// - `/stall`: ten bytes, then nothing until the proxy closes the connection (`closed` counts it).
///
/// The body bytes are lower-case letters in order (`a` + offset mod 26), so a client can check
/// every byte it got and where it got it.
final class DownloadApp: Sendable {
    typealias Connection = LoopbackHTTP.Connection

    let listener: LoopbackHTTP.Listener
    var port: Int { listener.channel.localAddress?.port ?? 0 }
    /// Body bytes written by the `/large` and `/chunked` answers.
    let written = Atomic<Int>(0)
    /// `/stall` connections that have closed.
    let closed = Atomic<Int>(0)
    let gate = Gate()

    /// Opened once by the test.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

        func open() {
            let waiting = state.withLock { state in
                state.open = true
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume() }
        }

        func wait() async {
            await withCheckedContinuation { continuation in
                let open = state.withLock { state in
                    if !state.open { state.waiting.append(continuation) }
                    return state.open
                }
                if open { continuation.resume() }
            }
        }
    }

    init() async throws {
        listener = try await LoopbackHTTP.listen()
    }

    /// The pattern from offset 0, long enough for a 64 KiB piece to start at any offset mod 26.
    private static let period: [UInt8] = (0..<(64 * 1024 + 26)).map { UInt8(97 + $0 % 26) }

    /// `count` pattern bytes starting at `offset`.
    static func pattern(_ count: Int, from offset: Int = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        var written = 0
        while written < count {
            let size = min(64 * 1024, count - written)
            let start = (offset + written) % 26
            buffer.writeBytes(period[start..<(start + size)])
            written += size
        }
        return buffer
    }

    /// Whether `bytes` are the pattern's from `offset`.
    static func isPattern(_ bytes: ByteBuffer, from offset: Int) -> Bool {
        var rest = bytes
        var position = offset
        while rest.readableBytes > 0 {
            let size = min(64 * 1024, rest.readableBytes)
            let start = position % 26
            let matches = rest.withUnsafeReadableBytes { received in
                period.withUnsafeBytes { expected in memcmp(received.baseAddress!, expected.baseAddress! + start, size) == 0 }
            }
            guard matches else { return false }
            rest.moveReaderIndex(forwardBy: size)
            position += size
        }
        return true
    }

    /// Serves until the task is cancelled.
    func run() async {
        await LoopbackHTTP.run(listener) { try await self.serve($0) }
    }

    private func serve(_ connection: Connection) async throws {
        let channel = connection.channel
        try await connection.executeThenClose { inbound, outbound in
            var path = "/"
            var method = HTTPMethod.GET
            for try await part in inbound {
                guard case .end = part else {
                    if case .head(let head) = part { (path, method) = (head.uri, head.method) }
                    continue
                }
                let pieces = path.split(separator: "/")
                let count = pieces.count > 1 ? Int(pieces[1]) ?? 0 : 0
                var headers = HTTPHeaders([("content-type", "application/octet-stream")])
                switch pieces.first ?? "" {
                case "large", "chunked":
                    if pieces.first == "large" { headers.add(name: "content-length", value: String(count)) }
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                    var offset = method == .HEAD ? count : 0
                    while offset < count {
                        let size = min(64 * 1024, count - offset)
                        try await outbound.write(.body(.byteBuffer(Self.pattern(size, from: offset))))
                        offset += size
                        written.add(size, ordering: .relaxed)
                    }
                    try await outbound.write(.end(nil))
                case "trickle":
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "first\n"))))
                    await gate.wait()
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "second\n"))))
                    try await outbound.write(.end(nil))
                case "partial":
                    headers.add(name: "content-length", value: "1000")
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(Self.pattern(100))))
                    try await channel.close()
                    return
                case "stall":
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(Self.pattern(10))))
                    try? await channel.closeFuture.get()
                    closed.add(1, ordering: .relaxed)
                    return
                default:
                    headers.add(name: "content-length", value: "2")
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "ok"))))
                    try await outbound.write(.end(nil))
                }
            }
        }
    }
}

/// A client that reads a response part by part as it arrives, over HTTP/1.1 or h2c.
struct StreamingClient {
    typealias Exchange = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    let exchange: Exchange
    /// The HTTP/2 connection the stream is on, closed with it.
    let connection: (any Channel)?

    static func connect(port: Int, http2: Bool) async throws -> StreamingClient {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        guard http2 else {
            let exchange = try await bootstrap.connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try Exchange(wrappingChannelSynchronously: channel)
                }
            }
            return StreamingClient(exchange: exchange, connection: nil)
        }
        let (connection, multiplexer) = try await RawHTTP2.connect(port: port)
        let exchange = try await multiplexer.openStream { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                return try Exchange(wrappingChannelSynchronously: stream)
            }
        }
        return StreamingClient(exchange: exchange, connection: connection)
    }

    /// What came back: the head, the body, whether the response ended, and what ended it otherwise.
    struct Received {
        var head: HTTPResponseHead?
        var body = ByteBuffer()
        var ended = false
        var failure: (any Error)?
    }

    /// Sends a GET for `path` and runs `body` with the response's parts as they come.
    func get<Result: Sendable>(
        _ path: String, host: String = "app", _ body: (inout NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator) async throws -> Result
    ) async throws -> Result {
        defer { connection?.close(promise: nil) }
        return try await exchange.executeThenClose { inbound, outbound in
            let version: HTTPVersion = connection == nil ? .http1_1 : .http2
            try await outbound.write(.head(HTTPRequestHead(version: version, method: .GET, uri: path, headers: ["host": host])))
            try await outbound.write(.end(nil))
            var parts = inbound.makeAsyncIterator()
            return try await body(&parts)
        }
    }

    /// Sends a GET for `path` and reads the whole response, or as much of it as came.
    func fetch(_ path: String, host: String = "app") async throws -> Received {
        try await get(path, host: host) { parts in
            var received = Received()
            do {
                while let part = try await parts.next() {
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
    }
}

/// Upstream responses are passed on as they arrive, as Envoy passes them: a body larger than
/// the proxy's limit on held bodies, or one that trickles, reaches the client as it comes, with
/// flow control, and a body cut short by either side is logged as Envoy logs it.
@Suite("Responses streamed to the client", .serialized)
struct StreamedResponseTests {
    /// Two proxies (see `TwoProxies`) in front of a `DownloadApp`.
    struct Mesh {
        let app: DownloadApp
        let proxies: TwoProxies
        var client: TestProxy { proxies.client }
        var server: TestProxy { proxies.server }
        var clientLog: String { proxies.clientLog }
        var serverLog: String { proxies.serverLog }
    }

    private func withMesh(acceptHTTP10: Bool = false, _ body: (Mesh) async throws -> Void) async throws {
        let app = try await DownloadApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        defer { app.listener.channel.close(promise: nil) }
        try await TwoProxies.with(appPort: app.port, acceptHTTP10: acceptHTTP10) { proxies in
            try await body(Mesh(app: app, proxies: proxies))
        }
    }

    @Test(
        "bodies larger than the proxy's limit on held bodies reach the client whole through both proxies, with or without a length, over HTTP/1.1 and HTTP/2",
        arguments: [false, true])
    func largerThanTheLimit(http2: Bool) async throws {
        try await withMesh { mesh in
            // The test proxies hold bodies up to 1 MiB.
            for (path, size) in [("/large/5242880", 5 << 20), ("/chunked/3145739", (3 << 20) + 11)] {
                let client = try await StreamingClient.connect(port: mesh.client.outboundPort, http2: http2)
                let received = try await client.fetch(path, host: "server:8080")
                #expect(received.head?.status == .ok, "\(path): \(String(describing: received.head))")
                #expect(received.ended && received.failure == nil, "\(path): \(String(describing: received.failure))")
                #expect(received.body.readableBytes == size, "\(path)")
                #expect(DownloadApp.isPattern(received.body, from: 0), "\(path): the body's bytes differ from the application's")
                if path.hasPrefix("/large") {
                    #expect(received.head?.headers.first(name: "content-length") == String(size), "\(path)")
                }
                for log in [mesh.clientLog, mesh.serverLog] {
                    let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == path && $0["protocol"] != nil && ($0["bytes_sent"] as? Int ?? 0) > 0 }
                    #expect(line["response_code"] as? Int == 200 && line["response_flags"] as? String == "-", "\(path): \(line)")
                    #expect(line["bytes_sent"] as? Int == size, "\(path): \(line)")
                }
                try "".write(toFile: mesh.clientLog, atomically: false, encoding: .utf8)
                try "".write(toFile: mesh.serverLog, atomically: false, encoding: .utf8)
            }
        }
    }

    @Test("a body that trickles reaches the client as the application sends it, through both proxies, over HTTP/1.1 and HTTP/2", arguments: [false, true])
    func trickles(http2: Bool) async throws {
        try await withMesh { mesh in
            let client = try await StreamingClient.connect(port: mesh.client.outboundPort, http2: http2)
            let (first, rest) = try await client.get("/trickle", host: "server:8080") { parts -> (String, String) in
                var first = ""
                // The application holds its second line until the first has reached the client.
                while !first.contains("\n"), let part = try await parts.next() {
                    if case .body(let chunk) = part { first += String(buffer: chunk) }
                }
                mesh.app.gate.open()
                var rest = ""
                while let part = try await parts.next() {
                    if case .body(let chunk) = part { rest += String(buffer: chunk) }
                    if case .end = part { break }
                }
                return (first, rest)
            }
            #expect(first == "first\n")
            #expect(rest == "second\n")
            let line = try await UpgradeTests.accessLogLine(mesh.serverLog) { $0["path"] as? String == "/trickle" }
            #expect(line["bytes_sent"] as? Int == 13 && line["response_flags"] as? String == "-", "\(line)")
        }
    }

    @Test("a body the application cuts short reaches the client cut short, after the status it sent, and is logged UC after the response started")
    func cutByTheUpstream() async throws {
        try await withMesh { mesh in
            let client = try await StreamingClient.connect(port: mesh.server.inboundPort, http2: false)
            let received = try await client.fetch("/partial")
            #expect(received.head?.status == .ok)
            #expect(!received.ended, "a cut body was presented as whole")
            #expect(received.body.readableBytes == 100 && DownloadApp.isPattern(received.body, from: 0), "\(received.body.readableBytes) bytes")
            let line = try await UpgradeTests.accessLogLine(mesh.serverLog) { $0["path"] as? String == "/partial" }
            #expect(line["response_code"] as? Int == 200, "\(line)")
            #expect(line["response_flags"] as? String == "UC", "\(line)")
            #expect(line["response_code_details"] as? String == "upstream_reset_after_response_started{connection_termination}", "\(line)")
            #expect(line["bytes_sent"] as? Int == 100, "\(line)")
        }
    }

    @Test("a client that goes away in the middle of a body closes the application's connection, and is logged DC with the status it got", arguments: [false, true])
    func clientGoesAway(http2: Bool) async throws {
        try await withMesh { mesh in
            let client = try await StreamingClient.connect(port: mesh.client.outboundPort, http2: http2)
            let status = try await client.get("/stall", host: "server:8080") { parts -> HTTPResponseStatus? in
                var status: HTTPResponseStatus?
                var bytes = 0
                while bytes < 10, let part = try await parts.next() {
                    if case .head(let head) = part { status = head.status }
                    if case .body(let chunk) = part { bytes += chunk.readableBytes }
                }
                return status
            }
            #expect(status == .ok)
            // The client's stream or connection is closed now; the application's follows.
            var closed = 0
            for _ in 0..<250 where closed == 0 {
                closed = mesh.app.closed.load(ordering: .relaxed)
                if closed == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(closed == 1, "the application's connection stayed open")
            for log in [mesh.clientLog, mesh.serverLog] {
                let line = try await UpgradeTests.accessLogLine(log) { $0["path"] as? String == "/stall" }
                #expect(line["response_code"] as? Int == 200 && line["response_flags"] as? String == "DC", "\(line)")
                #expect(line["response_code_details"] as? String == "downstream_remote_disconnect", "\(line)")
            }
        }
    }

    @Test(
        "a client that stops reading holds the application back instead of the proxy holding the body, and then gets all of it: over HTTP/1.1 to the server's proxy, over HTTP/2 through both",
        arguments: [false, true])
    func flowControl(http2: Bool) async throws {
        try await withMesh { mesh in
            // Larger than every buffer on the way together (the kernel's may take tens of MiB on
            // a machine whose receive buffers grow to 32 MiB; HTTP/2's windows are small).
            let size = http2 ? 64 << 20 : 128 << 20
            let client = try await StreamingClient.connect(port: http2 ? mesh.client.outboundPort : mesh.server.inboundPort, http2: http2)
            let (early, received) = try await client.get("/large/\(size)", host: http2 ? "server:8080" : "app") { parts -> (Int, Int) in
                guard case .head(let head)? = try await parts.next(), head.status == .ok else { return (-1, 0) }
                // Nothing is read for a while: socket buffers fill, then the proxy stops reading.
                try await Task.sleep(for: .seconds(2))
                let early = mesh.app.written.load(ordering: .relaxed)
                var received = 0
                var offset = 0
                var intact = true
                while let part = try await parts.next() {
                    if case .body(let chunk) = part {
                        if intact { intact = DownloadApp.isPattern(chunk, from: offset) }
                        offset += chunk.readableBytes
                        received += chunk.readableBytes
                    }
                    if case .end = part { break }
                }
                return (early, intact ? received : -received)
            }
            // The proxy itself holds at most a few hundred KiB; the rest are the kernel's socket
            // buffers. A proxy that read on regardless would have let the application write it all.
            #expect(early > 0 && early < size / 2, "the application wrote \(early) bytes to a client that read none")
            #expect(received == size, "the client got \(received) bytes (negative: some differed)")
        }
    }

    @Test("an HTTP/1.0 client gets a body of unknown length ended by the close of its connection")
    func http10() async throws {
        try await withMesh(acceptHTTP10: true) { mesh in
            let answer = try await RawClient.untilClosed(
                port: mesh.server.inboundPort, sending: "GET /chunked/100000 HTTP/1.0\r\nHost: app\r\n\r\n", timeout: .seconds(20))
            guard let split = answer.range(of: "\r\n\r\n") else {
                Issue.record("no head in \(answer.prefix(200))")
                return
            }
            let head = answer[..<split.lowerBound].lowercased()
            #expect(head.hasPrefix("http/1.0 200"), "\(head)")
            #expect(!head.contains("transfer-encoding") && !head.contains("content-length") && head.contains("connection: close"), "\(head)")
            let body = answer[split.upperBound...]
            #expect(body.utf8.count == 100_000 && DownloadApp.isPattern(ByteBuffer(string: String(body)), from: 0))
        }
    }

    @Test("a request pipelined behind a streamed response is answered after that response's end, in order")
    func pipelinedBehind() async throws {
        try await withMesh { mesh in
            let gate = mesh.app.gate
            let (received, timedOut) = try await RawClient.exchange(
                port: mesh.server.inboundPort,
                sending: "GET /trickle HTTP/1.1\r\nHost: app\r\n\r\nGET /next HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
                timeout: .seconds(20)
            ) { received in
                // The first line has come, the second is held: nothing of the next answer yet.
                if received.contains("first\n") && !received.contains("second\n") {
                    #expect(!received.contains("\r\n\r\nok"), "the next answer overtook the streamed one")
                    gate.open()
                }
                return false
            }
            #expect(!timedOut)
            let answers = received.components(separatedBy: "HTTP/1.1 200 OK")
            #expect(answers.count == 3, "\(received)")
            guard answers.count == 3 else { return }
            // The streamed answer, chunked, with its end; then the next one, whole.
            #expect(answers[1].lowercased().contains("transfer-encoding: chunked"), "\(answers[1])")
            #expect(answers[1].hasSuffix("6\r\nfirst\n\r\n7\r\nsecond\n\r\n0\r\n\r\n"), "\(answers[1])")
            #expect(answers[2].hasSuffix("\r\n\r\nok"), "\(answers[2])")
        }
    }

    @Test("an answer to HEAD keeps the application's content-length and carries no body")
    func head() async throws {
        try await withMesh { mesh in
            let answer = try await RawClient.untilClosed(
                port: mesh.server.inboundPort, sending: "HEAD /large/5000 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
            #expect(answer.lowercased().contains("\r\ncontent-length: 5000\r\n"), "\(answer)")
            #expect(answer.hasSuffix("\r\n\r\n"), "\(answer)")
        }
    }

    @Test(
        "curl downloads a body larger than the limit through both proxies, byte for byte, over HTTP/1.1 and HTTP/2 (prior knowledge)",
        arguments: [false, true])
    func curlDownload(http2: Bool) async throws {
        try await withMesh { mesh in
            let output = "\(NSTemporaryDirectory())rampart-download-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: output) }
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            curl.arguments =
                ["curl", "-sS", "--max-time", "30", "-o", output, "-w", "%{http_code} %{http_version} %{size_download}", "-H", "Host: server:8080"]
                + (http2 ? ["--http2-prior-knowledge"] : [])
                + ["http://127.0.0.1:\(mesh.client.outboundPort)/chunked/8388608"]
            let summary = try await curl.outputToExit()
            #expect(curl.terminationStatus == 0)
            #expect(summary == "200 \(http2 ? "2" : "1.1") 8388608", "\(summary)")
            let data = try Data(contentsOf: URL(fileURLWithPath: output))
            #expect(data.count == 8 << 20 && DownloadApp.isPattern(ByteBuffer(bytes: data), from: 0))
        }
    }

    // MARK: The body's queue

    @Test("the body's queue hands parts on in order, holds reads past its limit, and reports the failure after what came before it")
    func queue() async throws {
        let upstream = EmbeddedChannel()
        let body = StreamedBody(upstream: upstream)
        let settled = Mutex<Bool?>(nil)
        body.whenSettled { clean in settled.withLock { $0 = clean } }
        body.deliver(.body(ByteBuffer(string: "ab")))
        body.deliver(.body(ByteBuffer(repeating: 0x78, count: StreamedBody.maxQueuedBytes)))
        #expect(!body.admitsRead(), "reads went on past the limit")
        #expect(body.isHoldingReads)
        let first = try await body.next()
        #expect(first?.count == 2)
        #expect(body.admitsRead() && !body.isHoldingReads, "reads stayed held once the queue was taken")
        body.deliver(.body(ByteBuffer(string: "c")))
        body.fail(UpstreamClosedMidResponse())
        #expect(settled.withLock { $0 } == false)
        guard case .body(let chunk)? = try await body.next()?.first else {
            Issue.record("the part before the failure was lost")
            return
        }
        #expect(String(buffer: chunk) == "c")
        await #expect(throws: UpstreamClosedMidResponse.self) { try await body.next() }
        _ = try? upstream.finish()
    }

    @Test("an end settles the body cleanly at once; a client that abandons it first closes the upstream and settles it unclean")
    func settling() async throws {
        let ended = StreamedBody(upstream: EmbeddedChannel())
        ended.deliver(.end(nil))
        let clean = Mutex<Bool?>(nil)
        ended.whenSettled { value in clean.withLock { $0 = value } }
        #expect(clean.withLock { $0 } == true)
        guard case .end? = try await ended.next()?.first else {
            Issue.record("the end was not handed on")
            return
        }
        #expect(try await ended.next() == nil)

        let upstream = EmbeddedChannel()
        try await upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        let abandoned = StreamedBody(upstream: upstream)
        let result = Mutex<Bool?>(nil)
        abandoned.whenSettled { value in result.withLock { $0 = value } }
        abandoned.abandon()
        #expect(result.withLock { $0 } == false)
        #expect(!upstream.isActive, "the upstream stayed open")
        abandoned.deliver(.body(ByteBuffer(string: "late")))
        abandoned.deliver(.end(nil))
        #expect(result.withLock { $0 } == false)

        let outcome = Mutex<StreamedBody.Outcome?>(nil)
        abandoned.finished(StreamedBody.Outcome(bytesSent: 7, cut: nil, clientGone: true))
        abandoned.whenFinished { value in outcome.withLock { $0 = value } }
        #expect(outcome.withLock { $0?.bytesSent } == 7)
    }
}
