import NIOCore

/// Bounds the WINDOW_UPDATE frames an HTTP/2 client may send, as Envoy bounds them
/// (`max_inbound_window_update_frames_per_data_frame_sent`, 10): over the connection's life, at
/// most 5 + 2 × (streams opened + 10 × DATA frames sent). A client only needs to open its window
/// for data it is sent; one that floods WINDOW_UPDATE frames instead (13 bytes each, which NIO's
/// own flood checks do not count) would otherwise keep a core busy, and slow every connection on
/// its event loop. Past the bound the connection is closed.
///
/// It sits between TLS (or the socket) and NIO's HTTP/2 handler, and only reads the frame
/// headers of the bytes going each way, never changing them.
final class HTTP2FloodGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Envoy's default allowance of WINDOW_UPDATE frames per DATA frame sent.
    static let updatesPerDataFrame = 10

    private var inbound = HTTP2FrameScanner(prefaceBytes: 24)
    private var outbound = HTTP2FrameScanner(prefaceBytes: 0)
    private var windowUpdates = 0
    private var streamsOpened = 0
    private var dataFramesSent = 0
    private var closed = false

    /// The WINDOW_UPDATE frames the client may have sent so far.
    var allowance: Int { 5 + 2 * (streamsOpened + Self.updatesPerDataFrame * dataFramesSent) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if closed { return }
        let bytes = unwrapInboundIn(data)
        inbound.scan(bytes) { type in
            switch type {
            case HTTP2FrameScanner.windowUpdate: windowUpdates += 1
            case HTTP2FrameScanner.headers: streamsOpened += 1
            default: break
            }
        }
        if windowUpdates > allowance {
            closed = true
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        outbound.scan(unwrapOutboundIn(data)) { type in
            if type == HTTP2FrameScanner.data { dataFramesSent += 1 }
        }
        context.write(data, promise: promise)
    }
}

/// Finds the frames in a stream of HTTP/2 bytes, however they are cut, and reports each one's
/// type: a 9-byte header (24-bit length, type, flags, stream), then as many payload bytes as the
/// length says. A client's stream starts with the 24-byte connection preface, skipped.
struct HTTP2FrameScanner {
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let windowUpdate: UInt8 = 0x8

    private var prefaceLeft: Int
    private var header: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
    private var headerFilled = 0
    private var payloadLeft = 0

    init(prefaceBytes: Int) {
        prefaceLeft = prefaceBytes
    }

    /// Reads `buffer`'s bytes, calling `frame` with the type of each frame whose header completes.
    mutating func scan(_ buffer: ByteBuffer, _ frame: (UInt8) -> Void) {
        buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            let count = bytes.count
            while index < count {
                if prefaceLeft > 0 {
                    let skipped = min(prefaceLeft, count - index)
                    prefaceLeft -= skipped
                    index += skipped
                } else if payloadLeft > 0 {
                    let skipped = min(payloadLeft, count - index)
                    payloadLeft -= skipped
                    index += skipped
                } else {
                    let byte = bytes[index]
                    index += 1
                    switch headerFilled {
                    case 0: header.0 = byte
                    case 1: header.1 = byte
                    case 2: header.2 = byte
                    case 3: header.3 = byte
                    default: break
                    }
                    headerFilled += 1
                    if headerFilled == 9 {
                        headerFilled = 0
                        payloadLeft = Int(header.0) << 16 | Int(header.1) << 8 | Int(header.2)
                        frame(header.3)
                    }
                }
            }
        }
    }
}
