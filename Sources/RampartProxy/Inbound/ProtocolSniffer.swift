import NIOCore

/// What the first bytes of a connection say it carries.
public enum SniffedProtocol: Sendable, Hashable {
    /// A TLS ClientHello.
    case tls
    /// An HTTP/1.x request line.
    case http1
    /// The HTTP/2 connection preface (prior knowledge, `h2c`).
    case http2
    /// Anything else: opaque TCP.
    case tcp
}

/// Classifies a connection from its first bytes, the way Istio's inbound listener tells TLS from
/// plaintext (PERMISSIVE mode) and HTTP from opaque TCP.
///
/// A pure function of the bytes seen so far: `nil` means it needs more.
public enum ProtocolClassifier {
    static let methods: [[UInt8]] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"].map { Array($0.utf8) + [0x20] }
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Classifies `bytes`; `tlsAllowed` is false once TLS has been terminated.
    public static func classify(_ bytes: some Collection<UInt8>, tlsAllowed: Bool = true) -> SniffedProtocol? {
        guard let first = bytes.first else { return nil }
        // A TLS record of type handshake (22) whose version's major byte is 3.
        if tlsAllowed, first == 0x16 {
            if bytes.count < 2 { return nil }
            return bytes.dropFirst().first == 0x03 ? .tls : .tcp
        }
        let prefix = Array(bytes.prefix(preface.count))
        if prefix.elementsEqual(preface.prefix(prefix.count)) {
            return prefix.count == preface.count ? .http2 : nil
        }
        var undecided = false
        for method in methods {
            let head = prefix.prefix(method.count)
            if head.elementsEqual(method.prefix(head.count)) {
                if head.count == method.count { return .http1 }
                undecided = true
            }
        }
        return undecided ? nil : .tcp
    }
}

/// A handler that holds a connection's first bytes until `ProtocolClassifier` can name the
/// protocol, then lets `configure` build the rest of the pipeline, removes itself and replays
/// the bytes. If the peer sends nothing for `timeout` (a server-first protocol), the connection
/// is treated as opaque TCP.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let tlsAllowed: Bool
    private let timeout: TimeAmount
    private let configure: (Channel, SniffedProtocol) throws -> Void
    private let failed: (any Error) -> Void
    private var buffer: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false

    init(tlsAllowed: Bool, timeout: TimeAmount = .seconds(5), configure: @escaping (Channel, SniffedProtocol) throws -> Void, failed: @escaping (any Error) -> Void) {
        self.tlsAllowed = tlsAllowed
        self.timeout = timeout
        self.configure = configure
        self.failed = failed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.decide(.tcp, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer?.writeBuffer(&incoming) }
        guard let bytes = buffer?.readableBytesView, let sniffed = ProtocolClassifier.classify(bytes, tlsAllowed: tlsAllowed) else { return }
        decide(sniffed, context: context)
    }

    private func decide(_ sniffed: SniffedProtocol, context: ChannelHandlerContext) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        do {
            try configure(context.channel, sniffed)
        } catch {
            failed(error)
            context.close(promise: nil)
            return
        }
        // The held bytes go to the handlers `configure` added behind this one, then it leaves.
        let pending = buffer
        buffer = nil
        if let pending {
            context.fireChannelRead(wrapInboundOut(pending))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if !decided {
            decided = true
            failed(ProxyError(.peerRefused, "the peer closed the connection before sending anything recognizable"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        timer?.cancel()
        if !decided {
            decided = true
            failed(error)
        }
        context.close(promise: nil)
    }
}
