import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The upstream connections that leave HTTP exchanges behind: an upgraded (WebSocket) exchange's
/// connection, and an opaque TCP tunnel. Each is a connection of its own, never pooled.
extension UpstreamClient {
    /// Sends an upgrade request (WebSocket) on a connection of its own and waits for the head of
    /// the answer. On `101` the connection comes back as a byte stream to join to the client's;
    /// on any other answer it is closed and the response returned.
    public func upgrade(
        _ request: BufferedRequest, to target: UpstreamTarget, timeout: TimeAmount,
        completion: @escaping @Sendable (Result<(UpstreamResult, UpgradedConnection?), any Error>) -> Void
    ) {
        let maxBodyBytes = self.maxBodyBytes
        let loop = group.next()
        Task {
            do {
                let promise = loop.makePromise(of: (BufferedResponse, UpgradedConnection?).self)
                let (channel, peer) = try await self.open(target, on: loop) { channel in
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes, enableOutboundHeaderValidation: false)
                    if target.tls == nil { try channel.pipeline.syncOperations.addHandler(PlaintextRequestCheck()) }
                    try channel.pipeline.syncOperations.addHandler(UpgradeResponseReader(promise: promise, maxBodyBytes: maxBodyBytes))
                    return channel
                }
                var head = request.head
                head.version = .http1_1
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                let idle = self.streamIdleTimeout
                let deadline = loop.scheduleTask(in: timeout > .zero ? timeout : idle) {
                    promise.fail(
                        timeout > .zero
                            ? UpstreamTimeout(milliseconds: timeout.nanoseconds / 1_000_000)
                            : UpstreamIdleTimeout(milliseconds: idle.nanoseconds / 1_000_000))
                    channel.close(promise: nil)
                }
                let (response, upgraded) = try await promise.futureResult.get()
                deadline.cancel()
                if upgraded == nil { channel.close(promise: nil) }
                completion(.success((UpstreamResult(response: response, peer: peer), upgraded)))
            } catch {
                completion(.failure(error))
            }
        }
    }

    /// Opens a connection to `target` (with mTLS when it asks for it) that carries bytes as they
    /// are, for opaque TCP; returns it with the verified server.
    func tunnel(to target: UpstreamTarget) async throws -> (NIOAsyncChannel<ByteBuffer, ByteBuffer>, VerifiedPeer?) {
        try await open(target, on: group.next()) { channel in
            // A FIN ends one direction only, as TCP allows; over mTLS a close_notify does, and the
            // other direction stays open until the peer closes it too.
            try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel, configuration: TCPSplice.channelConfiguration)
        }
    }
}
