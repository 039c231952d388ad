import Foundation
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import RampartProxy

/// gRPC responses without a message leave as one HEADERS frame ("trailers-only"), whatever the
/// HTTP/1 view of the stream wrote.
@Suite("gRPC responses: trailers-only, HTTP/1.1, content types")
struct GRPCTrailersOnlyTests {
    /// A stream's pipeline as the listeners build it, from the trailers-only handler up.
    static func stream() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([GRPCTrailersOnly(), HTTP2FramePayloadToHTTP1ServerCodec()])
        return channel
    }

    static func written(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    static let grpcHead = HTTPResponseHead(version: .http2, status: .ok, headers: ["content-type": "application/grpc"])

    @Test("head and trailers with no message between are one HEADERS frame that ends the stream, holding both")
    func joined() throws {
        let channel = try Self.stream()
        let done = channel.eventLoop.makePromise(of: Void.self)
        channel.write(HTTPServerResponsePart.head(Self.grpcHead), promise: nil)
        channel.write(HTTPServerResponsePart.end(["grpc-status": "7", "grpc-message": "RBAC: access denied"]), promise: done)
        channel.flush()
        let frames = try Self.written(channel)
        guard frames.count == 1, case .headers(let only) = frames[0] else {
            Issue.record("expected one HEADERS frame, got \(frames)")
            return
        }
        #expect(only.endStream)
        #expect(only.headers.first(name: ":status") == "200" && only.headers.first(name: "content-type") == "application/grpc")
        #expect(only.headers.first(name: "grpc-status") == "7" && only.headers.first(name: "grpc-message") == "RBAC: access denied")
        try done.futureResult.wait()
    }

    @Test("a gRPC response with a message, a response without trailers, and a non-gRPC response pass as written")
    func untouched() throws {
        let message = try Self.stream()
        message.write(HTTPServerResponsePart.head(Self.grpcHead), promise: nil)
        message.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: [0, 0, 0, 0, 0]))), promise: nil)
        message.write(HTTPServerResponsePart.end(["grpc-status": "0"]), promise: nil)
        message.flush()
        let frames = try Self.written(message)
        #expect(frames.count == 3, "\(frames)")
        if case .headers(let head)? = frames.first { #expect(!head.endStream && !head.headers.contains(name: "grpc-status")) }
        if case .headers(let trailers)? = frames.last { #expect(trailers.endStream && trailers.headers.first(name: "grpc-status") == "0") }

        let plain = try Self.stream()
        plain.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: .forbidden, headers: ["content-type": "text/plain"])), promise: nil)
        plain.write(HTTPServerResponsePart.end(["x-trailer": "1"]), promise: nil)
        plain.flush()
        #expect(try Self.written(plain).count == 2)

        let bare = try Self.stream()
        bare.write(HTTPServerResponsePart.head(Self.grpcHead), promise: nil)
        bare.write(HTTPServerResponsePart.end(nil), promise: nil)
        bare.flush()
        let bareFrames = try Self.written(bare)
        #expect(bareFrames.count == 2, "\(bareFrames)")
    }

    @Test("a gRPC head held for its trailers goes out on a flush, with its write's promise")
    func flushReleases() throws {
        let channel = try Self.stream()
        let headWritten = channel.eventLoop.makePromise(of: Void.self)
        channel.write(HTTPServerResponsePart.head(Self.grpcHead), promise: headWritten)
        #expect(try Self.written(channel).isEmpty)
        channel.flush()
        let frames = try Self.written(channel)
        guard frames.count == 1, case .headers(let head) = frames[0] else {
            Issue.record("expected the head, got \(frames)")
            return
        }
        #expect(!head.endStream)
        try headWritten.futureResult.wait()
    }

    @Test("a gRPC content type is Envoy's: application/grpc alone or with + or ;, in any case; gRPC-Web is not")
    func contentTypes() {
        for type in ["application/grpc", "application/grpc+proto", "Application/GRPC; charset=utf-8", "application/grpc;x=1"] {
            #expect(GRPCFraming.isGRPC(contentType: type), "\(type)")
        }
        for type in ["application/grpc-web", "application/grpc-web+proto", "application/grpcx", "application/json", "application\u{0F}grpc", "application/grp", "", nil] as [String?] {
            #expect(!GRPCFraming.isGRPC(contentType: type), "\(String(describing: type))")
        }
    }

    @Test("the proxy's own reply to a gRPC call over HTTP/1.1 is HTTP 200 with the gRPC status in its head; gRPC-Web gets the plain status")
    func overHTTP1() {
        func request(_ version: HTTPVersion, _ type: String) -> HTTPRequestHead {
            HTTPRequestHead(version: version, method: .POST, uri: "/echo.Echo/Delete", headers: ["content-type": type, "host": "app"])
        }
        let denial = BufferedResponse.local(.forbidden, "RBAC: access denied")
        let http1 = HTTPServing.frame(denial, for: request(.http1_1, "application/grpc"), keepAlive: true)
        #expect(http1.head.status == .ok && http1.trailers == nil && http1.body == nil)
        #expect(http1.head.headers["grpc-status"] == ["7"] && http1.head.headers["grpc-message"] == ["RBAC: access denied"])
        #expect(http1.head.headers["content-type"] == ["application/grpc"] && http1.head.headers["content-length"] == ["0"])
        let http2 = HTTPServing.frame(denial, for: request(.http2, "application/grpc+proto"), keepAlive: true)
        #expect(http2.head.status == .ok && http2.trailers?["grpc-status"] == ["7"] && !http2.head.headers.contains(name: "grpc-status"))
        let web = HTTPServing.frame(denial, for: request(.http2, "application/grpc-web+proto"), keepAlive: true)
        #expect(web.head.status == .forbidden && web.trailers == nil)
    }
}

/// `grpc-timeout` as gRPC's HTTP/2 protocol spells it, and the timeout an exchange gets from it.
@Suite("gRPC call timeouts")
struct GRPCTimeoutTests {
    @Test("grpc-timeout is one to eight digits and a unit; anything else is no timeout")
    func parsing() {
        #expect(GRPCFraming.timeout("1S") == .seconds(1))
        #expect(GRPCFraming.timeout("250m") == .milliseconds(250))
        #expect(GRPCFraming.timeout("3H") == .hours(3))
        #expect(GRPCFraming.timeout("2M") == .minutes(2))
        #expect(GRPCFraming.timeout("7u") == .microseconds(7))
        #expect(GRPCFraming.timeout("99999999n") == .nanoseconds(99_999_999))
        #expect(GRPCFraming.timeout("0m") == .zero)
        // Eight digits of hours is past any deadline the proxy can keep: held at its longest.
        #expect(GRPCFraming.timeout("99999999H") == GRPCFraming.longestTimeout)
        for bad in ["", "S", "1", "123456789S", "1s", "1h", "-1S", " 1S", "1S ", "1.5S", "+1S", "１S"] {
            #expect(GRPCFraming.timeout(bad) == nil, "\(bad)")
        }
    }

    @Test("a gRPC call's grpc-timeout is its exchange's timeout, capped by --upstream-timeout; other requests keep the proxy's")
    func exchangeTimeout() {
        func head(_ headers: [(String, String)]) -> HTTPRequestHead {
            HTTPRequestHead(version: .http2, method: .POST, uri: "/pkg.Service/Call", headers: HTTPHeaders(headers))
        }
        let grpc = head([("content-type", "application/grpc+proto"), ("grpc-timeout", "200m")])
        #expect(GRPCFraming.exchangeTimeout(grpc, proxy: .zero) == .milliseconds(200))
        #expect(GRPCFraming.exchangeTimeout(grpc, proxy: .seconds(5)) == .milliseconds(200))
        #expect(GRPCFraming.exchangeTimeout(grpc, proxy: .milliseconds(50)) == .milliseconds(50))
        // Zero and unreadable headers leave the proxy's timeout (zero: none).
        #expect(GRPCFraming.exchangeTimeout(head([("content-type", "application/grpc"), ("grpc-timeout", "0S")]), proxy: .seconds(5)) == .seconds(5))
        #expect(GRPCFraming.exchangeTimeout(head([("content-type", "application/grpc"), ("grpc-timeout", "soon")]), proxy: .zero) == .zero)
        // Not gRPC (gRPC-Web included): the header means nothing to the proxy.
        #expect(GRPCFraming.exchangeTimeout(head([("content-type", "application/json"), ("grpc-timeout", "1S")]), proxy: .zero) == .zero)
        #expect(GRPCFraming.exchangeTimeout(head([("content-type", "application/grpc-web"), ("grpc-timeout", "1S")]), proxy: .zero) == .zero)
    }

    @Test("a timeout answers a gRPC call DEADLINE_EXCEEDED; other failures keep the status their HTTP status maps to")
    func deadlineStatus() {
        var record = RequestRecord(reporter: .destination, startTime: Date(), protocolName: "HTTP/2")
        let failure = UpstreamFailure(UpstreamTimeout(milliseconds: 200), showError: false).answer(&record)
        let timedOut = GRPCFraming.localReply(failure)
        #expect(timedOut.trailers?.first(name: "grpc-status") == "4")
        // The metrics' grpc_response_status comes from the same place.
        #expect(GRPCFraming.localStatus(failure) == 4)
        #expect(record.responseFlags == "UT")
        let idle = GRPCFraming.localReply(UpstreamFailure(UpstreamIdleTimeout(milliseconds: 300_000), showError: false).answer(&record))
        #expect(idle.trailers?.first(name: "grpc-status") == "14")
        let closed = GRPCFraming.localReply(UpstreamFailure(UpstreamClosed(), showError: false).answer(&record))
        #expect(closed.trailers?.first(name: "grpc-status") == "14")
    }
}
