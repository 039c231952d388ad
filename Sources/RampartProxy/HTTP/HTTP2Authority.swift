import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Makes an HTTP/2 request's authority what Envoy makes it before anything reads the request:
/// `:authority` when the request has one (a `host` field beside it is dropped, as Envoy's codec
/// drops it), else the `host` field as `:authority`. Without this, the HTTP/1 view of the stream
/// would take a client's `host` over its `:authority`, so a host policy would read one value and
/// the application's routing another; and a request with `host` alone would be reset, where
/// Envoy serves it. A request with neither is not passed to the HTTP/1 view, which needs a host
/// and would reset the stream: its head goes on as a `MissingAuthority` event, which the request
/// assembler hands on to be answered 400 (`missing_host_header`) and logged, as Envoy does.
final class HTTP2AuthorityNormalizer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    /// The head of a request without an authority, as the HTTP/1 view would have made it.
    struct MissingAuthority: Sendable {
        let head: HTTPRequestHead
    }

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
                context.fireUserInboundEventTriggered(MissingAuthority(head: Self.head(payload.headers)))
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

    /// The request's head from its header block: method and path from the pseudo-headers (an
    /// unknown method is kept as written, a missing one read as GET, a missing path as empty),
    /// the other fields as they are.
    static func head(_ headers: HPACKHeaders) -> HTTPRequestHead {
        let method = headers.first(name: ":method").map { HTTPMethod(rawValue: $0) } ?? .GET
        var fields = HTTPHeaders()
        for (name, value, _) in headers where !name.hasPrefix(":") { fields.add(name: name, value: value) }
        return HTTPRequestHead(version: .http2, method: method, uri: headers.first(name: ":path") ?? "", headers: fields)
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

