import NIOCore
import NIOEmbedded
import NIOHTTP1
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

    @Test("a body that would take the total past the budget is dropped and answered as overloaded; finished and abandoned bodies give their bytes back")
    func budget() {
        let budget = BodyBudget(limit: 10)
        var first = RequestAssembly(maxBodyBytes: 100, budget: budget)
        var second = RequestAssembly(maxBodyBytes: 100, budget: budget)
        #expect(first.receive(head("/a")) == nil && first.receive(body(8)) == nil)
        #expect(budget.bytesHeld == 8)
        // The second upload does not fit beside the first: it is read and dropped.
        #expect(second.receive(head("/b")) == nil && second.receive(body(5)) == nil)
        guard case .overloaded(let refused, let limit)? = second.receive(.end(nil)) else {
            Issue.record("the second body was not refused")
            return
        }
        #expect(refused.uri == "/b" && limit == 10 && budget.bytesHeld == 8)
        // The first finishes and is handed on: its bytes are no longer held as a body being read.
        guard case .complete(let request)? = first.receive(.end(nil)) else {
            Issue.record("the first request was not completed")
            return
        }
        #expect(request.body.readableBytes == 8 && budget.bytesHeld == 0)
        // Now the second fits; a stream that goes away mid-body gives its bytes back.
        #expect(second.receive(head("/b")) == nil && second.receive(body(5)) == nil && budget.bytesHeld == 5)
        second.releaseHeld()
        #expect(budget.bytesHeld == 0)
        // A body past --max-body-bytes is still refused as too large, and holds nothing.
        var large = RequestAssembly(maxBodyBytes: 4, budget: budget)
        _ = large.receive(head("/c"))
        _ = large.receive(body(3))
        _ = large.receive(body(3))
        guard case .tooLarge? = large.receive(.end(nil)) else {
            Issue.record("the large body was not refused as too large")
            return
        }
        #expect(budget.bytesHeld == 0)
    }

    @Test("a connection closed in the middle of a body gives its bytes back")
    func closedConnection() throws {
        let budget = BodyBudget(limit: 1000)
        let assembler = HTTPRequestAssembler(maxBodyBytes: 100, budget: budget)
        let channel = EmbeddedChannel(handler: assembler)
        try channel.writeInbound(head("/a"))
        try channel.writeInbound(body(40))
        #expect(budget.bytesHeld == 40)
        _ = try? channel.finish()
        #expect(budget.bytesHeld == 0)
    }
}
