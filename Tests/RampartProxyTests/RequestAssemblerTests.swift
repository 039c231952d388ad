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
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head(.GET, "/a")))
        #expect(try channel.readInbound(as: AssembledRequest.self) == nil)
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
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

        // Not gRPC: held whole, and refused past the limit.
        var plain = call
        plain.headers.replaceOrAdd(name: "content-type", value: "application/json")
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.head(plain))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.body(ByteBuffer(string: "message")))
        channel.pipeline.fireChannelRead(HTTPServerRequestPart.end(nil))
        channel.pipeline.fireChannelReadComplete()
        guard case .tooLarge? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("a JSON body past the limit was not refused")
            return
        }
    }

    @Test("body chunks are joined in order and trailers kept")
    func chunks() throws {
        let channel = try Self.channel()
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head()))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "hello ")))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "world")))
        try channel.writeInbound(HTTPServerRequestPart.end(["grpc-status": "0"]))
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("no request")
            return
        }
        #expect(String(buffer: request.body) == "hello world")
        #expect(request.trailers?["grpc-status"] == ["0"])
        #expect(try channel.finish().isClean)
    }

    @Test("a body past the limit gives the head alone, and the next request on the connection is whole")
    func tooLarge() throws {
        let channel = try Self.channel(limit: 8)
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head(.PUT, "/big")))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "12345")))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "6789")))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "more")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        guard case .tooLarge(let head, let limit)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the oversized request was not reported")
            return
        }
        #expect(head.uri == "/big" && limit == 8)
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head(.POST, "/small")))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "12345678")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        guard case .complete(let request)? = try channel.readInbound(as: AssembledRequest.self) else {
            Issue.record("the request after the oversized one was lost")
            return
        }
        #expect(request.head.uri == "/small" && String(buffer: request.body) == "12345678")
        #expect(try channel.finish().isClean)
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
