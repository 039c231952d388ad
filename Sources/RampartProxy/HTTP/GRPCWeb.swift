import Foundation
import NIOCore
import NIOHTTP1

/// gRPC-Web calls bridged to the gRPC application, as Envoy's `grpc_web` filter bridges them on
/// the ports Istio declares `grpc-web` (`--app-protocol grpc-web`): a browser's call, over
/// HTTP/1.1 or HTTP/2, reaches the application as a gRPC call over HTTP/2, and its answer goes
/// back in gRPC-Web's framing (grpc/grpc `doc/PROTOCOL-WEB.md`).
///
/// - The request: `content-type` becomes `application/grpc`, `te: trailers` is set,
///   `grpc-accept-encoding` given when absent, `content-length` dropped; a `-text` request's body
///   is base64, decoded as it comes.
/// - The response: `content-type` becomes `application/grpc-web+proto` (or
///   `application/grpc-web-text+proto` when the client accepts that), and the trailers go at the
///   end of the body as a frame of their own (flag `0x80`), `name:value\r\n` each; a `-text`
///   response has each frame base64-encoded on its own. A response that is not gRPC (a 503 from a
///   failed connection, an HTML error page) has its status given as `grpc-status` and its body as
///   `grpc-message`, and no body.
///
/// Answers the proxy makes before the application (a policy's 403, a JWT's 401) are not
/// rewritten: Istio places the filter after its authentication and authorization filters.
enum GRPCWeb {
    /// The content types that make a request gRPC-Web (compared exactly, as Envoy compares them).
    static let contentTypes: Set<String> = [
        "application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text", "application/grpc-web-text+proto",
    ]
    static let textTypes: Set<String> = ["application/grpc-web-text", "application/grpc-web-text+proto"]
    /// The flag of the frame that carries the trailers.
    static let trailerFlag: UInt8 = 0x80
    /// How much of a non-gRPC response's body becomes its `grpc-message`.
    static let maxMessageBytes = 16 * 1024

    /// What a gRPC-Web call asks of the bridge.
    struct Call: Sendable, Equatable {
        /// The request's body is base64 (`application/grpc-web-text`).
        var textRequest: Bool
        /// The client accepts a base64 response (`accept: application/grpc-web-text`).
        var textResponse: Bool
    }

    /// The call `head` makes, or nil when it is not gRPC-Web.
    static func call(_ head: HTTPRequestHead) -> Call? {
        guard let type = head.headers.first(name: "content-type"), contentTypes.contains(type), !head.uri.isEmpty else { return nil }
        let accept = head.headers.first(name: "accept")
        return Call(textRequest: textTypes.contains(type), textResponse: accept.map { textTypes.contains($0) } ?? false)
    }

    /// Rewrites a gRPC-Web request's head into a gRPC call's.
    static func translate(_ head: inout HTTPRequestHead) {
        head.headers.remove(name: "content-length")
        head.headers.replaceOrAdd(name: "content-type", value: "application/grpc")
        head.headers.replaceOrAdd(name: "te", value: "trailers")
        if !head.headers.contains(name: "grpc-accept-encoding") {
            head.headers.add(name: "grpc-accept-encoding", value: "identity,deflate,gzip")
        }
    }

    /// A `-text` request whose body is not base64.
    struct BadText: Error, CustomStringConvertible {
        /// The body's length left bytes past the last group of four.
        var badSize: Bool
        var description: String {
            badSize
                ? "the gRPC-Web text body's length is not a multiple of 4 (base64 padding is required)"
                : "the gRPC-Web text body is not valid base64"
        }
        /// The access log's response details, as Envoy's filter names the two failures.
        var details: String { badSize ? "grpc_base_64_decode_failed_bad_size" : "grpc_base_64_decode_failed" }
    }

    /// Decodes a `-text` body as its pieces come: whole groups of four characters are decoded at
    /// once, the rest waits for the next piece. A group with padding ends a base64 run, and the
    /// next group may start another (a client that encoded its messages one by one).
    struct TextDecoder: Sendable {
        private var pending: [UInt8] = []

        /// The bytes `chunk` completes.
        mutating func decode(_ chunk: ByteBuffer) throws(BadText) -> ByteBuffer {
            pending.append(contentsOf: chunk.readableBytesView)
            let whole = pending.count / 4 * 4
            guard whole > 0 else { return ByteBuffer() }
            var out = ByteBuffer()
            var runStart = 0
            var index = 0
            while index < whole {
                let groupEnd = index + 4
                if pending[index..<groupEnd].contains(UInt8(ascii: "=")) || groupEnd == whole {
                    guard let data = Data(base64Encoded: Data(pending[runStart..<groupEnd])) else { throw BadText(badSize: false) }
                    out.writeBytes(data)
                    runStart = groupEnd
                }
                index = groupEnd
            }
            pending.removeFirst(whole)
            return out
        }

        /// Checks that nothing is left over at the body's end.
        func finish() throws(BadText) {
            if !pending.isEmpty { throw BadText(badSize: true) }
        }
    }

    /// Rewrites the application's response (or the answer to a failure to reach it) for a
    /// gRPC-Web client. A whole response is rewritten here; a response whose body follows its head
    /// (`streamed`) gets its head and first piece rewritten, and an encoder for the rest, which
    /// the connection's writer applies (`HTTPServing.deliver`).
    ///
    /// Returns the number of messages of a whole gRPC answer (`nil` for one that is not gRPC's, or
    /// whose body follows: its encoder counts them).
    @discardableResult
    static func respond(_ response: inout BufferedResponse, call: Call) -> Int? {
        let endsAtHead = response.streamed == nil && response.body.readableBytes == 0 && response.trailers == nil
        var encoder = ResponseEncoder(text: call.textResponse, passesBody: isGRPCResponse(response.head, endsAtHead: endsAtHead))
        response.head.headers.remove(name: "content-length")
        response.head.headers.replaceOrAdd(
            name: "content-type", value: call.textResponse ? "application/grpc-web-text+proto" : "application/grpc-web+proto")
        if !encoder.passesBody {
            // Not a gRPC answer: its status and text become gRPC's, and it keeps no body.
            let text = response.body.getBytes(at: response.body.readerIndex, length: min(response.body.readableBytes, maxMessageBytes)) ?? []
            response.head.headers.replaceOrAdd(name: "grpc-status", value: String(GRPCFraming.status(for: response.head.status.code)))
            response.head.headers.replaceOrAdd(name: "grpc-message", value: GRPCFraming.percentEncoded(text))
            response.head.headers.replaceOrAdd(name: "content-length", value: "0")
            response.body = ByteBuffer()
            response.trailers = nil
            if response.streamed != nil { response.webEncoder = encoder }
            return nil
        }
        var body = encoder.body(response.body)
        if response.streamed != nil {
            response.body = body
            response.webEncoder = encoder
            return nil
        }
        var end = encoder.end(response.trailers)
        body.writeBuffer(&end)
        response.body = body
        response.trailers = nil
        return encoder.messageCount
    }

    /// Whether a response is gRPC's own (status 200 with a gRPC or gRPC-Web proto content type, or
    /// a trailers-only answer), whose body passes through; any other is rewritten as a status.
    static func isGRPCResponse(_ head: HTTPResponseHead, endsAtHead: Bool) -> Bool {
        if endsAtHead && head.headers.contains(name: "grpc-status") { return true }
        guard head.status == .ok, let type = head.headers.first(name: "content-type") else { return false }
        if GRPCFraming.isGRPC(contentType: type) { return true }
        let media = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return media == "application/grpc-web" || media == "application/grpc-web+proto"
    }

    /// The encoder of a response's body: its gRPC frames pass through (or are base64-encoded one
    /// by one, for a `-text` client), and its trailers become the last frame.
    struct ResponseEncoder: Sendable {
        let text: Bool
        /// False for a response rewritten as a status: its body is dropped.
        let passesBody: Bool
        /// For a `-text` client, the bytes of a frame not yet whole.
        private var partial = ByteBuffer()
        /// The application's messages passed on so far.
        private var messages = GRPCMessageCounter()

        /// The application's messages passed on, `nil` for an answer that is not gRPC's.
        var messageCount: Int? { passesBody ? messages.count : nil }

        init(text: Bool, passesBody: Bool) {
            self.text = text
            self.passesBody = passesBody
        }

        /// What of `chunk` goes to the client now.
        mutating func body(_ chunk: ByteBuffer) -> ByteBuffer {
            guard passesBody else { return ByteBuffer() }
            messages.feed(chunk)
            guard text else { return chunk }
            var chunk = chunk
            partial.writeBuffer(&chunk)
            var out = ByteBuffer()
            while partial.readableBytes >= 5,
                let length = partial.getInteger(at: partial.readerIndex + 1, as: UInt32.self),
                UInt64(partial.readableBytes) >= 5 + UInt64(length)
            {
                let frame = partial.readSlice(length: 5 + Int(length))!
                out.writeString(Data(frame.readableBytesView).base64EncodedString())
            }
            partial.discardReadBytes()
            return out
        }

        /// What goes to the client at the response's end: the trailers' frame.
        mutating func end(_ trailers: HTTPHeaders?) -> ByteBuffer {
            guard passesBody, let trailers else { return ByteBuffer() }
            var block = ByteBuffer()
            for (name, value) in trailers {
                block.writeString(name.lowercased())
                block.writeString(":")
                block.writeString(value)
                block.writeString("\r\n")
            }
            var frame = ByteBuffer()
            frame.writeInteger(GRPCWeb.trailerFlag)
            frame.writeInteger(UInt32(block.readableBytes))
            frame.writeBuffer(&block)
            guard text else { return frame }
            return ByteBuffer(string: Data(frame.readableBytesView).base64EncodedString())
        }
    }
}
