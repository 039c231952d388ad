import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import RampartPolicy
import Synchronization

/// What the inbound listener learned about a connection before the first request.
public struct ConnectionInfo: Sendable {
    /// The peer's address.
    public let remote: SocketAddress?
    /// The address the peer connected to.
    public let local: SocketAddress?
    /// Whether the connection is TLS.
    public let tls: Bool
    /// The verified peer, for mTLS.
    public let peer: VerifiedPeer?
    /// The effective PeerAuthentication mode when the connection was accepted.
    public let mode: MTLSMode
    /// The server name a TLS client asked for in its ClientHello (`connection.sni`).
    public let sni: String?
    /// When the listener accepted the connection (a TCP connection's record starts then, as
    /// Envoy's does, not when its first bytes were read).
    public let accepted: Date

    /// Derived once per connection rather than on every request: the peer's and this side's IP,
    /// the peer's `ip:port`, and the peer's SPIFFE ID, Istio principal and namespace.
    public let remoteIP: String?
    public let localIP: String?
    public let sourceAddress: String?
    /// The listener's `ip:port` the connection arrived on, as access logs show it.
    public let localAddress: String?
    public let peerID: String?
    public let peerPrincipal: String?
    public let peerNamespace: String?
    /// The peer's part of the `x-forwarded-client-cert` element.
    public let forwardedClientCertPeer: String?
    /// The whole element, made for the first request and again only when this side's identity
    /// changes (a rotation can change its SPIFFE ID).
    private let forwardedClientCertElements = ForwardedClientCertElements()

    /// Describes a connection.
    public init(
        remote: SocketAddress?, local: SocketAddress?, tls: Bool, peer: VerifiedPeer?, mode: MTLSMode, sni: String? = nil, accepted: Date = Date()
    ) {
        self.accepted = accepted
        self.remote = remote
        self.local = local
        self.tls = tls
        self.peer = peer
        self.mode = mode
        self.sni = sni
        self.remoteIP = remote?.ipAddress
        let localIP = local?.ipAddress
        self.localIP = localIP
        self.sourceAddress = remote.map { EndpointAddress.join($0.ipAddress ?? "?", $0.port ?? 0) }
        self.localAddress = local.map { EndpointAddress.join(localIP ?? "?", $0.port ?? 0) }
        self.peerID = peer?.spiffeIDString
        self.peerPrincipal = peer?.spiffeID.principal
        self.peerNamespace = peer?.spiffeID.istioWorkload?.namespace
        self.forwardedClientCertPeer = peer.map(ForwardedClientCert.peerFields)
    }

    /// This connection's `x-forwarded-client-cert` element, `By=<own>;<peer's fields>`; nil
    /// without an mTLS peer.
    func forwardedClientCertElement(by own: String) -> String? {
        forwardedClientCertPeer.map { forwardedClientCertElements.element(by: own, peerFields: $0) }
    }

    /// `mutual_tls` or `none`, as Istio's `connection_security_policy` label reports.
    public var securityPolicy: String { peer != nil ? "mutual_tls" : "none" }
}

/// The last `x-forwarded-client-cert` element a connection made, kept for its next requests.
private final class ForwardedClientCertElements: Sendable {
    private let last = Mutex<(own: String, element: String)?>(nil)

    func element(by own: String, peerFields: String) -> String {
        if let last = last.withLock({ $0 }), last.own == own { return last.element }
        let element = ForwardedClientCert.element(by: own, peerFields: peerFields)
        last.withLock { $0 = (own, element) }
        return element
    }
}

/// A connection the inbound listener accepted, with its protocol known.
enum InboundConnection: Sendable {
    case http1(HTTPRequestStream, ConnectionInfo)
    case http2(Listening.HTTP2Streams, any Channel, ConnectionInfo)
    case tcp(NIOAsyncChannel<ByteBuffer, ByteBuffer>, ConnectionInfo)
}

