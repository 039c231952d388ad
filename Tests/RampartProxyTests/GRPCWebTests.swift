import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import RampartProxy

/// gRPC-Web calls bridged to a gRPC application on a proxy whose application is declared
/// `grpc-web` (grpc/grpc `doc/PROTOCOL-WEB.md`; Envoy's `grpc_web` filter, which Istio adds on
/// `grpc-web` ports): binary and base64 bodies, the trailers as the body's last frame, server
/// streaming passed on message by message, and answers that are not gRPC given as a gRPC status.
@Suite("gRPC-Web calls bridged to gRPC")
struct GRPCWebTests {
    // MARK: The bridge's pieces

    @Test("only the four gRPC-Web content types make a call, and `accept` asks for a base64 answer")
    func detection() {
        func head(_ type: String, accept: String? = nil) -> HTTPRequestHead {
            var headers: HTTPHeaders = ["content-type": type]
            if let accept { headers.add(name: "accept", value: accept) }
            return HTTPRequestHead(version: .http1_1, method: .POST, uri: "/pkg.Svc/Call", headers: headers)
        }
        #expect(GRPCWeb.call(head("application/grpc-web")) == GRPCWeb.Call(textRequest: false, textResponse: false))
        #expect(GRPCWeb.call(head("application/grpc-web+proto")) == GRPCWeb.Call(textRequest: false, textResponse: false))
        #expect(GRPCWeb.call(head("application/grpc-web-text")) == GRPCWeb.Call(textRequest: true, textResponse: false))
        #expect(
            GRPCWeb.call(head("application/grpc-web-text+proto", accept: "application/grpc-web-text"))
                == GRPCWeb.Call(textRequest: true, textResponse: true))
        #expect(
            GRPCWeb.call(head("application/grpc-web", accept: "application/grpc-web-text+proto"))
                == GRPCWeb.Call(textRequest: false, textResponse: true))
        for other in ["application/grpc", "application/grpc+proto", "application/grpc-web+json", "application/json", "text/plain"] {
            #expect(GRPCWeb.call(head(other)) == nil, "\(other) was taken for gRPC-Web")
        }
    }

    @Test("the request's head becomes a gRPC call's")
    func requestHead() {
        var head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/pkg.Svc/Call",
            headers: ["content-type": "application/grpc-web-text", "content-length": "12", "x-grpc-web": "1"])
        GRPCWeb.translate(&head)
        #expect(head.headers["content-type"] == ["application/grpc"])
        #expect(head.headers["te"] == ["trailers"])
        #expect(head.headers["grpc-accept-encoding"] == ["identity,deflate,gzip"])
        #expect(!head.headers.contains(name: "content-length"))
        #expect(head.headers["x-grpc-web"] == ["1"])
        var chosen = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/", headers: ["content-type": "application/grpc-web", "grpc-accept-encoding": "gzip"])
        GRPCWeb.translate(&chosen)
        #expect(chosen.headers["grpc-accept-encoding"] == ["gzip"], "the client's own grpc-accept-encoding was replaced")
    }

    @Test("a base64 body decodes across pieces that split its groups, and padded runs may follow each other")
    func textDecoding() throws {
        let message = GRPCStreamClient.frame("hello, gRPC-Web")
        let text = Data(message.readableBytesView).base64EncodedString()
        var decoder = GRPCWeb.TextDecoder()
        var decoded = ByteBuffer()
        // Pieces of 1, 2, 3... characters: groups of four split every way.
        var rest = Substring(text)
        var size = 1
        while !rest.isEmpty {
            var piece = try decoder.decode(ByteBuffer(string: String(rest.prefix(size))))
            decoded.writeBuffer(&piece)
            rest = rest.dropFirst(size)
            size += 1
        }
        try decoder.finish()
        #expect(decoded == message)

        // Two messages, each encoded on its own (each with its padding).
        let first = Data([0, 0, 0, 0, 0]).base64EncodedString()
        let second = Data([0, 0, 0, 0, 2, 0x42, 0x43]).base64EncodedString()
        #expect(first.hasSuffix("=") && second.hasSuffix("="))
        var runs = GRPCWeb.TextDecoder()
        let both = try runs.decode(ByteBuffer(string: first + second))
        try runs.finish()
        #expect(Array(both.readableBytesView) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x42, 0x43])
    }

    @Test("a body that is not base64, or whose length leaves part of a group, is refused")
    func badText() throws {
        var invalid = GRPCWeb.TextDecoder()
        #expect(throws: GRPCWeb.BadText.self) { _ = try invalid.decode(ByteBuffer(string: "AA!A")) }
        do {
            var decoder = GRPCWeb.TextDecoder()
            _ = try decoder.decode(ByteBuffer(string: "AAAAAA"))
            try decoder.finish()
            Issue.record("a body of six characters was accepted")
        } catch {
            #expect(error.badSize)
            #expect(error.details == "grpc_base_64_decode_failed_bad_size")
        }
    }

    @Test("a gRPC answer keeps its messages and gains its trailers as the last frame, in binary and in base64")
    func wholeAnswer() throws {
        var trailers = HTTPHeaders()
        trailers.add(name: "grpc-status", value: "0")
        trailers.add(name: "grpc-message", value: "done")
        var body = GRPCStreamClient.frame("one")
        var second = GRPCStreamClient.frame("two")
        body.writeBuffer(&second)
        let upstream = BufferedResponse(
            head: HTTPResponseHead(version: .http2, status: .ok, headers: ["content-type": "application/grpc", "content-length": "16"]),
            body: body, trailers: trailers)

        var binary = upstream
        GRPCWeb.respond(&binary, call: GRPCWeb.Call(textRequest: false, textResponse: false))
        #expect(binary.head.headers["content-type"] == ["application/grpc-web+proto"])
        #expect(!binary.head.headers.contains(name: "content-length"))
        #expect(binary.trailers == nil)
        let frames = Self.frames(binary.body)
        #expect(frames.map(\.flag) == [0, 0, 0x80])
        #expect(frames.map(\.payload) == ["one", "two", "grpc-status:0\r\ngrpc-message:done\r\n"])

        var text = upstream
        GRPCWeb.respond(&text, call: GRPCWeb.Call(textRequest: false, textResponse: true))
        #expect(text.head.headers["content-type"] == ["application/grpc-web-text+proto"])
        // Each frame is encoded on its own: three padded runs.
        let encoded = String(buffer: text.body)
        var decoder = GRPCWeb.TextDecoder()
        let decoded = try decoder.decode(ByteBuffer(string: encoded))
        try decoder.finish()
        #expect(Self.frames(decoded).map(\.payload) == ["one", "two", "grpc-status:0\r\ngrpc-message:done\r\n"])
        #expect(encoded == [GRPCStreamClient.frame("one"), GRPCStreamClient.frame("two")].map { Data($0.readableBytesView).base64EncodedString() }.joined()
            + Data(GRPCStreamClient.frame("grpc-status:0\r\ngrpc-message:done\r\n", flag: 0x80).readableBytesView).base64EncodedString())
    }

    @Test("a base64 answer's frames are encoded whole, however the application's writes split them")
    func textAcrossChunks() {
        var encoder = GRPCWeb.ResponseEncoder(text: true, passesBody: true)
        let frame = GRPCStreamClient.frame("split message")
        var out = ""
        for index in 0..<frame.readableBytes {
            out += String(buffer: encoder.body(frame.getSlice(at: index, length: 1)!))
            if index < frame.readableBytes - 1 { #expect(out.isEmpty, "part of a frame was encoded before its end") }
        }
        #expect(out == Data(frame.readableBytesView).base64EncodedString())
        #expect(encoder.end(nil).readableBytes == 0, "a response without trailers gained a frame")
    }

    @Test("an answer that is not gRPC becomes a gRPC status, its text the message, with no body")
    func notGRPC() {
        var failure = BufferedResponse.local(.serviceUnavailable, "upstream connect error 100%")
        GRPCWeb.respond(&failure, call: GRPCWeb.Call(textRequest: false, textResponse: false))
        #expect(failure.head.status == .serviceUnavailable)
        #expect(failure.head.headers["grpc-status"] == ["14"])
        #expect(failure.head.headers["grpc-message"] == ["upstream connect error 100%25"])
        #expect(failure.head.headers["content-length"] == ["0"])
        #expect(failure.head.headers["content-type"] == ["application/grpc-web+proto"])
        #expect(failure.body.readableBytes == 0)

        var page = BufferedResponse(
            head: HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-type": "text/html"]), body: ByteBuffer(string: "<h1>hi</h1>"))
        GRPCWeb.respond(&page, call: GRPCWeb.Call(textRequest: false, textResponse: true))
        #expect(page.head.headers["grpc-status"] == ["2"], "a 200 that is not gRPC is UNKNOWN")
        #expect(page.head.headers["grpc-message"] == ["<h1>hi</h1>"])

        // Trailers-only (an error status in the only HEADERS frame) is gRPC's own.
        var only = BufferedResponse(
            head: HTTPResponseHead(
                version: .http2, status: .ok, headers: ["content-type": "application/grpc", "grpc-status": "5", "grpc-message": "missing"]))
        GRPCWeb.respond(&only, call: GRPCWeb.Call(textRequest: false, textResponse: false))
        #expect(only.head.headers["grpc-status"] == ["5"])
        #expect(only.head.headers["grpc-message"] == ["missing"])
        #expect(only.body.readableBytes == 0)
    }

    // MARK: Through the proxies

    @Test("curl's binary and base64 gRPC-Web calls over HTTP/1.1 reach the gRPC application through both proxies")
    func curlCalls() async throws {
        try await GRPCStreamingTests().withMesh(appProtocol: .grpcWeb) { app, outboundPort, _, _ in
            // Binary.
            let binary = try await Self.curl(
                port: outboundPort, path: "/test.Stream/Count", contentType: "application/grpc-web+proto", accept: nil,
                body: Data(GRPCStreamClient.frame("twelve bytes").readableBytesView))
            #expect(binary.status == 200, "\(binary)")
            #expect(binary.headers["content-type"] == "application/grpc-web+proto")
            let frames = Self.frames(ByteBuffer(bytes: binary.body))
            #expect(frames.map(\.payload) == ["12 bytes in 1 messages", "grpc-status:0\r\ngrpc-message:counted\r\n"])
            #expect(frames.map(\.flag) == [0, 0x80])

            // Base64 both ways.
            var request = GRPCStreamClient.frame("abc")
            var second = GRPCStreamClient.frame("defg")
            request.writeBuffer(&second)
            let text = try await Self.curl(
                port: outboundPort, path: "/test.Stream/Count", contentType: "application/grpc-web-text",
                accept: "application/grpc-web-text", body: Data(Data(request.readableBytesView).base64EncodedString().utf8))
            #expect(text.status == 200, "\(text)")
            #expect(text.headers["content-type"] == "application/grpc-web-text+proto")
            var decoder = GRPCWeb.TextDecoder()
            let decoded = try decoder.decode(ByteBuffer(bytes: text.body))
            try decoder.finish()
            #expect(Self.frames(decoded).map(\.payload) == ["7 bytes in 2 messages", "grpc-status:0\r\ngrpc-message:counted\r\n"])
            #expect(app.calls.withLock { $0 } == 2)
        }
    }

    @Test("a base64 body that is not base64 gets 400, and the application never gets the whole call")
    func badBase64ThroughProxy() async throws {
        try await GRPCStreamingTests().withMesh(appProtocol: .grpcWeb) { app, outboundPort, _, _ in
            let bad = try await Self.curl(
                port: outboundPort, path: "/test.Stream/Count", contentType: "application/grpc-web-text", accept: nil,
                body: Data("AAAAB".utf8))
            #expect(bad.status == 400, "\(bad)")
            #expect(String(decoding: bad.body, as: UTF8.self).contains("invalid base64"))
            // A body whose rest came after its head went on as it came (as Envoy passes it on): the
            // application may have seen the call start, but never its end.
            // Waited for until the call it saw start was abandoned, so that the application is not
            // stopped with the call's first frames still on their way to it.
            for _ in 0..<200 {
                let (calls, abandoned) = (app.calls.withLock { $0 }, app.abandoned.withLock { $0 })
                if calls > 0 && calls == abandoned { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(app.calls.withLock { $0 } == app.abandoned.withLock { $0 }, "the application got a whole call")
        }
    }

    @Test("a policy's denial of a gRPC-Web call is the plain 403 Envoy's RBAC filter gives, before the bridge")
    func denied() async throws {
        let deny = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: no-count, namespace: default}
            spec:
              action: DENY
              rules:
              - to: [{operation: {paths: ["/test.Stream/Count"]}}]
            """
        try await GRPCStreamingTests().withMesh(policies: [("AuthorizationPolicy", "default", "no-count", deny)], appProtocol: .grpcWeb) {
            app, outboundPort, _, _ in
            let denied = try await Self.curl(
                port: outboundPort, path: "/test.Stream/Count", contentType: "application/grpc-web", accept: nil,
                body: Data(GRPCStreamClient.frame("x").readableBytesView))
            #expect(denied.status == 403, "\(denied)")
            #expect(String(decoding: denied.body, as: UTF8.self) == "RBAC: access denied")
            #expect(denied.headers["grpc-status"] == nil)
            #expect(app.calls.withLock { $0 } == 0)
        }
    }

    @Test("a server-streaming call over HTTP/2 gets each message as the application sends it, then the trailers' frame")
    func serverStreaming() async throws {
        try await GRPCStreamingTests().withMesh(appProtocol: .grpcWeb) { app, outboundPort, _, _ in
            let (channel, multiplexer) = try await RawHTTP2.connect(port: outboundPort)
            defer { channel.close(promise: nil) }
            let watchdog = channel.eventLoop.scheduleTask(in: .seconds(15)) { channel.close(promise: nil) }
            defer { watchdog.cancel() }
            let stream = try await RawHTTP2.openStream(multiplexer)
            try await stream.executeThenClose { inbound, outbound in
                let headers: [(String, String)] = [
                    (":method", "POST"), (":scheme", "http"), (":path", "/test.Stream/Countdown"), (":authority", "server:8080"),
                    ("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1"),
                ]
                try await outbound.write(.headers(.init(headers: HPACKHeaders(headers))))
                try await outbound.write(.data(.init(data: .byteBuffer(GRPCStreamClient.frame("3")), endStream: true)))
                var frames = inbound.makeAsyncIterator()
                var pending = ByteBuffer()
                var received: [(flag: UInt8, payload: String)] = []
                var headerBlocks: [HPACKHeaders] = []
                var ended = false
                while !ended, let frame = try await frames.next() {
                    switch frame {
                    case .headers(let block):
                        headerBlocks.append(block.headers)
                        ended = block.endStream
                    case .data(let data):
                        if case .byteBuffer(var bytes) = data.data { pending.writeBuffer(&bytes) }
                        ended = data.endStream
                        let whole = Self.takeFrames(&pending)
                        received += whole
                        // The countdown waits for the test after each tick: had the answer been
                        // held whole, no tick would come before the gate opened.
                        for frame in whole where frame.flag == 0 { app.gate.open() }
                    default:
                        continue
                    }
                }
                #expect(headerBlocks.count == 1, "the trailers came as a HEADERS frame: \(headerBlocks)")
                #expect(headerBlocks.first?.first(name: "content-type") == "application/grpc-web+proto")
                #expect(received.map(\.payload) == ["tick 3", "tick 2", "tick 1", "grpc-status:0\r\ngrpc-message:lift-off\r\n"])
                #expect(received.map(\.flag) == [0, 0, 0, 0x80])
            }
        }
    }

    @Test("a trailers-only answer keeps its status in the head, with the gRPC-Web content type")
    func trailersOnly() async throws {
        try await GRPCStreamingTests().withMesh(appProtocol: .grpcWeb) { _, outboundPort, _, _ in
            let missing = try await Self.curl(
                port: outboundPort, path: "/test.Stream/Missing", contentType: "application/grpc-web", accept: nil,
                body: Data(GRPCStreamClient.frame("x").readableBytesView))
            #expect(missing.status == 200, "\(missing)")
            #expect(missing.headers["grpc-status"] == "5")
            #expect(missing.headers["grpc-message"] == "no such call")
            #expect(missing.headers["content-type"] == "application/grpc-web+proto")
            #expect(missing.body.isEmpty)
        }
    }

    // MARK: Helpers

    /// The frames of a gRPC-Web body: flag and payload as text.
    static func frames(_ body: ByteBuffer) -> [(flag: UInt8, payload: String)] {
        var body = body
        return takeFrames(&body)
    }

    /// The whole frames at the start of `buffer`, taken out of it.
    static func takeFrames(_ buffer: inout ByteBuffer) -> [(flag: UInt8, payload: String)] {
        var frames: [(flag: UInt8, payload: String)] = []
        while buffer.readableBytes >= 5, let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self),
            buffer.readableBytes >= 5 + Int(length)
        {
            let flag = buffer.readInteger(as: UInt8.self)!
            buffer.moveReaderIndex(forwardBy: 4)
            frames.append((flag, buffer.readString(length: Int(length)) ?? ""))
        }
        buffer.discardReadBytes()
        return frames
    }

    struct CurlResponse: CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var description: String { "\(status) \(headers) \(String(decoding: body, as: UTF8.self))" }
    }

    /// A POST with curl over HTTP/1.1 to the client proxy's outbound side, for `server:8080`.
    static func curl(port: Int, path: String, contentType: String, accept: String?, body: Data) async throws -> CurlResponse {
        let directory = "\(NSTemporaryDirectory())rampart-grpcweb-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body.write(to: URL(fileURLWithPath: "\(directory)/request"))
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments =
            [
                "curl", "-sS", "--http1.1", "--max-time", "20", "-o", "\(directory)/body", "-D", "\(directory)/head",
                "-H", "Host: server:8080", "-H", "content-type: \(contentType)", "-H", "x-grpc-web: 1",
            ]
            + (accept.map { ["-H", "accept: \($0)"] } ?? [])
            + ["--data-binary", "@\(directory)/request", "http://127.0.0.1:\(port)\(path)"]
        _ = try await curl.outputToExit()
        guard curl.terminationStatus == 0 else { throw ProxyError(.upstream, "curl exited with \(curl.terminationStatus)") }
        let head = try String(contentsOfFile: "\(directory)/head", encoding: .utf8)
        var lines = head.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let status = Int(lines.removeFirst().split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let received = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/body"))
        return CurlResponse(status: status, headers: headers, body: Array(received))
    }
}
