import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import RampartPolicy
import ServiceLifecycle

/// The inbound listener (Istio's 15006): the policy enforcement point in front of the application.
///
/// Each connection is classified by its first bytes. A TLS ClientHello is terminated with the
/// workload's certificate, requiring and verifying the peer's X.509-SVID; plaintext is accepted
/// only when the effective PeerAuthentication mode allows it (PERMISSIVE or DISABLE). Inside,
/// HTTP/1.1 requests are authenticated, authorized and forwarded to the application; anything
/// else is opaque TCP, authorized on its L4 attributes and spliced to the application.
public final class InboundListener: Service, Sendable {
    private let host: String
    private let port: Int
    private let context: ProxyContext
    private let onBound: @Sendable (Int) -> Void

    /// Creates the listener; `onBound` receives the bound port.
    public init(host: String, port: Int, context: ProxyContext, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.context = context
        self.onBound = onBound
    }

    /// Accepts connections until shutdown.
    public func run() async throws {
        let context = self.context
        let http = InboundHTTP(context: context)
        let tcp = InboundTCP(context: context)
        try await Listening.serve(
            host: host, port: port, name: "inbound", logger: context.logger, onBound: onBound,
            negotiate: { channel in try Self.negotiate(channel, context: context) },
            handle: { connection in
                switch connection {
                case .http1(let channel, let info): await http.serve(channel, info: info)
                case .http2(let streams, let channel, let info): await http.serve(streams, connection: channel, info: info)
                case .tcp(let channel, let info): await tcp.serve(channel, info: info)
                }
            }
        )
    }

    /// Installs the sniffer that decides how the connection continues; the future completes when
    /// the protocol is known and the pipeline built, or fails when the connection is refused.
    static func negotiate(_ channel: any Channel, context: ProxyContext) throws -> EventLoopFuture<InboundConnection> {
        let promise = channel.eventLoop.makePromise(of: InboundConnection.self)
        let accepted = Date()
        let config = context.config.current
        let mode = config?.policies.peer.mode(port: context.appPort) ?? .permissive
        let box = PeerBox()
        // A port whose application is declared HTTP (--app-protocol http, http2 or grpc-web) is
        // always served as HTTP, as Istio serves a port declared HTTP: bytes that are not HTTP get
        // 400, and a client slow to send its first request is not passed through as opaque TCP.
        // One declared TCP is always opaque TCP, HTTP requests included, as on Istio's `tcp` ports.
        let declaredHTTP = context.appProtocol.isHTTP
        let declaredTCP = context.appProtocol == .tcp
        let served: (SniffedProtocol) -> SniffedProtocol = { sniffed in
            if declaredTCP { return .tcp }
            return sniffed == .tcp && declaredHTTP ? .http1 : sniffed
        }
        let fail: (any Error) -> Void = { error in promise.fail(InboundRefusal(reason: box.refusal ?? InboundRefusal.describe(error), remote: channel.remoteAddress)) }
        let requested = ServerNameHolder()
        let sniffer = ProtocolSniffer(
            tlsAllowed: true,
            serverName: { requested.name = $0 },
            configure: { channel, sniffed in
                switch sniffed {
                case .tls where mode != .disable:
                    guard let current = context.identity.current else {
                        throw ProxyError(.identity, "no workload identity is loaded yet, so TLS cannot be terminated")
                    }
                    let verifier = PeerVerifier(roots: current.identity.roots, revoked: config?.revoked ?? RevocationList(serials: []), usage: .clientAuth)
                    let hold = HandshakeFINHold()
                    let tls = NIOSSLServerHandler(
                        context: current.contexts.server,
                        customVerificationCallbackWithMetadata: hold.watching(verifier.callback(box: box), on: channel.eventLoop))
                    try channel.pipeline.syncOperations.addHandler(hold)
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHandler(WriteCoalescer())
                    // A close_notify can come in the same read as the first bytes, and the TLS
                    // handler reads this option when it decodes it, before the inner sniffer has
                    // seen those bytes: half-closure is allowed from the start, so a TCP client's
                    // close_notify ends only its direction, and taken back if HTTP is served.
                    try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
                    // Behind mTLS a TCP port waits for nothing: the connection is spliced once the
                    // handshake is done, so a server-first application speaks first at once.
                    let inner = ProtocolSniffer(
                        tlsAllowed: false, decidingAtHandshake: declaredTCP ? .tcp : nil,
                        configure: { channel, sniffed in
                            let peer = try box.peer ?? Self.resumedPeer(channel, verifier: verifier)
                            promise.succeed(try Self.application(channel, served(sniffed), info: info(channel, tls: true, peer: peer, mode: mode, sni: requested.name, accepted: accepted), maxBodyBytes: context.maxBodyBytes, timeouts: context.idleTimeouts))
                        },
                        failed: fail
                    )
                    try channel.pipeline.syncOperations.addHandler(inner)
                case .tls, .http1, .http2, .tcp:
                    if mode == .strict {
                        throw ProxyError(.peerRefused, "plaintext refused: PeerAuthentication mode is STRICT on port \(context.appPort); connect with mTLS through a Rampart proxy")
                    }
                    // DISABLE passes a TLS stream through untouched, as opaque TCP.
                    let plain: SniffedProtocol = sniffed == .tls ? .tcp : served(sniffed)
                    promise.succeed(try Self.application(channel, plain, info: info(channel, tls: false, peer: nil, mode: mode, sni: requested.name, accepted: accepted), maxBodyBytes: context.maxBodyBytes, timeouts: context.idleTimeouts))
                }
            },
            failed: fail
        )
        try channel.pipeline.syncOperations.addHandler(sniffer)
        return promise.futureResult
    }

    /// The peer of a handshake that completed without the verification callback: a resumed
    /// session, whose certificate comes from the session (see `PeerVerifier.verifyResumed`).
    private static func resumedPeer(_ channel: any Channel, verifier: PeerVerifier) throws -> VerifiedPeer {
        guard let certificate = try channel.pipeline.syncOperations.nioSSL_peerCertificate() else {
            throw ProxyError(.peerRefused, "the TLS session carries no client certificate; mutual TLS needs a workload certificate")
        }
        return try verifier.verifyResumed(leafDER: try certificate.toDERBytes(), now: Date())
    }

    private static func info(_ channel: any Channel, tls: Bool, peer: VerifiedPeer?, mode: MTLSMode, sni: String? = nil, accepted: Date) -> ConnectionInfo {
        ConnectionInfo(remote: channel.remoteAddress, local: channel.localAddress, tls: tls, peer: peer, mode: mode, sni: sni, accepted: accepted)
    }

    /// The server name one connection's ClientHello asked for, kept from the sniffer that reads it
    /// to the pipeline built after the handshake; both run on the connection's event loop.
    private final class ServerNameHolder {
        var name: String?
    }

    /// Builds the application-protocol end of the pipeline and wraps it for async code.
    private static func application(
        _ channel: any Channel, _ sniffed: SniffedProtocol, info: ConnectionInfo, maxBodyBytes: Int, timeouts: IdleTimeouts
    ) throws -> InboundConnection {
        if sniffed != .tcp && sniffed != .tls {
            // HTTP is served on a whole connection: a client's FIN or close_notify ends it.
            try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: false)
        }
        switch sniffed {
        case .http1:
            return .http1(
                try Listening.configureHTTP1Server(channel, maxBodyBytes: maxBodyBytes, timeouts: timeouts), info)
        case .http2:
            return .http2(
                try Listening.configureHTTP2Server(channel, maxBodyBytes: maxBodyBytes, timeouts: timeouts),
                channel, info)
        case .tcp, .tls:
            // A client's FIN (over mTLS, its close_notify) ends only its direction, as TCP allows.
            try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
            return .tcp(try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: TCPSplice.channelConfiguration), info)
        }
    }
}

/// Why an inbound connection was refused before its first request.
struct InboundRefusal: Error, CustomStringConvertible {
    let reason: String
    let remote: SocketAddress?

    var description: String { "\(remote.map { "\($0): " } ?? "")\(reason)" }

    static func describe(_ error: any Error) -> String {
        if let refusal = error as? InboundRefusal { return refusal.description }
        if let proxy = error as? ProxyError { return proxy.reason }
        return TLSFailureText.describe(error)
    }
}
