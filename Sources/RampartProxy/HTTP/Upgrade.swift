import NIOCore
import NIOHTTP1
import RampartPolicy
import Synchronization

/// HTTP/1.1 upgrades (WebSocket): the request is authorized and forwarded like any other, on a
/// connection of its own; when the upstream answers `101 Switching Protocols`, the client's
/// connection and the upstream's stop speaking HTTP and carry bytes both ways, as Envoy does for
/// the `websocket` upgrade Istio enables on every HTTP route.
enum HTTPUpgrade {
    /// Whether the request asks to switch protocols: HTTP/1.1, `Connection: upgrade` and an
    /// `Upgrade` header (`h2c` excepted: that is HTTP/2, which the listeners serve themselves).
    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        guard head.version == .http1_1, let protocolName = head.headers.first(name: "upgrade"),
            protocolName.lowercased() != "h2c"
        else { return false }
        return listsUpgrade(head.headers)
    }

    /// Whether NIO's HTTP/1 parser (llhttp) stops at the end of this request, taking what follows
    /// for another protocol: an `Upgrade` header with `upgrade` among the `Connection` options,
    /// whatever the protocol named, or a `CONNECT`. A request the proxy does not tunnel (an `h2c`
    /// offer, an upgrade refused) leaves the connection needing a fresh parser to go on with
    /// HTTP/1.1 (see `HTTPRequestStream.resumeParsing`).
    static func stopsParser(_ head: HTTPRequestHead) -> Bool {
        if head.method == .CONNECT { return true }
        guard head.headers.contains(name: "upgrade") else { return false }
        return listsUpgrade(head.headers)
    }

    /// Whether `upgrade` is among the `Connection` header's options.
    private static func listsUpgrade(_ headers: HTTPHeaders) -> Bool {
        headers["connection"].contains { HeaderTokens.list($0, contains: "upgrade") }
    }

    /// Puts back the two headers forwarding strips as hop-by-hop, which an upgrade must carry.
    static func restore(_ headers: inout HTTPHeaders, from original: HTTPHeaders) {
        guard let protocolName = original.first(name: "upgrade") else { return }
        headers.replaceOrAdd(name: "connection", value: "upgrade")
        headers.replaceOrAdd(name: "upgrade", value: protocolName)
    }
}

/// An upstream connection an upgrade has turned into a byte stream, waiting for the client's
/// connection to be joined to it (see `ByteTunnel`).
public final class UpgradedConnection: Sendable {
    let tunnel: ByteTunnel
    /// The bytes both ends carry, reported when both have closed.
    let tally: TunnelTally

    init(tunnel: ByteTunnel, tally: TunnelTally) {
        self.tunnel = tunnel
        self.tally = tally
    }
}

/// The bytes an upgraded connection carries each way after its 101, as Envoy counts them in the
/// exchange's `bytes_received` and `bytes_sent` and reports the exchange when the stream ends.
final class TunnelTally: Sendable {
    /// Which way bytes go.
    enum Direction: Sendable {
        /// From the client towards the upstream.
        case fromClient
        /// From the upstream towards the client.
        case fromUpstream
    }

    private struct State {
        var fromClient = 0
        var fromUpstream = 0
        var openSides = 2
        var whenClosed: (@Sendable (_ fromClient: Int, _ fromUpstream: Int) -> Void)?
    }

    private let state = Mutex(State())

    /// Adds `count` bytes read going `direction`.
    func add(_ count: Int, _ direction: Direction) {
        state.withLock { state in
            switch direction {
            case .fromClient: state.fromClient += count
            case .fromUpstream: state.fromUpstream += count
            }
        }
    }

    /// Marks one of the two sides closed (or never opened); once both are, the report runs.
    func sideClosed() {
        let report = state.withLock { state -> (@Sendable () -> Void)? in
            state.openSides -= 1
            guard state.openSides == 0, let whenClosed = state.whenClosed else { return nil }
            state.whenClosed = nil
            let (client, upstream) = (state.fromClient, state.fromUpstream)
            return { whenClosed(client, upstream) }
        }
        report?()
    }

    /// Runs `report` with the byte counts once both sides have closed (at once if they have).
    func whenClosed(_ report: @escaping @Sendable (_ fromClient: Int, _ fromUpstream: Int) -> Void) {
        let counts = state.withLock { state -> (Int, Int)? in
            guard state.openSides == 0 else {
                state.whenClosed = report
                return nil
            }
            return (state.fromClient, state.fromUpstream)
        }
        if let (client, upstream) = counts { report(client, upstream) }
    }
}

/// One side of a tunnel between two channels: what it reads is written to the other side's
/// channel, and when either closes, both do. Bytes read before the other side joins are held:
/// the upstream's first frames, sent in the moment between its 101 and the 101's reaching the
/// client.
final class ByteTunnel: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private struct State {
        var partner: (any Channel)?
        var held: [ByteBuffer] = []
        var closed = false
    }

    private let state = Mutex(State())
    /// The channel this side is installed in.
    let channel: any Channel
    /// Where the bytes this side reads are counted, and which way they go.
    private let tally: TunnelTally
    private let direction: TunnelTally.Direction

    init(channel: any Channel, tally: TunnelTally, direction: TunnelTally.Direction) {
        self.channel = channel
        self.tally = tally
        self.direction = direction
    }

    /// Joins this side to `partner`: bytes held so far go there now, later ones as they come.
    func join(_ partner: any Channel) {
        let (held, closed) = state.withLock { state -> ([ByteBuffer], Bool) in
            state.partner = partner
            defer { state.held = [] }
            return (state.held, state.closed)
        }
        for bytes in held { partner.write(bytes, promise: nil) }
        partner.flush()
        if closed { partner.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        tally.add(bytes.readableBytes, direction)
        let partner = state.withLock { state -> (any Channel)? in
            if state.partner == nil { state.held.append(bytes) }
            return state.partner
        }
        guard let partner else { return }
        partner.writeAndFlush(bytes, promise: nil)
        // Back-pressure: while the other side cannot keep up, this side stops reading; the other
        // side's tunnel end turns reading back on once its channel drains.
        if !partner.isWritable { _ = context.channel.setOption(ChannelOptions.autoRead, value: false) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner = state.withLock({ $0.partner }) {
            _ = partner.setOption(ChannelOptions.autoRead, value: true)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let partner = state.withLock { state -> (any Channel)? in
            state.closed = true
            return state.partner
        }
        partner?.close(promise: nil)
        tally.sideClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Reads the upstream's answer to an upgrade request. On `101` it makes the connection a byte
/// stream (the HTTP codec removed, the bytes the server sent after its head kept) and completes
/// with the head; on any other answer it completes with the whole response, and the connection
/// is closed by the caller.
final class UpgradeResponseReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<(BufferedResponse, UpgradedConnection?)>
    private var completed = false
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private let maxBodyBytes: Int

    init(promise: EventLoopPromise<(BufferedResponse, UpgradedConnection?)>, maxBodyBytes: Int) {
        self.promise = promise
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let received):
            head = received
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes <= maxBodyBytes { body.writeBuffer(&chunk) }
        case .end(let trailers):
            guard let head, !completed else { return }
            // The 101's end is the last HTTP the decoder hands on: what follows is the new protocol.
            if head.status == .switchingProtocols {
                switchToBytes(context: context, head: head)
                return
            }
            completed = true
            promise.succeed((BufferedResponse(head: head, body: body, trailers: trailers), nil))
        }
    }

    /// Replaces the HTTP codec with a tunnel end, which holds what follows until joined.
    private func switchToBytes(context: ChannelHandlerContext, head: HTTPResponseHead) {
        completed = true
        let channel = context.channel
        let pipeline = channel.pipeline.syncOperations
        let tally = TunnelTally()
        let tunnel = ByteTunnel(channel: channel, tally: tally, direction: .fromUpstream)
        do {
            // The tunnel end goes first in line after the decoder, so that the bytes the decoder
            // hands on when it is removed (those after the 101's head) reach it.
            try pipeline.addHandler(tunnel, position: .after(self))
            _ = pipeline.removeHandler(self)
            if let encoder = try? pipeline.handler(type: HTTPRequestEncoder.self) { _ = pipeline.removeHandler(encoder) }
            if let check = try? pipeline.handler(type: PlaintextRequestCheck.self) { _ = pipeline.removeHandler(check) }
            if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self) {
                _ = pipeline.removeHandler(decoder)
            }
            promise.succeed((BufferedResponse(head: head), UpgradedConnection(tunnel: tunnel, tally: tally)))
        } catch {
            promise.fail(error)
            channel.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !completed {
            completed = true
            promise.fail(ProxyError(.upstream, "the upstream closed the connection before answering the upgrade"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !completed {
            completed = true
            promise.fail(error)
        }
        context.close(promise: nil)
    }
}
