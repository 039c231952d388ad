import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import RampartProxy
import Synchronization
import Testing

@Suite("HTTP/1.1 bytes the parser refuses")
struct ParseErrorTests {
    /// A server pipeline as the listeners build it, without the async wrapper.
    private static func server() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 1024, answersParseErrors: true))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        #expect(channel.isActive)
        return channel
    }

    /// Everything the server wrote so far, as text.
    private static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text
    }

    private static func answer(_ channel: EmbeddedChannel, _ text: String) throws {
        let response = BufferedResponse.local(.ok, text)
        try channel.writeOutbound(ResponseWrite.whole(FramedResponse(head: response.head, body: response.body, trailers: nil)))
    }

    @Test("after a request: the bad bytes are handed on behind it, as the connection's last element, and nothing is written for them")
    func afterRequest() throws {
        let channel = try Self.server()
        try channel.writeInbound(ByteBuffer(string: "GET /fine HTTP/1.1\r\nHost: b\r\n\r\nthis is not HTTP\r\n\r\n"))
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the request before the bad bytes was not handed on")
            return
        }
        #expect(request.head.uri == "/fine")
        guard case .unparsable(let status, let details)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the bad bytes were not handed on")
            return
        }
        #expect(status == .badRequest && details == "http1.codec_error")
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        // The connection's task answers both, in order (see the live test below).
        #expect(try Self.written(channel).isEmpty)
        #expect(channel.isActive)
    }

    @Test("first thing on the connection: handed on at once; headers past the limits are named as such")
    func first() throws {
        let channel = try Self.server()
        try channel.writeInbound(ByteBuffer(string: "\u{1}\u{2}garbage\r\n\r\n"))
        guard case .unparsable(let status, _)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the bad bytes were not handed on")
            return
        }
        #expect(status == .badRequest)
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil, "one element only")

        let limited = EmbeddedChannel()
        try limited.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: Listening.headerLimits)
        try limited.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 1024, answersParseErrors: true))
        try limited.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nx-big: \(String(repeating: "b", count: 61 * 1024))\r\n\r\n"))
        guard case .unparsable(let overflow, let details)? = try limited.readInbound(as: AssembledRequest.self) else {
            Issue.record("oversized headers were not handed on")
            return
        }
        #expect(overflow == .requestHeaderFieldsTooLarge && details == "http1.headers_too_large")
    }

    @Test("a live proxy answers bytes it cannot parse after the requests before them, closes, and logs them as Envoy logs a codec error")
    func liveRefusal() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-codec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        try await DataPathTests().withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
            // A request, then a second one with both Content-Length and Transfer-Encoding (smuggling).
            let smuggled = "POST /x HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            let text = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "GET /fine HTTP/1.1\r\nHost: app\r\n\r\n" + smuggled)
            let ok = try #require(text.range(of: "HTTP/1.1 200 OK\r\n"), "\(text)")
            let bad = try #require(text.range(of: "HTTP/1.1 400 Bad Request\r\n"), "\(text)")
            #expect(ok.lowerBound < bad.lowerBound)
            #expect(text[bad.lowerBound...].lowercased().contains("connection: close"), "\(text)")
            let line = try await UpgradeTests.accessLogLine(log) { $0["response_code"] as? Int == 400 }
            #expect(line["response_flags"] as? String == "DPE" && line["response_code_details"] as? String == "http1.codec_error", "\(line)")
            #expect(line["method"] is NSNull && line["path"] is NSNull, "\(line)")
            let big = try await RawClient.untilClosed(
                port: proxy.inboundPort, sending: "GET / HTTP/1.1\r\nHost: app\r\nx-big: \(String(repeating: "b", count: 61 * 1024))\r\n\r\n")
            #expect(big.hasPrefix("HTTP/1.1 431 "), "\(big.prefix(100))")
            let overflow = try await UpgradeTests.accessLogLine(log) { $0["response_code"] as? Int == 431 }
            #expect(overflow["response_code_details"] as? String == "http1.headers_too_large", "\(overflow)")
        }
    }

    @Test("a transfer-encoding other than chunked alone is answered 501 and the connection closed, inbound and outbound, as Envoy's codec answers it")
    func unsupportedTransferEncoding() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-te-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        #expect(!ProxyContext.hasUnsupportedTransferEncoding(["Transfer-Encoding": "ChuNKeD"]))
        #expect(!ProxyContext.hasUnsupportedTransferEncoding(["x-other": "gzip"]))
        #expect(ProxyContext.hasUnsupportedTransferEncoding(HTTPHeaders([("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")])))
        try await DataPathTests().withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
            for coding in ["gzip, chunked", "deflate, chunked", "GZIP, Chunked"] {
                for port in [proxy.inboundPort, proxy.outboundPort] {
                    let text = try await RawClient.untilClosed(
                        port: port, sending: "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: \(coding)\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
                    #expect(text.hasPrefix("HTTP/1.1 501 Not Implemented\r\n"), "\(coding) on \(port): \(text)")
                    #expect(text.lowercased().contains("connection: close"), "\(text)")
                }
            }
            let line = try await UpgradeTests.accessLogLine(log) { $0["response_code"] as? Int == 501 }
            #expect(line["response_flags"] as? String == "DPE", "\(line)")
            #expect(line["response_code_details"] as? String == "http1.invalid_transfer_encoding", "\(line)")
            // Codings NIO's parser refuses itself (chunked twice, a coding without chunked) get its 400.
            for coding in ["chunked, chunked", "gzip", "identity"] {
                let text = try await RawClient.untilClosed(
                    port: proxy.inboundPort, sending: "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: \(coding)\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
                #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(coding): \(text)")
            }
            // Plain chunked, in any case, is read as usual.
            let chunked = try await RawClient.untilClosed(
                port: proxy.inboundPort, sending: "POST /x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: Chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            #expect(chunked.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(chunked)")
        }
    }

    @Test("CONNECT is answered 404 (no route) and the connection closed, inbound after the policies and outbound, and never reaches the application")
    func connectHasNoRoute() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-connect-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = "\(directory)/access.log"
        #expect(ProtocolClassifier.classify(Array("CONNECT 127.0.0.1:443 HTTP/1.1\r\n".utf8)) == .http1)
        #expect(ProtocolClassifier.classify(Array("CONNECT [::1]:443 HTTP/1.1\r\n".utf8)) == .http1)
        try await DataPathTests().withServer(logFile: log) { _, proxy, _ in
            try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: []))
            for port in [proxy.inboundPort, proxy.outboundPort] {
                for authority in ["127.0.0.1:443", "reviews:443"] {
                    let text = try await RawClient.untilClosed(
                        port: port, sending: "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n\r\nbytes meant for a tunnel")
                    #expect(text.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(authority) on \(port): \(text)")
                }
            }
            let line = try await UpgradeTests.accessLogLine(log) { $0["method"] as? String == "CONNECT" }
            #expect(line["response_flags"] as? String == "NR" && line["response_code_details"] as? String == "route_not_found", "\(line)")
            // The policies still decide first.
            try proxy.install(SnapshotBuilder.snapshot(version: 3, resources: [
                SnapshotBuilder.authorizationPolicy(
                    name: "deny-connect", namespace: "default", body: "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [\"CONNECT\"]"),
            ]))
            let denied = try await RawClient.untilClosed(port: proxy.inboundPort, sending: "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n")
            #expect(denied.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "\(denied)")
        }
    }

    @Test("without the option, parse errors go on to the handlers behind, as from NIO")
    func passedOn() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 1024))
        #expect(throws: HTTPParserError.self) { try channel.writeInbound(ByteBuffer(string: "garbage\r\n\r\n")) }
    }
}

@Suite("HTTP/1.1 request inbox")
struct RequestInboxTests {
    /// Counts the reads the handlers behind it ask the socket for.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        let reads = Mutex(0)

        func read(context: ChannelHandlerContext) {
            reads.withLock { $0 += 1 }
            context.read()
        }
    }

    private static func request(_ uri: String) -> AssembledRequest {
        .complete(BufferedRequest(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: ["host": "b"])))
    }

    private static func take(_ inbox: HTTPRequestInbox) async -> String? {
        let next = (try? await withUnsafeThrowingContinuation { inbox.take($0) }) ?? nil
        guard case .complete(let request)? = next else { return nil }
        return request.head.uri
    }

    @Test("requests are taken in the order they arrived, and the end of the connection ends them")
    func order() async throws {
        let inbox = HTTPRequestInbox()
        let channel = EmbeddedChannel(handler: inbox)
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).get()
        for uri in ["/1", "/2", "/3"] { try channel.writeInbound(Self.request(uri)) }
        #expect(await Self.take(inbox) == "/1")
        #expect(await Self.take(inbox) == "/2")
        #expect(await Self.take(inbox) == "/3")
        try channel.writeInbound(Self.request("/dropped"))
        channel.pipeline.fireChannelInactive()
        #expect(await Self.take(inbox) == nil, "the connection ended: a request still queued is not answered")
        #expect(await Self.take(inbox) == nil)
    }

    @Test("a client that pipelines without end is held back: past the queue's bound no more reads are asked for, until the task drains it")
    func queueBound() async throws {
        let inbox = HTTPRequestInbox()
        let counter = ReadCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(inbox)
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).get()
        let count = HTTPRequestInbox.maxQueued + 4
        for index in 1...count { try channel.writeInbound(Self.request("/r\(index)")) }
        let before = counter.reads.withLock { $0 }
        channel.read()
        #expect(counter.reads.withLock { $0 } == before, "a read was asked for with the queue full")
        // Four requests taken leave the queue at its bound; the fifth takes it below, and the held read goes out.
        for index in 1...4 { #expect(await Self.take(inbox) == "/r\(index)") }
        #expect(counter.reads.withLock { $0 } == before)
        #expect(await Self.take(inbox) == "/r5")
        #expect(counter.reads.withLock { $0 } == before + 1)
        for index in 6...count { #expect(await Self.take(inbox) == "/r\(index)") }
    }
}

@Suite("Write coalescing in front of TLS")
struct WriteCoalescerTests {
    @Test("buffers written between flushes leave as one, in order, and every write's promise completes")
    func joins() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescer())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8443)).wait()
        let first = channel.eventLoop.makePromise(of: Void.self)
        let last = channel.eventLoop.makePromise(of: Void.self)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")), promise: first)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "body")), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "")), promise: last)
        #expect(try channel.readOutbound(as: IOData.self) == nil, "nothing leaves before the flush")
        channel.flush()
        guard case .byteBuffer(let joined)? = try channel.readOutbound(as: IOData.self) else {
            Issue.record("no buffer was written")
            return
        }
        #expect(String(buffer: joined) == "HTTP/1.1 200 OK\r\n\r\nbody")
        #expect(try channel.readOutbound(as: IOData.self) == nil)
        let completed = Mutex(0)
        first.futureResult.whenSuccess { completed.withLock { $0 += 1 } }
        last.futureResult.whenSuccess { completed.withLock { $0 += 1 } }
        channel.embeddedEventLoop.run()
        #expect(completed.withLock { $0 } == 2)
        // The next message is a buffer of its own.
        channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "next")), promise: nil)
        guard case .byteBuffer(let next)? = try channel.readOutbound(as: IOData.self) else {
            Issue.record("the next message was not written")
            return
        }
        #expect(String(buffer: next) == "next")
        _ = try channel.finish()
    }

    @Test("a buffer of a full record or more goes on as it is, not copied, after what was joined before it")
    func largePassesThrough() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescer())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8443)).wait()
        let large = ByteBuffer(repeating: 0x62, count: WriteCoalescer.passThroughBytes)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "4000\r\n")), promise: nil)
        channel.write(IOData.byteBuffer(large), promise: promise)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "\r\n")), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "0\r\n\r\n")), promise: nil)
        channel.flush()
        var written: [ByteBuffer] = []
        while case .byteBuffer(let buffer)? = try channel.readOutbound(as: IOData.self) { written.append(buffer) }
        #expect(written.map { $0.readableBytes } == [6, large.readableBytes, 7], "\(written.map { $0.readableBytes })")
        #expect(written.count == 3 && String(buffer: written[2]) == "\r\n0\r\n\r\n")
        // The same bytes, not a copy of them.
        let same = written.count == 3 && written[1].withUnsafeReadableBytes { out in large.withUnsafeReadableBytes { $0.baseAddress == out.baseAddress } }
        #expect(same, "the large buffer was copied")
        let completed = Mutex(false)
        promise.futureResult.whenSuccess { completed.withLock { $0 = true } }
        channel.embeddedEventLoop.run()
        #expect(completed.withLock { $0 })
        _ = try channel.finish()
    }

    @Test("a write never flushed fails when the connection closes")
    func closeFailsPending() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescer())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8443)).wait()
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "never sent")), promise: promise)
        let failure = Mutex<ChannelError?>(nil)
        promise.futureResult.whenFailure { error in failure.withLock { $0 = error as? ChannelError } }
        _ = try? channel.close().wait()
        channel.embeddedEventLoop.run()
        #expect(failure.withLock { $0 } == .ioOnClosedChannel)
    }
}
