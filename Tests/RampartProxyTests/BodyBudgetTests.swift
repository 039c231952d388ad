import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
@testable import RampartProxy
import Testing

/// The bound on request bodies the proxy holds while it reads them, over every connection.
@Suite("Request bodies held across connections")
struct BodyBudgetTests {
    func head(_ path: String) -> HTTPServerRequestPart {
        .head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: ["host": "app"]))
    }

    func body(_ bytes: Int) -> HTTPServerRequestPart {
        .body(ByteBuffer(repeating: UInt8(ascii: "b"), count: bytes))
    }

    /// The parts an upload holds for the upstream, taken as the upstream's side takes them.
    static func taken(_ upload: StreamedUpload) -> [StreamedBody.Part] {
        guard case .parts(let parts) = upload.take(waking: EmbeddedEventLoop(), {}) else { return [] }
        return parts
    }

    @Test("a body that would take the total past the budget is passed on as it arrives; finished and abandoned bodies give their bytes back")
    func budget() {
        let budget = BodyBudget(limit: 10)
        var first = RequestAssembly(maxBodyBytes: 100, budget: budget)
        var second = RequestAssembly(maxBodyBytes: 100, budget: budget)
        #expect(first.receive(head("/a")) == nil && first.receive(body(8)) == nil)
        #expect(budget.bytesHeld == 8)
        // The second upload does not fit beside the first: it goes on with what it held (nothing),
        // and its body follows as it arrives, held by no budget.
        #expect(second.receive(head("/b")) == nil)
        guard case .complete(let streamed)? = second.receive(body(5)), let upload = streamed.upload else {
            Issue.record("the second body was not passed on as it arrives")
            return
        }
        #expect(streamed.head.uri == "/b" && streamed.body.readableBytes == 0 && budget.bytesHeld == 8)
        #expect(second.receive(body(2)) == nil && second.receive(.end(nil)) == nil)
        #expect(upload.hasEnded && upload.bytesReceived == 7)
        let parts = Self.taken(upload)
        #expect(parts.count == 3)
        if case .end = parts.last {} else { Issue.record("the upload's end was not handed on: \(parts)") }
        // The first finishes and is handed on: its bytes are no longer held as a body being read.
        guard case .complete(let request)? = first.receive(.end(nil)) else {
            Issue.record("the first request was not completed")
            return
        }
        #expect(request.body.readableBytes == 8 && request.upload == nil && budget.bytesHeld == 0)
        // Now the second connection's next body fits; a stream that goes away mid-body gives its bytes back.
        #expect(second.receive(head("/b")) == nil && second.receive(body(5)) == nil && budget.bytesHeld == 5)
        second.releaseHeld()
        #expect(budget.bytesHeld == 0)
        // A body past --max-body-bytes goes on with what was held, which it no longer holds.
        var large = RequestAssembly(maxBodyBytes: 4, budget: budget)
        _ = large.receive(head("/c"))
        _ = large.receive(body(3))
        #expect(budget.bytesHeld == 3)
        guard case .complete(let past)? = large.receive(body(3)), let rest = past.upload else {
            Issue.record("the large body was not passed on")
            return
        }
        #expect(past.body.readableBytes == 3 && budget.bytesHeld == 0)
        // A client that goes away mid-upload fails it: the upstream's side learns why.
        _ = large.abandon()
        guard case .body = Self.taken(rest).first, case .failed(let error) = rest.take(waking: EmbeddedEventLoop(), {}) else {
            Issue.record("the abandoned upload did not fail")
            return
        }
        #expect(error is StreamedUpload.ClientGone && !rest.hasEnded)
    }

    @Test("a connection closed in the middle of a body, inside the read that brought it, gives its bytes back")
    func closedConnection() throws {
        let budget = BodyBudget(limit: 1000)
        let assembler = HTTPRequestAssembler(maxBodyBytes: 100, budget: budget)
        let channel = EmbeddedChannel(handler: assembler)
        channel.pipeline.fireChannelRead(head("/a"))
        channel.pipeline.fireChannelRead(body(40))
        #expect(budget.bytesHeld == 40)
        _ = try? channel.finish()
        #expect(budget.bytesHeld == 0)
    }
}

/// Envoy's stream idle timeout and connection idle timeout, driven by the idle events the
/// listeners' `IdleTimer`s fire.
@Suite("Stalled requests and idle connections")
struct IdleTimeoutTests {
    func http1Channel() throws -> EmbeddedChannel {
        let activity = RequestActivity()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(StalledRequestCloser(activity: activity))
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 100, activity: activity))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test("an HTTP/1 connection stalled inside a request is closed when reads go idle; one between requests is kept")
    func http1() throws {
        let between = try http1Channel()
        try between.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: app\r\n\r\n"))
        between.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(between.isActive, "a connection idle after a whole request was closed")

        // Stalled inside its headers: nothing to answer; closed once the grace has passed.
        let stalled = try http1Channel()
        try stalled.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: ap"))
        stalled.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(try stalled.readInbound(as: AssembledRequest.self) == nil)
        stalled.embeddedEventLoop.advanceTime(by: StalledRequest.grace)
        #expect(!stalled.isActive, "a connection stalled in its headers was kept")

        // Stalled inside its body: the request went on at the end of its read, and its upload
        // fails with the stall, which its exchange answers 408; then closed all the same.
        let body = try http1Channel()
        try body.writeInbound(ByteBuffer(string: "POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nabc"))
        guard case .complete(let request)? = try body.readInbound(as: AssembledRequest.self), let upload = request.upload else {
            Issue.record("the request did not go on with an upload")
            return
        }
        #expect(request.head.method == .POST && request.head.uri == "/a" && String(buffer: request.body) == "abc")
        body.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        guard case .failed(let error) = upload.take(waking: body.embeddedEventLoop, {}) else {
            Issue.record("the stalled upload did not fail")
            return
        }
        #expect(error is StreamedUpload.Stalled && upload.bytesReceived == 3)
        #expect(try body.readInbound(as: AssembledRequest.self) == nil)
        // Stalled inside a body held within its read (an unsupported transfer coding, answered
        // once read): handed on to be answered 408.
        let held = try http1Channel()
        try held.writeInbound(ByteBuffer(string: "POST /b HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n"))
        held.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        guard case .stalled(let head, let partial)? = try held.readInbound(as: AssembledRequest.self) else {
            Issue.record("the stalled request was not handed on to be answered")
            return
        }
        #expect(head.method == .POST && head.uri == "/b")
        #expect(partial.bytesReceived == 3)
        held.embeddedEventLoop.advanceTime(by: StalledRequest.grace)
        #expect(!held.isActive, "a connection stalled in its body was kept")
        body.embeddedEventLoop.advanceTime(by: StalledRequest.grace)
        #expect(!body.isActive, "a connection stalled in its body was kept")

        // Nothing at all for the connection idle timeout closes even a connection between requests.
        between.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        #expect(!between.isActive)
    }

    @Test("an HTTP/2 stream is reset when its client stops before ending the request, not while it waits for its response")
    func http2() throws {
        let request = HPACKHeaders([(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "app")])
        let stalled = EmbeddedChannel(handler: StalledStreamCloser())
        try stalled.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try stalled.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: request)))
        stalled.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        // Told first (the request is answered 408 when its head came), then reset.
        stalled.embeddedEventLoop.advanceTime(by: StalledRequest.grace)
        #expect(!stalled.isActive)

        let ended = EmbeddedChannel(handler: StalledStreamCloser())
        try ended.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try ended.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: request)))
        try ended.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "x")), endStream: true)))
        ended.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        #expect(ended.isActive)
    }

    @Test("a stream that has begun its answer is reset when nothing goes either way, even once its request has ended")
    func http2Streaming() throws {
        let request = HPACKHeaders([(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "app"), ("content-type", "application/grpc")])
        let streaming = EmbeddedChannel(handler: StalledStreamCloser())
        try streaming.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try streaming.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true)))
        // Waiting for its answer, the stream is kept however long it takes.
        streaming.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        #expect(streaming.isActive)
        // Once answering (a relayed server stream), a period with nothing written (a silent
        // server, or a client that opens no window) ends it.
        try streaming.writeOutbound(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200", "content-type": "application/grpc"])))
        streaming.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        #expect(!streaming.isActive)
    }
}

/// The bound on WINDOW_UPDATE frames, Envoy's `max_inbound_window_update_frames_per_data_frame_sent`.
@Suite("HTTP/2 WINDOW_UPDATE floods")
struct WindowUpdateFloodTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// One frame's bytes: its 9-byte header and payload.
    static func frame(type: UInt8, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, 0,
            UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    static let windowUpdate = frame(type: 0x8, payload: [0, 0, 0, 1])

    @Test("the frames are found however the bytes are cut")
    func scanner() {
        var scanner = HTTP2FrameScanner(prefaceBytes: 24)
        let bytes = Self.preface + Self.frame(type: 0x4, payload: Array(repeating: 0, count: 12)) + Self.windowUpdate
            + Self.frame(type: 0x1, stream: 1, payload: Array(repeating: 7, count: 300)) + Self.windowUpdate
        var types: [UInt8] = []
        for size in [1, 2, 5, 9, 64, bytes.count] {
            scanner = HTTP2FrameScanner(prefaceBytes: 24)
            types = []
            var start = 0
            while start < bytes.count {
                let end = min(start + size, bytes.count)
                scanner.scan(ByteBuffer(bytes: bytes[start..<end])) { types.append($0) }
                start = end
            }
            #expect(types == [0x4, 0x8, 0x1, 0x8], "cut every \(size) bytes: \(types)")
        }
    }

    @Test("a client that floods WINDOW_UPDATE frames without being sent data is cut off; one opening its window for data it is sent is not")
    func flood() throws {
        let flooded = EmbeddedChannel(handler: HTTP2FloodGuard())
        try flooded.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try flooded.writeInbound(ByteBuffer(bytes: Self.preface))
        for _ in 0..<6 { try flooded.writeInbound(ByteBuffer(bytes: Self.windowUpdate)) }
        #expect(!flooded.isActive, "six WINDOW_UPDATE frames with nothing sent were let through")

        let reading = EmbeddedChannel(handler: HTTP2FloodGuard())
        try reading.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try reading.writeInbound(ByteBuffer(bytes: Self.preface))
        for _ in 0..<100 {
            try reading.writeOutbound(ByteBuffer(bytes: Self.frame(type: 0x0, stream: 1, payload: Array(repeating: 1, count: 100))))
            try reading.writeInbound(ByteBuffer(bytes: Self.windowUpdate + Self.windowUpdate))
        }
        #expect(reading.isActive)
        _ = try? reading.finish()
    }
}
