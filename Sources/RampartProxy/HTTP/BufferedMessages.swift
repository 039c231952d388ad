import NIOCore
import NIOHTTP1

/// An HTTP request held whole: the proxy decides on complete requests.
public struct BufferedRequest: Sendable {
    /// The request line and headers.
    public var head: HTTPRequestHead
    /// The body.
    public var body: ByteBuffer

    /// Creates a request.
    public init(head: HTTPRequestHead, body: ByteBuffer = ByteBuffer()) {
        self.head = head
        self.body = body
    }
}

/// An HTTP response held whole.
public struct BufferedResponse: Sendable {
    /// The status line and headers.
    public var head: HTTPResponseHead
    /// The body.
    public var body: ByteBuffer

    /// Creates a response.
    public init(head: HTTPResponseHead, body: ByteBuffer = ByteBuffer()) {
        self.head = head
        self.body = body
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

    /// Removes hop-by-hop headers, including any the `connection` header lists.
    public static func strip(_ headers: inout HTTPHeaders) {
        let listed = headers["connection"].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for name in names.union(listed) { headers.remove(name: name) }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: CharacterSet) -> String {
        var text = self[...]
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }
}

private enum CharacterSet { case whitespaces }
