import NIOCore
import NIOHTTP1
import NIOHTTP2
import RampartPolicy

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

    /// `mutual_tls` or `none`, as Istio's `connection_security_policy` label reports.
    public var securityPolicy: String { peer != nil ? "mutual_tls" : "none" }
}

/// A connection the inbound listener accepted, with its protocol known.
enum InboundConnection: Sendable {
    case http1(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, ConnectionInfo)
    case http2(NIOHTTP2Handler.AsyncStreamMultiplexer<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>>, any Channel, ConnectionInfo)
    case tcp(NIOAsyncChannel<ByteBuffer, ByteBuffer>, ConnectionInfo)
}

