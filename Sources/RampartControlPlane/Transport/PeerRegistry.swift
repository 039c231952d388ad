import Foundation
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization
import X509

/// The client certificate each open TLS connection presented, keyed the way gRPC names the
/// remote peer (`ipv4:127.0.0.1:54321`), so an RPC handler can find its caller's certificate.
public final class PeerRegistry: Sendable {
    /// What one connection presented, and what the CA concluded about it.
    public struct Peer: Sendable {
        /// The leaf certificate the client presented.
        public let certificate: Certificate
    }

    private let peers = Mutex<[String: Peer]>([:])

    /// Creates an empty registry.
    public init() {}

    /// The peer for a gRPC `remotePeer` string, if it presented a certificate.
    public func peer(forRemote remote: String) -> Peer? {
        peers.withLock { $0[remote] }
    }

    func register(_ peer: Peer, forRemote remote: String) {
        peers.withLock { $0[remote] = peer }
    }

    func remove(remote: String) {
        _ = peers.withLock { $0.removeValue(forKey: remote) }
    }

    /// gRPC's spelling of a socket address.
    static func key(for address: SocketAddress?) -> String? {
        switch address {
        case .v4(let v4)?: return "ipv4:\(v4.host):\(address?.port ?? 0)"
        case .v6(let v6)?: return "ipv6:[\(v6.host)]:\(address?.port ?? 0)"
        default: return nil
        }
    }
}

/// Records the peer certificate once the TLS handshake completes; forgets it when the connection closes.
final class PeerCertificateRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let registry: PeerRegistry
    private var key: String?

    init(registry: PeerRegistry) {
        self.registry = registry
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent,
            let key = PeerRegistry.key(for: context.channel.remoteAddress),
            let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let nioCertificate = handler.peerCertificate,
            let der = try? nioCertificate.toDERBytes(),
            let certificate = try? Certificate(derEncoded: der)
        {
            self.key = key
            registry.register(PeerRegistry.Peer(certificate: certificate), forRemote: key)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let key { registry.remove(remote: key) }
        context.fireChannelInactive()
    }
}
