import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Synchronization
import Testing

@Suite("HTTP/1.1 exchange server")
struct ExchangeServerTests {
    /// Holds each request's answer until the test gives it.
    final class HeldResponder: Sendable {
        private let held = Mutex<[(uri: String, answer: HTTPExchangeServer.Answer)]>([])

        var uris: [String] { held.withLock { $0.map(\.uri) } }

        func respond(_ request: BufferedRequest, _ loop: any EventLoop, _ answer: @escaping HTTPExchangeServer.Answer) {
            held.withLock { $0.append((request.head.uri, answer)) }
        }

        /// Answers the oldest held request with 200 and its path as the body.
        func answerOldest() {
            let next = held.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            guard let next else {
                Issue.record("no request is waiting for an answer")
                return
            }
            var response = BufferedResponse.local(.ok, "answer to \(next.uri)")
            response.head.headers.replaceOrAdd(name: "x-path", value: next.uri)
            next.answer(response)
        }
    }

    private static func server(_ responder: HeldResponder, maxBodyBytes: Int = 1024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try Listening.configureHTTP1Server(channel, maxBodyBytes: maxBodyBytes) { request, loop, answer in
            responder.respond(request, loop, answer)
        }
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

    @Test("pipelined requests are answered one at a time and in order, even when the answers take a while")
    func inOrder() throws {
        let responder = HeldResponder()
        let channel = try Self.server(responder)
        try channel.writeInbound(ByteBuffer(string: "GET /one HTTP/1.1\r\nHost: b\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n"))
        // The second request waits until the first is answered.
        #expect(responder.uris == ["/one"])
        #expect(try Self.written(channel).isEmpty)
        responder.answerOldest()
        let first = try Self.written(channel)
        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n") && first.hasSuffix("answer to /one"))
        #expect(responder.uris == ["/two"])
        responder.answerOldest()
        #expect(try Self.written(channel).hasSuffix("answer to /two"))
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test("bytes that are not HTTP get 400 after the requests before them are answered, then the connection closes")
    func badBytesAfterRequests() throws {
        let responder = HeldResponder()
        let channel = try Self.server(responder)
        try channel.writeInbound(ByteBuffer(string: "GET /fine HTTP/1.1\r\nHost: b\r\n\r\nthis is not HTTP\r\n\r\n"))
        #expect(responder.uris == ["/fine"])
        // Nothing is written before the request ahead of the bad bytes is answered.
        #expect(try Self.written(channel).isEmpty)
        responder.answerOldest()
        let text = try Self.written(channel)
        let ok = text.range(of: "HTTP/1.1 200 OK\r\n")
        let bad = text.range(of: "HTTP/1.1 400 Bad Request\r\n")
        #expect(ok != nil && bad != nil)
        if let ok, let bad { #expect(ok.lowerBound < bad.lowerBound) }
        #expect(text.lowercased().contains("connection: close"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test("a connection that starts with bytes that are not HTTP gets 400 at once and is closed")
    func badBytesFirst() throws {
        let responder = HeldResponder()
        let channel = try Self.server(responder)
        try channel.writeInbound(ByteBuffer(string: "\u{1}\u{2}garbage\r\n\r\n"))
        #expect(responder.uris.isEmpty)
        #expect(try Self.written(channel).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test("Connection: close is answered, then the connection closes and requests after it are dropped")
    func closeEnds() throws {
        let responder = HeldResponder()
        let channel = try Self.server(responder)
        try channel.writeInbound(ByteBuffer(string: "GET /last HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: b\r\n\r\n"))
        responder.answerOldest()
        let text = try Self.written(channel)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.lowercased().contains("connection: close"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(responder.uris.isEmpty)
    }

    /// Counts the reads the handlers behind it ask the socket for.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        let reads = Mutex(0)

        func read(context: ChannelHandlerContext) {
            reads.withLock { $0 += 1 }
            context.read()
        }
    }

    @Test("a client that pipelines without end is held back: past the queue's bound no more reads are asked for, until answers drain it")
    func queueBound() throws {
        let responder = HeldResponder()
        let channel = try Self.server(responder)
        let counter = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(counter, position: .first)
        let count = HTTPExchangeServer.maxQueued + 4
        try channel.writeInbound(ByteBuffer(string: (1...count).map { "GET /r\($0) HTTP/1.1\r\nHost: b\r\n\r\n" }.joined()))
        let before = counter.reads.withLock { $0 }
        channel.read()
        #expect(counter.reads.withLock { $0 } == before, "a read was asked for with the queue full")
        // Answering drains the queue; once it is below the bound the held read is asked for.
        // One request is being answered and the rest wait: four answers bring the wait below the bound.
        for _ in 0..<3 { responder.answerOldest() }
        #expect(counter.reads.withLock { $0 } == before)
        responder.answerOldest()
        #expect(counter.reads.withLock { $0 } == before + 1)
        while !responder.uris.isEmpty { responder.answerOldest() }
        #expect(try Self.written(channel).components(separatedBy: "HTTP/1.1 200 OK").count - 1 == count)
        _ = try channel.finish()
    }

    @Test("an answer given from another thread is written on the connection's loop")
    func answerFromAnotherThread() async throws {
        let responder = HeldResponder()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let server = try await ServerBootstrap(group: loop)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Listening.configureHTTP1Server(channel, maxBodyBytes: 1024) { request, loop, answer in
                        responder.respond(request, loop, answer)
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        async let received = RawClient.untilClosed(port: port, sending: "GET /late HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        for _ in 0..<200 where responder.uris.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        // Answered from this task, which runs off the server's event loop.
        responder.answerOldest()
        let text = try await received
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.hasSuffix("answer to /late"))
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
