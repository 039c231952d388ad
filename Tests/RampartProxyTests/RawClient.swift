import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
@testable import RampartProxy

/// A plaintext client that writes bytes as they are and reads until the server closes.
enum RawClient {
    /// Sends `head`, returns what arrives first (within `timeout`), then sends `body` and returns
    /// everything else received until the server closes.
    static func expecting(port: Int, head: String, body: String, timeout: TimeAmount = .seconds(5)) async throws -> (first: String, rest: String) {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        // A server that never answers is cut off rather than waited for.
        let channel = client.channel
        let watchdog = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        return try await client.executeThenClose { inbound, outbound in
            var chunks = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: head))
            let first = try await chunks.next().map { String(buffer: $0) } ?? ""
            if !body.isEmpty { try await outbound.write(ByteBuffer(string: body)) }
            var rest = ""
            while let chunk = try await chunks.next() { rest += String(buffer: chunk) }
            return (first, rest)
        }
    }

    /// Sends `text` and returns everything received until the server closes the connection.
    /// With `halfClose`, the client sends FIN right after `text` and keeps reading.
    static func untilClosed(port: Int, sending text: String, halfClose: Bool = false, timeout: Duration = .seconds(5)) async throws -> String {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: halfClose)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: halfClose))
                }
            }
        return try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            if halfClose { outbound.finish() }
            return try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    var received = ""
                    for try await chunk in inbound { received += String(buffer: chunk) }
                    return received
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                guard let first else { throw ProxyError(.upstream, "the server did not close the connection within \(timeout)") }
                return first
            }
        }
    }
}

extension RawClient {
    /// What became of bytes sent on a fresh connection.
    enum Outcome: Equatable {
        /// A response head arrived; its status line.
        case answered(String)
        /// The server closed (or reset) the connection without an answer.
        case closed
        /// Neither within the time allowed (whatever else the server sent).
        case stalled
    }

    /// Sends `text` and waits for a response head, the server's close, or `timeout`, whichever
    /// comes first; the connection is closed after.
    static func outcome(port: Int, sending text: String, timeout: TimeAmount = .seconds(10)) async throws -> Outcome {
        let (received, timedOut) = try await exchange(port: port, sending: text, timeout: timeout) { received in
            received.hasPrefix("HTTP/") && received.contains("\r\n")
        }
        if received.hasPrefix("HTTP/"), let end = received.range(of: "\r\n") { return .answered(String(received[..<end.lowerBound])) }
        return timedOut ? .stalled : .closed
    }

    /// Writes `text` on a new connection (through TLS with `tls`) and reads until `enough` holds
    /// for what came back, the server closes or resets the connection, or `timeout` passes; then
    /// closes. Returns what came and whether the time ran out.
    static func exchange(
        port: Int, tls: NIOSSLContext? = nil, sending text: String, timeout: TimeAmount, until enough: @escaping (String) -> Bool
    ) async throws -> (received: String, timedOut: Bool) {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = client.channel
        let timedOut = NIOLockedValueBox(false)
        let watchdog = channel.eventLoop.scheduleTask(in: timeout) {
            timedOut.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
        defer { watchdog.cancel() }
        return try await client.executeThenClose { inbound, outbound in
            var received = ""
            do {
                try await outbound.write(ByteBuffer(string: text))
                for try await chunk in inbound {
                    received += String(buffer: chunk)
                    if enough(received) { break }
                }
            } catch {
                // A reset, a refused handshake, or a write to a connection the server has
                // already closed: what came before it is the answer.
            }
            return (received, timedOut.withLockedValue { $0 })
        }
    }
}

/// An HTTP/2 client that sends a header block as written, pseudo-headers included, over
/// cleartext with prior knowledge: for requests NIO's HTTP/1 view of a stream cannot make.
enum RawHTTP2 {
    /// A response as its frames came.
    struct Response {
        /// The first header block (the head, or the whole response when it is trailers-only).
        var head = HPACKHeaders()
        /// The DATA frames' bytes, as text.
        var body = ""
        /// Every header block, in order: the head, then any trailers.
        var headerBlocks: [HPACKHeaders] = []
        /// Whether the first header block ended the stream.
        var headEndsStream = false
    }

    /// Sends `headers` as one HEADERS frame ending the stream; returns the response's header
    /// block and body.
    static func exchange(port: Int, headers: [(String, String)], timeout: TimeAmount = .seconds(5)) async throws -> (HPACKHeaders, String) {
        let response = try await frames(port: port, headers: headers, timeout: timeout)
        return (response.head, response.body)
    }

    /// A cleartext HTTP/2 connection with prior knowledge, and the streams it opens.
    static func connect(port: Int) async throws -> (any Channel, NIOHTTP2Handler.AsyncStreamMultiplexer<Void>) {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) { stream in
                        stream.eventLoop.makeSucceededVoidFuture()
                    }
                    return (channel, multiplexer)
                }
            }
    }

    /// A new stream of `multiplexer`, read and written frame by frame.
    static func openStream(_ multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>) async throws -> NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload> {
        try await multiplexer.openStream { stream in
            stream.eventLoop.makeCompletedFuture { try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream) }
        }
    }

    /// Sends `headers` as one HEADERS frame, which ends the stream unless `endStream` is false (a
    /// request whose body is still to come); returns the response as framed.
    static func frames(port: Int, headers: [(String, String)], endStream: Bool = true, timeout: TimeAmount = .seconds(5)) async throws -> Response {
        let (channel, multiplexer) = try await connect(port: port)
        defer { channel.close(promise: nil) }
        let stream = try await openStream(multiplexer)
        let watchdog = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        return try await stream.executeThenClose { inbound, outbound in
            try await outbound.write(.headers(.init(headers: HPACKHeaders(headers), endStream: endStream)))
            var response = Response()
            for try await frame in inbound {
                switch frame {
                case .headers(let block):
                    if response.headerBlocks.isEmpty {
                        response.head = block.headers
                        response.headEndsStream = block.endStream
                    }
                    response.headerBlocks.append(block.headers)
                    if block.endStream { return response }
                case .data(let data):
                    if case .byteBuffer(let bytes) = data.data { response.body += String(buffer: bytes) }
                    if data.endStream { return response }
                default:
                    continue
                }
            }
            throw ProxyError(.upstream, "the stream ended without a response: \(response.head)")
        }
    }

    /// Sends `headers` as one HEADERS frame ending the stream, waits `after`, and closes the
    /// connection without reading the answer: a client that gives up.
    static func abandon(port: Int, headers: [(String, String)], after: Duration) async throws {
        try await abandon(port: port, headers: headers) { try await Task.sleep(for: after) }
    }

    /// Sends a request on a stream of a new connection, waits for `until`, then closes the
    /// connection without reading the answer.
    static func abandon(port: Int, headers: [(String, String)], until: () async throws -> Void) async throws {
        let (channel, multiplexer) = try await connect(port: port)
        let stream = try await openStream(multiplexer)
        try await stream.executeThenClose { _, outbound in
            try await outbound.write(.headers(.init(headers: HPACKHeaders(headers), endStream: true)))
            try await until()
        }
        try await channel.close()
    }
}
