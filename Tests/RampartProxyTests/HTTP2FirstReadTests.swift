import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization
@testable import RampartProxy
import Testing

/// An HTTP/2 stream is opened as soon as its HEADERS frame is decoded, before the frames that
/// came after it in the same read; the proxy's first read of a stream waits for them, so that a
/// request sent whole goes on whole (see `HTTPRequestInbox.init(defersFirstRead:)`).
@Suite("An HTTP/2 request sent whole")
struct HTTP2FirstReadTests {
    @Test(
        "a request whose frames come in one write reaches an HTTP/2 application as HEADERS and one DATA frame that ends it, gRPC or not",
        arguments: [("/echo.Echo/Say", "application/grpc"), ("/upload", "application/json")])
    func goesOnWhole(path: String, contentType: String) async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await FrameRecordingApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let proxy = try await mesh.serverProxy(appPort: app.port, appProtocol: .http2, permissive: true)
        defer { Task { await proxy.stop(); try? await app.listener.channel.close() } }

        // UpstreamClient writes the head, the body and the end in one flush: HEADERS and one DATA
        // frame that ends the stream, in one write.
        let client = UpstreamClient(maxBodyBytes: 1 << 16)
        defer { client.shutdown() }
        let target = UpstreamTarget(host: "127.0.0.1", port: proxy.inboundPort, http2: true)
        for index in 0..<3 {
            var request = TestClient.request(method: .POST, path: path, host: "app", headers: [("content-type", contentType), ("te", "trailers")])
            request.body = ByteBuffer(bytes: [0, 0, 0, 0, 5] + Array("hello".utf8))
            let response = try await client.send(request, to: target, timeout: .seconds(10)).response
            #expect(response.head.status == .ok, "call \(index): \(response.head.status)")
        }
        let streams = app.streams.withLock { $0 }
        #expect(streams.count == 3)
        for frames in streams {
            // Read in pieces, the request would come as HEADERS, a DATA frame with its body and an
            // empty one that ends it, each in a write of its own.
            #expect(frames == ["headers", "data 10 end"], "\(frames)")
        }
    }
}

/// An HTTP/2 application that records the frames of each stream it is sent (`headers`, or `data`
/// with its length and whether it ends the stream) and answers each request, once it has ended,
/// with a HEADERS frame that ends the stream (status 200, and `grpc-status: 0` for gRPC).
final class FrameRecordingApp: Sendable {
    typealias Stream = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>
    let listener: NIOAsyncChannel<NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>, Never>
    var port: Int { listener.channel.localAddress?.port ?? 0 }
    /// Each stream's frames, in the order the streams ended.
    let streams = Mutex<[[String]]>([])

    init() async throws {
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server) { stream in
                        stream.eventLoop.makeCompletedFuture { try Stream(wrappingChannelSynchronously: stream) }
                    }
                }
            }
    }

    func run() async {
        await LoopbackHTTP.runHTTP2(listener) { stream, _ in await self.serve(stream) }
    }

    private func serve(_ stream: Stream) async {
        try? await stream.executeThenClose { inbound, outbound in
            var frames: [String] = []
            var grpc = false
            for try await payload in inbound {
                let ended: Bool
                switch payload {
                case .headers(let headers):
                    frames.append("headers")
                    grpc = headers.headers.first(name: "content-type")?.hasPrefix("application/grpc") == true
                    ended = headers.endStream
                case .data(let data):
                    frames.append("data \(data.data.readableBytes)\(data.endStream ? " end" : "")")
                    ended = data.endStream
                default:
                    continue
                }
                guard ended else { continue }
                streams.withLock { $0.append(frames) }
                var answer: HPACKHeaders = [":status": "200"]
                if grpc {
                    answer.add(name: "content-type", value: "application/grpc")
                    answer.add(name: "grpc-status", value: "0")
                }
                try await outbound.write(.headers(.init(headers: answer, endStream: true)))
                return
            }
        }
    }
}
