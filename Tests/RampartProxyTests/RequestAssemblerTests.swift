import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import RampartProxy
import Testing

@Suite("HTTP request assembly")
struct RequestAssemblerTests {
    private static func channel(limit: Int = 16) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: limit))
        return channel
    }

    private static func head(_ method: HTTPMethod = .POST, _ uri: String = "/orders") -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: ["host": "b.ns1"])
    }

    @Test("a bodiless request is handed on at its end, whole and once")
    func bodiless() throws {
        let channel = try Self.channel()
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(Self.head(.GET, "/a")))
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("no request")
            return
        }
        #expect(request.head.uri == "/a" && request.head.method == .GET)
        #expect(request.body.readableBytes == 0 && request.trailers == nil)
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("a gRPC call over HTTP/2 is handed on at the end of the read that brought its head, with what came with it, then part by part")
    func streamedCall() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTPRequestAssembler(maxBodyBytes: 4, streamsGRPC: true))
        let call = HTTPRequestHead(version: .http2, method: .POST, uri: "/pkg.Service/Call", headers: ["host": "b", "content-type": "application/grpc"])
        // A unary call in one read: head, message and end handed on as one request, past the limit on held bodies.
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(call))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "message")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(["x-t": "1"]))
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        channel.pipeline.fireChannelReadComplete()
        guard case .complete(let unary)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("no call")
            return
        }
        #expect(unary.isStreamed && unary.streamEnded && String(buffer: unary.body) == "message" && unary.trailers?["x-t"] == ["1"])
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)

        // A streaming call: its head alone, then each message and the end as they come.
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(call))
        channel.pipeline.fireChannelReadComplete()
        guard case .complete(let streaming)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("no call")
            return
        }
        #expect(streaming.isStreamed && !streaming.streamEnded && streaming.body.readableBytes == 0)
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "first")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        guard case .bodyPart(let first)? = try channel.readInbound(as: AssembledRequest.self),
            case .end(nil)? = try channel.readInbound(as: AssembledRequest.self)
        else {
            Issue.record("the call's parts were not handed on")
            return
        }
        #expect(String(buffer: first) == "first")

        // Not gRPC: held up to the limit, then handed on as an upload.
        var plain = call
        plain.headers.replaceOrAdd(name: "content-type", value: "application/json")
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(plain))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "message")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        guard case .complete(let json)? = try channel.readInbound(as: AssembledRequest.self), let upload = json.upload else {
            Issue.record("a JSON body past the limit was not passed on as it arrives")
            return
        }
        #expect(!json.isStreamed && upload.hasEnded && upload.bytesReceived == 7)
    }

    @Test("body chunks that come within one read are joined in order and trailers kept")
    func chunks() throws {
        let channel = try Self.channel()
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(Self.head()))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "hello ")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "world")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(["grpc-status": "0"]))
        channel.pipeline.fireChannelReadComplete()
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("no request")
            return
        }
        #expect(String(buffer: request.body) == "hello world")
        #expect(request.trailers?["grpc-status"] == ["0"])
        #expect(try channel.finish().isClean)
    }

    @Test("a body past the limit is handed on with what was held, the rest follows into its upload, and the next request on the connection is whole")
    func pastTheLimit() throws {
        let channel = try Self.channel(limit: 8)
        // Within one read: held up to the limit.
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(Self.head(.PUT, "/big")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "12345")))
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "6789")))
        guard case .complete(let big)? = try channel.readInbound(as: AssembledRequest.self), let upload = big.upload else {
            Issue.record("the request past the limit was not handed on")
            return
        }
        #expect(big.head.uri == "/big" && String(buffer: big.body) == "12345" && big.trailers == nil)
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "more")))
        #expect(!upload.hasEnded)
        try channel.writeInbound(HTTPServerRequestPart.end(["x-checksum": "1"]))
        // Nothing more is handed on through the pipeline: the rest went into the upload.
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        var rest = ""
        var trailers: HTTPHeaders?
        for part in BodyBudgetTests.taken(upload) {
            switch part {
            case .body(let chunk): rest += String(buffer: chunk)
            case .end(let end): trailers = end
            }
        }
        #expect(rest == "6789more" && trailers?["x-checksum"] == ["1"])
        #expect(upload.hasEnded && upload.isTakenWhole && upload.bytesReceived == 13)
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(Self.head(.POST, "/small")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "12345678")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the request after the uploaded one was lost")
            return
        }
        #expect(request.head.uri == "/small" && String(buffer: request.body) == "12345678" && request.upload == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("an upload's queue holds reads of the client past its limit, and an upstream that takes what waits reads on")
    func uploadGate() throws {
        let channel = try Self.channel(limit: 4)
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads, position: .first)
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head(.PUT, "/big")))
        let chunk = ByteBuffer(repeating: 1, count: 64 * 1024)
        try channel.writeInbound(HTTPServerRequestPart.body(chunk))
        guard case .complete(let big)? = try channel.readInbound(as: AssembledRequest.self), let upload = big.upload else {
            Issue.record("the request past the limit was not handed on")
            return
        }
        for _ in 0..<4 { try channel.writeInbound(HTTPServerRequestPart.body(chunk)) }
        // 256 KiB wait: a read asked for now is held.
        let before = reads.count
        channel.read()
        #expect(reads.count == before, "a read went through with the upload's queue full")
        #expect(BodyBudgetTests.taken(upload).count == 5)
        // Taking them passes the held read on.
        #expect(reads.count == before + 1, "the held read was not passed on once the upstream took what waited")
        // An abandoned upload lets reads through and drops what comes.
        upload.abandon()
        for _ in 0..<5 { try channel.writeInbound(HTTPServerRequestPart.body(chunk)) }
        channel.read()
        #expect(reads.count == before + 2)
        #expect(BodyBudgetTests.taken(upload).isEmpty)
    }

    @Test("a framed response is written as head, body and end; without a body as head and end")
    func writes() throws {
        let channel = try Self.channel()
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "2"])
        try channel.writeOutbound(ResponseWrite.whole(FramedResponse(head: head, body: ByteBuffer(string: "ok"), trailers: nil)))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == .head(head))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == .body(.byteBuffer(ByteBuffer(string: "ok"))))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == .end(nil))
        let empty = HTTPResponseHead(version: .http1_1, status: .noContent)
        try channel.writeOutbound(ResponseWrite.whole(FramedResponse(head: empty, body: nil, trailers: ["x-t": "1"])))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == .head(empty))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == .end(["x-t": "1"]))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("framing sets the length, strips hop-by-hop headers, and says close when the connection ends")
    func framing() {
        var response = BufferedResponse(
            head: HTTPResponseHead(version: .http1_1, status: .ok, headers: ["connection": "x-hop", "x-hop": "1", "x-app": "2"]),
            body: ByteBuffer(string: "abc"))
        let get = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        let kept = HTTPServing.frame(response, for: get, keepAlive: true)
        #expect(kept.head.headers["content-length"] == ["3"])
        #expect(kept.head.headers["x-hop"].isEmpty && kept.head.headers["connection"].isEmpty)
        #expect(kept.head.headers["x-app"] == ["2"] && kept.body.map { String(buffer: $0) } == "abc")
        let closing = HTTPServing.frame(response, for: get, keepAlive: false)
        #expect(closing.head.headers["connection"] == ["close"])
        let head = HTTPServing.frame(response, for: HTTPRequestHead(version: .http1_1, method: .HEAD, uri: "/"), keepAlive: true)
        #expect(head.body == nil && head.head.headers["content-length"].isEmpty)
        response.body = ByteBuffer()
        #expect(HTTPServing.frame(response, for: get, keepAlive: true).body == nil)
        let old = HTTPServing.frame(response, for: HTTPRequestHead(version: .http1_0, method: .GET, uri: "/"), keepAlive: true)
        #expect(old.head.version == .http1_0 && old.head.headers["connection"] == ["keep-alive"])
    }
}

/// Counts the reads that reach the front of a pipeline.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private(set) var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}
