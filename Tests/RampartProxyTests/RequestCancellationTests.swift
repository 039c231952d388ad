import NIOCore
import NIOEmbedded
import Testing

@testable import RampartProxy

/// What a client's going away closes, and what it no longer closes.
@Suite("Request cancellation")
struct RequestCancellationTests {
    static func open() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test("the client's going closes the request's upstream, once; not one released to its pool, nor after the answer")
    func closes() throws {
        let upstream = try Self.open()
        let cancellation = RequestCancellation()
        cancellation.closing(upstream)
        cancellation.cancel()
        #expect(cancellation.isCancelled && !upstream.isActive)

        // A connection given back to its pool, then the client goes: the connection stays open.
        let pooled = try Self.open()
        cancellation.begin()
        cancellation.closing(pooled)
        cancellation.release(pooled)
        cancellation.cancel()
        #expect(cancellation.isCancelled && pooled.isActive)

        // After the answer, nothing is closed; an upstream registered after the client went is closed at once.
        let answered = try Self.open()
        cancellation.begin()
        cancellation.closing(answered)
        cancellation.finish()
        cancellation.cancel()
        #expect(!cancellation.isCancelled && answered.isActive)
        let late = try Self.open()
        cancellation.begin()
        cancellation.cancel()
        cancellation.closing(late)
        #expect(!late.isActive)
        _ = try? pooled.finish()
        _ = try? answered.finish()
    }
}
