import NIOCore
import NIOEmbedded
import Testing

@testable import RampartProxy

/// Records the idle events that reach the end of a pipeline.
private final class IdleEvents: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    var seen: [IdleStateHandler.IdleStateEvent] = []

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent { seen.append(idle) }
        context.fireUserInboundEventTriggered(event)
    }
}

@Suite("idle timer")
struct IdleTimerTests {
    private func channel(read: TimeAmount?, all: TimeAmount?) throws -> (EmbeddedChannel, IdleEvents) {
        let events = IdleEvents()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(IdleTimer(readTimeout: read, allTimeout: all))
        try channel.pipeline.syncOperations.addHandler(events)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, events)
    }

    @Test("nothing read for the read timeout tells .read, again each period it stays so; a read puts it off")
    func readTimeout() throws {
        let (channel, events) = try channel(read: .seconds(10), all: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(events.seen.isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(events.seen == [.read])
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(events.seen == [.read, .read])
        // A read (its burst ended) starts the period again; a flush does not count as a read.
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        try channel.writeInbound(ByteBuffer(string: "x"))
        channel.flush()
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(events.seen == [.read, .read])
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(events.seen == [.read, .read, .read])
        _ = try channel.finish()
    }

    @Test("nothing read or flushed for the all timeout tells .all; either puts it off; a closed channel hears nothing more")
    func allTimeout() throws {
        let (channel, events) = try channel(read: nil, all: .seconds(10))
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        channel.writeAndFlush(ByteBuffer(string: "out"), promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        #expect(events.seen.isEmpty, "a flush six seconds ago did not count")
        try channel.writeInbound(ByteBuffer(string: "in"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(events.seen.isEmpty, "a read nine seconds ago did not count")
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(events.seen == [.all])
        _ = try channel.finish(acceptAlreadyClosed: true)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(events.seen == [.all])
    }

    @Test("a read under way (no read-complete yet) is never idle")
    func readingIsNotIdle() throws {
        let (channel, events) = try channel(read: .seconds(10), all: .seconds(10))
        channel.pipeline.fireChannelRead(NIOAny(ByteBuffer(string: "part")))
        channel.embeddedEventLoop.advanceTime(by: .seconds(25))
        #expect(events.seen.isEmpty)
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(Set(events.seen) == [.read, .all])
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
