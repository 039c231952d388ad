import NIOCore
import NIOTLS

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
/// HTTP/1 is recognized, as Envoy's HTTP inspector recognizes it, by a whole request line: any
/// method token (WebDAV's `PROPFIND`, `PURGE`, a custom one), a request target, then `HTTP/1.`;
/// empty lines before it are skipped, as servers skip them. So a request with an unusual method
/// still goes through the HTTP checks (client certificate header, JWT, header sanitizing), and a
/// line protocol that merely starts with a word (`SET key value`) stays TCP.
///
/// A pure function of the bytes seen so far: `nil` means it needs more.
public enum ProtocolClassifier {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let version = Array(" HTTP/1.".utf8)
    /// How far a request line is looked for before the bytes count as TCP.
    static let requestLineLimit = 8192

    /// Classifies `bytes`; `tlsAllowed` is false once TLS has been terminated.
    public static func classify(_ bytes: some Collection<UInt8>, tlsAllowed: Bool = true) -> SniffedProtocol? {
        guard let first = bytes.first else { return nil }
        // A TLS record of type handshake (22) whose version's major byte is 3.
        if tlsAllowed, first == 0x16 {
            if bytes.count < 2 { return nil }
            return bytes.dropFirst().first == 0x03 ? .tls : .tcp
        }
        let prefix = Array(bytes.prefix(max(preface.count, requestLineLimit)))
        if prefix.prefix(preface.count).elementsEqual(preface.prefix(min(prefix.count, preface.count))) {
            if prefix.count < preface.count { return nil }
            if prefix.prefix(preface.count).elementsEqual(preface) { return .http2 }
        }
        return requestLine(prefix)
    }

    /// `.http1` for a request line, `.tcp` for anything that cannot start one, `nil` for a start
    /// that needs more bytes.
    private static func requestLine(_ bytes: [UInt8]) -> SniffedProtocol? {
        var index = 0
        while index < bytes.count, bytes[index] == 0x0D || bytes[index] == 0x0A {
            index += 1
            if index > 8 { return .tcp }
        }
        let methodStart = index
        while index < bytes.count, isTokenCharacter(bytes[index]) {
            index += 1
            if index - methodStart > 32 { return .tcp }
        }
        guard index < bytes.count else { return bytes.count >= requestLineLimit ? .tcp : nil }
        guard index > methodStart, bytes[index] == 0x20 else { return .tcp }
        index += 1
        guard index < bytes.count else { return nil }
        // origin-form (/), asterisk-form (*), absolute-form (a scheme) or a CONNECT's
        // authority-form (a name, an IPv4 address, or an IPv6 one in brackets).
        let target = bytes[index]
        let isDigit = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(target)
        guard target == UInt8(ascii: "/") || target == UInt8(ascii: "*") || target == UInt8(ascii: "[") || isLetter(target) || isDigit
        else { return .tcp }
        while index < bytes.count, bytes[index] > 0x20, bytes[index] != 0x7F { index += 1 }
        guard index < bytes.count else { return bytes.count >= requestLineLimit ? .tcp : nil }
        let rest = bytes[index...].prefix(version.count)
        guard rest.elementsEqual(version.prefix(rest.count)) else { return .tcp }
        return rest.count == version.count ? .http1 : nil
    }

    /// The symbols RFC 9110's `tchar` allows beside letters and digits.
    private static let tokenSymbols = Array("!#$%&'*+-.^_`|~".utf8)

    /// RFC 9110's `tchar`: the characters of a method token.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        isLetter(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || tokenSymbols.contains(byte)
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
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
    /// Behind TLS, the protocol decided as soon as the handshake completes, without bytes (a port
    /// declared TCP).
    private let decidingAtHandshake: SniffedProtocol?
    private let timeout: TimeAmount
    private let configure: (Channel, SniffedProtocol) throws -> Void
    private let failed: (any Error) -> Void
    /// Told the server name a TLS client asks for (`nil`: none), before `configure` is called.
    private let serverName: ((String?) -> Void)?
    private var buffer: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false
    /// Whether the bytes are TLS and the rest of the ClientHello's record is awaited.
    private var awaitingClientHello = false
    /// Whether the listener began draining before the protocol was known: the handlers
    /// `configure` adds are told once they are in place.
    private var quiesced = false

    init(
        tlsAllowed: Bool, decidingAtHandshake: SniffedProtocol? = nil, timeout: TimeAmount = .seconds(5), serverName: ((String?) -> Void)? = nil,
        configure: @escaping (Channel, SniffedProtocol) throws -> Void, failed: @escaping (any Error) -> Void
    ) {
        self.tlsAllowed = tlsAllowed
        self.decidingAtHandshake = decidingAtHandshake
        self.timeout = timeout
        self.serverName = serverName
        self.configure = configure
        self.failed = failed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            // A TLS client whose ClientHello never completes is still TLS; the handshake then fails.
            if handler.awaitingClientHello { handler.serverName?(nil) }
            handler.decide(handler.awaitingClientHello ? .tls : .tcp, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer?.writeBuffer(&incoming) }
        guard let bytes = buffer?.readableBytesView, let sniffed = ProtocolClassifier.classify(bytes, tlsAllowed: tlsAllowed) else { return }
        if sniffed == .tls, let serverName {
            // The server name is in the ClientHello: its first record is read whole first.
            switch ClientHelloInspector.inspect(bytes) {
            case .needMore:
                awaitingClientHello = true
                return
            case .none: serverName(nil)
            case .serverName(let name): serverName(name)
            }
        }
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
        if quiesced {
            if sniffed == .http2 {
                // After the client's first frames, sent with the preface, have been read: an HTTP/2
                // connection told to go away before its settings are read is a protocol error.
                let channel = context.channel
                context.eventLoop.scheduleTask(in: Self.http2QuiesceDelay) {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            } else {
                context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// How long an HTTP/2 connection recognized during a drain runs before it is told.
    static let http2QuiesceDelay: TimeAmount = .milliseconds(100)

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !decided {
            quiesced = true
            return
        }
        if let decidingAtHandshake, case .handshakeCompleted? = event as? TLSUserEvent {
            context.fireUserInboundEventTriggered(event)
            decide(decidingAtHandshake, context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
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
