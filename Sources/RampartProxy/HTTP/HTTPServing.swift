import NIOCore
import NIOHTTP1

/// Answers the whole requests of a connection that async code serves (an HTTP/2 stream, see
/// `HTTPRequestAssembler`) through `respond`, and frames responses for their clients (HTTP/1.1
/// connections are served by ``HTTPExchangeServer``, which frames its responses here too).
enum HTTPServing {
    /// A server connection or HTTP/2 stream as async code sees it.
    typealias Connection = NIOAsyncChannel<AssembledRequest, FramedResponse>

    /// Serves the connection until the client closes it or asks to.
    static func serve(_ channel: Connection, respond: (BufferedRequest) async -> BufferedResponse) async throws {
        try await channel.executeThenClose { inbound, outbound in
            for try await assembled in inbound {
                let requestHead: HTTPRequestHead
                let response: BufferedResponse
                let tooLarge: Bool
                switch assembled {
                case .complete(let request):
                    requestHead = request.head
                    response = await respond(request)
                    tooLarge = false
                case .tooLarge(let head, let limit):
                    requestHead = head
                    response = BufferedResponse.local(.payloadTooLarge, "request body exceeds \(limit) bytes\n")
                    tooLarge = true
                }
                // An HTTP/2 stream carries one exchange; HTTP/1.1 keeps the connection while both sides agree.
                let http2 = requestHead.version.major == 2
                let keepAlive = http2 || (requestHead.isKeepAlive && !tooLarge && !HopByHop.asksToClose(response.head.headers))
                try await outbound.write(frame(response, for: requestHead, keepAlive: keepAlive))
                if http2 || !keepAlive { return }
            }
        }
    }

    /// A response framed for this client: hop-by-hop headers removed, `content-length` set,
    /// connection options as the exchange's version and keep-alive require.
    static func frame(_ response: BufferedResponse, for request: HTTPRequestHead, keepAlive: Bool) -> FramedResponse {
        var head = response.head
        head.version = request.version
        HopByHop.strip(&head.headers)
        let bodyless = request.method == .HEAD || head.status.code == 204 || head.status.code == 304 || head.status.code < 200
        if !bodyless {
            head.headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        }
        if request.version.major == 2 {
            // HTTP/2 has no connection-specific headers.
            head.headers.remove(name: "te")
        } else if !keepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        } else if request.version == .http1_0 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        let body = !bodyless && response.body.readableBytes > 0 ? response.body : nil
        return FramedResponse(head: head, body: body, trailers: response.trailers)
    }
}
