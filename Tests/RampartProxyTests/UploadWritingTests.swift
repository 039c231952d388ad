import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import RampartProxy
import Synchronization
import Testing

/// The upstream exchange's handler writing an upload as it comes (see `StreamedUpload`).
@Suite("Uploads written to the upstream")
struct UploadWritingTests {
    /// The outcome of an exchange, once it has one.
    final class Outcome: Sendable {
        private let value = Mutex<Result<BufferedResponse, any Error>?>(nil)
        func set(_ outcome: Result<BufferedResponse, any Error>) { value.withLock { $0 = outcome } }
        var result: Result<BufferedResponse, any Error>? { value.withLock { $0 } }
    }

    private func exchange(_ upload: StreamedUpload, headers: HTTPHeaders = ["host": "app"]) -> (UpstreamExchange, Outcome) {
        var request = BufferedRequest(
            head: HTTPRequestHead(version: .http1_1, method: .PUT, uri: "/u", headers: headers), body: ByteBuffer(string: "abc"))
        request.upload = upload
        let outcome = Outcome()
        let exchange = UpstreamExchange(request: request, completion: { outcome.set($0) }, deadline: .distantFuture, timeout: .zero)
        return (exchange, outcome)
    }

    /// An upstream connection's exchange handler, connected.
    private func connected() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: UpstreamExchangeHandler(maxBodyBytes: 1024))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func body(_ part: HTTPClientRequestPart?) -> String? {
        guard case .body(.byteBuffer(let chunk))? = part else { return nil }
        return String(buffer: chunk)
    }

    @Test("the held part goes with the head, chunked without a length; the rest is written as the client sends it, and the response completes the exchange")
    func asItComes() throws {
        let channel = try connected()
        let upload = StreamedUpload(client: nil, held: 3)
        let (exchange, result) = exchange(upload)
        try channel.writeOutbound(exchange)
        guard case .head(let head)? = try channel.readOutbound(as: HTTPClientRequestPart.self) else {
            Issue.record("no head was written")
            return
        }
        #expect(head.headers["transfer-encoding"] == ["chunked"] && !head.headers.contains(name: "content-length"), "\(head.headers)")
        #expect(body(try channel.readOutbound(as: HTTPClientRequestPart.self)) == "abc")
        // Nothing has come from the client yet: nothing more is written.
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == nil)
        upload.deliver(.body(ByteBuffer(string: "def")))
        channel.embeddedEventLoop.run()
        #expect(body(try channel.readOutbound(as: HTTPClientRequestPart.self)) == "def")
        upload.deliver(.body(ByteBuffer(string: "g")))
        upload.deliver(.end(["x-sum": "7"]))
        channel.embeddedEventLoop.run()
        #expect(body(try channel.readOutbound(as: HTTPClientRequestPart.self)) == "g")
        guard case .end(let trailers)? = try channel.readOutbound(as: HTTPClientRequestPart.self) else {
            Issue.record("the end was not written")
            return
        }
        #expect(trailers?["x-sum"] == ["7"] && upload.isTakenWhole && !upload.isUntouched)
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .created)))
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
        guard case .success(let response)? = result.result else {
            Issue.record("the exchange did not complete")
            return
        }
        #expect(response.head.status == .created)
        _ = try? channel.finish()
    }

    @Test("a length the client gave is kept; a response that ends first drops the rest, which leaves the connection unfit for another request")
    func answeredEarly() throws {
        let channel = try connected()
        let upload = StreamedUpload(client: nil, held: 3)
        let (exchange, result) = exchange(upload, headers: ["host": "app", "content-length": "100"])
        try channel.writeOutbound(exchange)
        guard case .head(let head)? = try channel.readOutbound(as: HTTPClientRequestPart.self) else {
            Issue.record("no head was written")
            return
        }
        #expect(head.headers["content-length"] == ["100"] && !head.headers.contains(name: "transfer-encoding"), "\(head.headers)")
        #expect(upload.isUntouched)
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .payloadTooLarge)))
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
        guard case .success(let response)? = result.result else {
            Issue.record("the exchange did not complete")
            return
        }
        #expect(response.head.status == .payloadTooLarge)
        upload.deliver(.body(ByteBuffer(string: "late")))
        channel.embeddedEventLoop.run()
        _ = try channel.readOutbound(as: HTTPClientRequestPart.self)  // the held body
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == nil, "the rest of an upload answered early was written")
        #expect(!upload.isTakenWhole)
        _ = try? channel.finish()
    }

    @Test("a connection that closes before anything of the upload was taken leaves the upload whole, to be sent again on another")
    func closedUnderIt() throws {
        let channel = try connected()
        let upload = StreamedUpload(client: nil, held: 3)
        let (exchange, result) = exchange(upload)
        try channel.writeOutbound(exchange)
        channel.pipeline.fireChannelInactive()
        guard case .failure(let error)? = result.result else {
            Issue.record("the exchange did not fail")
            return
        }
        #expect(error is UpstreamClosed && upload.isUntouched)
        // The next connection's handler takes what the client sends from the start.
        upload.deliver(.body(ByteBuffer(string: "def")))
        upload.deliver(.end(nil))
        let again = try connected()
        let (retried, _) = self.exchange(upload)
        try again.writeOutbound(retried)
        #expect(try written(again) == ["head", "abc", "def", "end"])
        _ = try? channel.finish()
        _ = try? again.finish()
    }

    /// What `channel` has written, as `head`, body texts and `end`.
    private func written(_ channel: EmbeddedChannel) throws -> [String] {
        var written: [String] = []
        while let part = try channel.readOutbound(as: HTTPClientRequestPart.self) {
            switch part {
            case .head: written.append("head")
            case .body(.byteBuffer(let chunk)): written.append(String(buffer: chunk))
            case .body: written.append("?")
            case .end: written.append("end")
            }
        }
        return written
    }

    @Test("a connection that closes after part of the upload was written keeps it for a second attempt, which writes it from its first part")
    func sentAgainWhole() throws {
        let channel = try connected()
        let upload = StreamedUpload(client: nil, held: 3)
        let (exchange, result) = exchange(upload)
        try channel.writeOutbound(exchange)
        upload.deliver(.body(ByteBuffer(string: "def")))
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["head", "abc", "def"])
        channel.pipeline.fireChannelInactive()
        guard case .failure? = result.result else {
            Issue.record("the exchange did not fail")
            return
        }
        #expect(!upload.isUntouched && upload.canSendAgain)
        upload.deliver(.body(ByteBuffer(string: "gh")))
        upload.deliver(.end(nil))
        let again = try connected()
        let (retried, _) = self.exchange(upload)
        try again.writeOutbound(retried)
        #expect(try written(again) == ["head", "abc", "def", "gh", "end"])
        #expect(upload.isTakenWhole && upload.bytesReceived == 8)
        _ = try? channel.finish()
        _ = try? again.finish()
    }

    @Test("past what is kept for a second attempt (1 MiB taken), an upload cannot be sent again, and a new exchange does not start it over")
    func pastWhatIsKept() throws {
        let upload = StreamedUpload(client: nil, held: 0)
        let piece = ByteBuffer(repeating: 0x61, count: 256 * 1024)
        for _ in 0..<4 { upload.deliver(.body(piece)) }
        guard case .parts(let first) = upload.take(waking: EmbeddedEventLoop(), {}) else {
            Issue.record("nothing to take")
            return
        }
        #expect(first.count == 4 && upload.canSendAgain, "exactly 1 MiB taken is kept")
        upload.rewind()
        guard case .parts(let again) = upload.take(waking: EmbeddedEventLoop(), {}) else {
            Issue.record("the rewound upload gave nothing")
            return
        }
        // The same bytes, from the first.
        var bytes = 0
        for case .body(let chunk) in again { bytes += chunk.readableBytes }
        #expect(bytes == 1 << 20)
        upload.deliver(.body(ByteBuffer(string: "x")))
        _ = upload.take(waking: EmbeddedEventLoop(), {})
        #expect(!upload.canSendAgain, "an upload past 1 MiB taken can still be sent again")
        upload.rewind()
        guard case .waiting = upload.take(waking: EmbeddedEventLoop(), {}) else {
            Issue.record("an upload past what is kept started over")
            return
        }
    }

    @Test("what is kept for a second attempt is held against the proxy's body budget and given back when the upload goes; past the budget the request is sent once")
    func replayBudget() throws {
        let budget = BodyBudget(limit: 100)
        let loop = EmbeddedEventLoop()
        var upload: StreamedUpload? = StreamedUpload(client: nil, held: 0, budget: budget)
        upload?.deliver(.body(ByteBuffer(repeating: 1, count: 60)))
        _ = upload?.take(waking: loop, {})
        #expect(budget.bytesHeld == 60 && upload?.canSendAgain == true)
        // Put back for a second attempt, then taken (and kept) again.
        upload?.rewind()
        #expect(budget.bytesHeld == 0)
        _ = upload?.take(waking: loop, {})
        #expect(budget.bytesHeld == 60)
        upload = nil
        #expect(budget.bytesHeld == 0, "an upload that went kept its bytes in the budget")

        // With the budget taken by others, nothing is kept, and the request cannot be sent again.
        #expect(budget.reserve(50))
        let crowded = StreamedUpload(client: nil, held: 0, budget: budget)
        crowded.deliver(.body(ByteBuffer(repeating: 1, count: 20)))
        _ = crowded.take(waking: loop, {})
        #expect(budget.bytesHeld == 70 && crowded.canSendAgain)
        crowded.deliver(.body(ByteBuffer(repeating: 1, count: 40)))
        _ = crowded.take(waking: loop, {})
        #expect(budget.bytesHeld == 50 && !crowded.canSendAgain)
    }

    @Test("a client that goes away mid-upload fails the exchange with that reason, which is logged DC")
    func clientGone() throws {
        let channel = try connected()
        let upload = StreamedUpload(client: nil, held: 3)
        let (exchange, result) = exchange(upload)
        try channel.writeOutbound(exchange)
        upload.fail(StreamedUpload.ClientGone())
        channel.embeddedEventLoop.run()
        guard case .failure(let error)? = result.result else {
            Issue.record("the exchange did not fail")
            return
        }
        #expect(error is StreamedUpload.ClientGone)
        #expect(!channel.isActive, "the upstream connection stayed open")
        var record = RequestRecord(reporter: .destination, startTime: Date(), protocolName: "HTTP/1.1")
        _ = UpstreamFailure(error, showError: false).answer(&record)
        #expect(record.downstreamDisconnected && record.responseFlags == "DC")
    }
}
