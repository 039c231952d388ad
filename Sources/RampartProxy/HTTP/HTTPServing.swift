import NIOCore
import NIOHTTP1

/// Reads whole HTTP/1.1 requests from a server connection, answers each through `respond`, and
/// keeps the connection alive while the client wants it.
enum HTTPServing {
    /// Serves the connection until the client closes it or asks to.
    static func serve(
        _ channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, maxBodyBytes: Int,
        respond: (BufferedRequest) async -> BufferedResponse
    ) async throws {
        try await channel.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            var tooLarge = false
            var trailers: HTTPHeaders?
            for try await part in inbound {
                switch part {
                case .head(let requestHead):
                    head = requestHead
                    body.clear()
                    tooLarge = false
                    trailers = nil
                case .body(var chunk):
                    if tooLarge { continue }
                    if body.readableBytes + chunk.readableBytes > maxBodyBytes {
                        tooLarge = true
                    } else {
                        body.writeBuffer(&chunk)
                    }
                case .end(let end):
                    guard let requestHead = head else { continue }
                    head = nil
                    trailers = end
                    let response = tooLarge
                        ? BufferedResponse.local(.payloadTooLarge, "request body exceeds \(maxBodyBytes) bytes\n")
                        : await respond(BufferedRequest(head: requestHead, body: body, trailers: trailers))
                    // An HTTP/2 stream carries one exchange; HTTP/1.1 keeps the connection while both sides agree.
                    let http2 = requestHead.version.major == 2
                    let closing = response.head.headers["connection"].contains { HopByHop.lowercasedTokens($0).contains("close") }
                    let keepAlive = http2 || (requestHead.isKeepAlive && !tooLarge && !closing)
                    try await write(response, for: requestHead, keepAlive: keepAlive, to: outbound)
                    if http2 || !keepAlive { return }
                }
            }
        }
    }

    /// Writes a response, framed for this client.
    static func write(_ response: BufferedResponse, for request: HTTPRequestHead, keepAlive: Bool, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
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
        // One write of all parts: one hop to the event loop per response rather than one per part.
        var parts: [HTTPServerResponsePart] = []
        parts.reserveCapacity(3)
        parts.append(.head(head))
        if !bodyless && response.body.readableBytes > 0 {
            parts.append(.body(.byteBuffer(response.body)))
        }
        parts.append(.end(response.trailers))
        try await outbound.write(contentsOf: parts)
    }
}
