import NIOCore
import NIOHPACK
import NIOHTTP2

/// Makes an HTTP/2 request's authority what Envoy makes it before anything reads the request:
/// `:authority` when the request has one (a `host` field beside it is dropped, as Envoy's codec
/// drops it), else the `host` field as `:authority`. Without this, the HTTP/1 view of the stream
/// would take a client's `host` over its `:authority`, so a host policy would read one value and
/// the application's routing another; and a request with `host` alone would be reset, where
/// Envoy serves it. A request with neither is answered 400 here, as Envoy answers it
/// (`missing_required_header`), instead of being reset by the HTTP/1 view, which needs a host.
final class HTTP2AuthorityNormalizer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// Whether the stream's request was refused: what else the client sends on it is dropped.
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refused { return }
        guard case .headers(var payload) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        // The request's first HEADERS frame: trailers carry no pseudo-headers and are left alone.
        if payload.headers.contains(name: ":method") {
            if Self.lacksAuthority(payload.headers) {
                refused = true
                Self.refuse(context: context, handler: self)
                return
            }
            payload.headers = Self.normalized(payload.headers)
        }
        context.fireChannelRead(wrapInboundOut(.headers(payload)))
        // Only the request's head needs this; its body and trailers pass straight on.
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The text of the 400 a request without an authority gets.
    static let missingAuthorityText = "request has neither :authority nor host: send the authority of the service called\n"

    /// Whether a request's head names no authority at all: no `:authority`, no `host`.
    static func lacksAuthority(_ headers: HPACKHeaders) -> Bool {
        !headers.contains(name: ":authority") && headers[canonicalForm: "host"].isEmpty
    }

    /// Answers 400 on the stream itself, in one HEADERS and one DATA frame that ends it.
    private static func refuse(context: ChannelHandlerContext, handler: HTTP2AuthorityNormalizer) {
        let body = ByteBuffer(string: missingAuthorityText)
        let headers = HPACKHeaders([
            (":status", "400"), ("content-type", "text/plain"), ("content-length", String(body.readableBytes)),
            ("date", HTTPDate.now()),
        ])
        context.write(handler.wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        context.writeAndFlush(handler.wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
    }

    /// `headers` with one authority, as above; unchanged when they hold neither.
    static func normalized(_ headers: HPACKHeaders) -> HPACKHeaders {
        let hasAuthority = headers.contains(name: ":authority")
        let hosts = headers[canonicalForm: "host"]
        guard !hosts.isEmpty else { return headers }
        var result = HPACKHeaders()
        var placed = hasAuthority
        for (name, value, indexable) in headers {
            if name.lowercased() == "host" { continue }
            // Pseudo-headers come first: the authority goes in among them.
            if !placed && !name.hasPrefix(":") {
                result.add(name: ":authority", value: String(hosts[0]))
                placed = true
            }
            result.add(name: name, value: value, indexing: indexable)
        }
        if !placed { result.add(name: ":authority", value: String(hosts[0])) }
        return result
    }
}

/// Closes an HTTP/2 connection once it has failed as a whole. On a connection error (a protocol
/// or compression error, a flood) NIO's handler sends GOAWAY but leaves the connection open and
/// goes on reading it; RFC 9113 §5.4.1 asks that it be closed after the GOAWAY, as Envoy closes
/// it. An error of one stream (reset on its own) leaves the connection as it is.
final class HTTP2ConnectionErrorCloser: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.fireErrorCaught(error)
        if error is NIOHTTP2Errors.StreamError { return }
        context.flush()
        context.close(promise: nil)
    }
}

