import Foundation
import NIOCore
import NIOHTTP1

/// An HTTP request held whole: the proxy decides on complete requests.
public struct BufferedRequest: Sendable {
    /// The request line and headers.
    public var head: HTTPRequestHead
    /// The body.
    public var body: ByteBuffer
    /// Trailers, if the client sent any (gRPC over HTTP/2 may).
    public var trailers: HTTPHeaders?

    /// Creates a request.
    public init(head: HTTPRequestHead, body: ByteBuffer = ByteBuffer(), trailers: HTTPHeaders? = nil) {
        self.head = head
        self.body = body
        self.trailers = trailers
    }

    /// Whether the request arrived over HTTP/2.
    public var isHTTP2: Bool { head.version.major == 2 }

    /// Whether the request is gRPC (`content-type: application/grpc…`).
    public var isGRPC: Bool { head.headers.first(name: "content-type")?.lowercased().hasPrefix("application/grpc") ?? false }

    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`, as access logs spell it.
    public var protocolName: String {
        switch (head.version.major, head.version.minor) {
        case (2, _): return "HTTP/2"
        case (1, 0): return "HTTP/1.0"
        default: return "HTTP/1.1"
        }
    }
}

/// An HTTP response held whole.
public struct BufferedResponse: Sendable {
    /// The status line and headers.
    public var head: HTTPResponseHead
    /// The body.
    public var body: ByteBuffer
    /// Trailers (gRPC's `grpc-status` travels here).
    public var trailers: HTTPHeaders?

    /// Creates a response.
    public init(head: HTTPResponseHead, body: ByteBuffer = ByteBuffer(), trailers: HTTPHeaders? = nil) {
        self.head = head
        self.body = body
        self.trailers = trailers
    }

    /// A short plain-text response the proxy makes itself (403, 502 …).
    public static func local(_ status: HTTPResponseStatus, _ text: String, version: HTTPVersion = .http1_1) -> BufferedResponse {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(text.utf8.count))
        headers.add(name: "server", value: "rampart")
        return BufferedResponse(head: HTTPResponseHead(version: version, status: status, headers: headers), body: ByteBuffer(string: text))
    }
}

/// Header rules for forwarding.
public enum HopByHop {
    /// Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1).
    public static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate",
    ]

    /// The same names as bytes, for a case-insensitive scan without allocating.
    private static let nameBytes: [[UInt8]] = names.map { Array($0.utf8) }

    /// Removes hop-by-hop headers, including any the `connection` header lists. `te: trailers`
    /// is kept: gRPC requires it, and HTTP/2 allows exactly that value.
    ///
    /// This runs on every request and response in each direction, so it reads the headers once and
    /// removes only what it found.
    public static func strip(_ headers: inout HTTPHeaders) {
        var found: [String] = []
        var listed: [String] = []
        var keepsTrailers = false
        for (name, value) in headers where isHopByHop(name) {
            let lowered = name.lowercased()
            if !found.contains(lowered) { found.append(lowered) }
            switch lowered {
            case "connection":
                for token in value.split(separator: ",") {
                    let option = token.trimmingCharacters(in: .whitespaces).lowercased()
                    if !option.isEmpty && !listed.contains(option) { listed.append(option) }
                }
            case "te":
                keepsTrailers = keepsTrailers || value.lowercased().contains("trailers")
            default:
                break
            }
        }
        guard !found.isEmpty else { return }
        for name in found { headers.remove(name: name) }
        for name in listed where !found.contains(name) { headers.remove(name: name) }
        if keepsTrailers { headers.add(name: "te", value: "trailers") }
    }

    /// Whether `name` is one of ``names``, compared as ASCII without regard to case.
    static func isHopByHop(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            nameBytes.contains { candidate in
                candidate.count == bytes.count && zip(candidate, bytes).allSatisfy { $0 == (0x41...0x5A ~= $1 ? $1 | 0x20 : $1) }
            }
        }
    }
}
