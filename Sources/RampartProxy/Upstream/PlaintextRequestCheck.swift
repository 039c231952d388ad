import NIOCore
import NIOHTTP1
import RampartPolicy

/// The check a request gets before it leaves in plaintext (to the application, or out of the
/// mesh): its method and header names must be HTTP tokens, and its header values and target must
/// not hold a NUL, CR or LF, so that nothing copied into a request (a JWT claim written to a
/// header by `outputClaimToHeaders`) can split it or start another. The target may also hold no
/// space or other control byte.
///
/// This stands in for NIO's own outbound check, which also holds the target to RFC 3986's
/// characters and would refuse, with a 502, requests that Envoy forwards as they came: http-parser,
/// whose URL table Envoy's codecs follow, takes `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|` and `}`
/// in a target, as in `?filter={"a":1}`.
final class PlaintextRequestCheck: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let sound: Bool
        switch Self.unwrapOutboundIn(data) {
        case .head(let head): sound = Self.isSound(head)
        case .end(let trailers?): sound = Self.areSound(trailers)
        case .body, .end(nil): sound = true
        }
        guard sound else {
            promise?.fail(HTTPParserError.invalidHeaderToken)
            context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
            return
        }
        context.write(data, promise: promise)
    }

    /// Whether a request head may be written as it is.
    static func isSound(_ head: HTTPRequestHead) -> Bool {
        AuthzRequest.isHeaderToken(head.method.rawValue) && !head.uri.isEmpty
            && head.uri.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F } && areSound(head.headers)
    }

    /// Whether header fields may be written as they are.
    static func areSound(_ headers: HTTPHeaders) -> Bool {
        headers.allSatisfy { name, value in
            AuthzRequest.isHeaderToken(name) && !value.utf8.contains { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
        }
    }
}
