import NIOCore
import NIOHPACK
import NIOHTTP2

/// Sends a gRPC response that carries no message "trailers-only", as gRPC servers and Envoy's
/// local replies send it: one HEADERS frame holding `:status`, `content-type` and the call's
/// `grpc-status`, ending the stream. The HTTP/1 view of a stream writes a response as its head and
/// then its trailers, two HEADERS frames; this handler, on the stream's side of that view, holds a
/// gRPC response's head until the next frame and joins the two when that frame is the trailers.
/// Any other response, and a gRPC response with messages, passes as it was written.
final class GRPCTrailersOnly: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// A gRPC response's head, and the promise of its write, until the next frame or flush.
    private var held: (headers: HPACKHeaders, promise: EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = unwrapOutboundIn(data)
        if let (head, headPromise) = held {
            held = nil
            if case .headers(let trailers) = payload, trailers.endStream, !trailers.headers.contains(name: ":status") {
                var joined = head
                for (name, value, indexing) in trailers.headers { joined.add(name: name, value: value, indexing: indexing) }
                let written = promise ?? headPromise
                if let headPromise, let promise { promise.futureResult.cascade(to: headPromise) }
                context.write(wrapOutboundOut(.headers(.init(headers: joined, endStream: true))), promise: written)
                return
            }
            context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: headPromise)
            context.write(data, promise: promise)
            return
        }
        if case .headers(let head) = payload, !head.endStream, Self.isGRPCResponseHead(head.headers) {
            held = (head.headers, promise)
            return
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        releaseHeld(context: context)
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        releaseHeld(context: context)
    }

    private func releaseHeld(context: ChannelHandlerContext) {
        guard let (head, promise) = held else { return }
        held = nil
        context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: promise)
    }

    /// Whether a header block is the head of a gRPC response: a `:status` and a gRPC content type.
    static func isGRPCResponseHead(_ headers: HPACKHeaders) -> Bool {
        headers.contains(name: ":status")
            && GRPCFraming.isGRPC(contentType: headers.first(name: "content-type"))
    }
}
