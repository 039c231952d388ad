import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
@testable import RampartProxy

/// Two proxies in front of an application on loopback, as two workloads of a mesh have them: the
/// client's (its outbound listener routes `server:8080` to the server's inbound listener over
/// mTLS) and the server's (which forwards to the application). Each logs to its own file.
struct TwoProxies {
    let client: TestProxy
    let server: TestProxy
    let clientLog: String
    let serverLog: String

    /// Runs `body` with the proxies in front of the application on `appPort`, and stops them after.
    static func with(
        appPort: Int, acceptHTTP10: Bool = false, appProtocol: AppProtocol = .auto, idleTimeouts: IdleTimeouts = .envoy,
        _ body: (TwoProxies) async throws -> Void
    ) async throws {
        let fixture = try MeshFixture()
        defer { fixture.remove() }
        let serverIdentity = try await fixture.identity(namespace: "default", serviceAccount: "server")
        let clientIdentity = try await fixture.identity(namespace: "default", serviceAccount: "client")
        let serverLog = "\(fixture.directory)/server-access.log"
        let clientLog = "\(fixture.directory)/client-access.log"
        let server = try await TestProxy(
            workload: WorkloadInfo(
                name: "server-v1", namespace: "default", labels: ["app": "server"], services: [ServicePort(name: "server", port: appPort)],
                appPort: appPort),
            identityDirectory: serverIdentity.directory, appPort: appPort, logFile: serverLog, upstreamTimeout: .seconds(60),
            appProtocol: appProtocol, acceptHTTP10: acceptHTTP10, idleTimeouts: idleTimeouts)
        let client = try await TestProxy(
            workload: WorkloadInfo(name: "client-v1", namespace: "default", labels: ["app": "client"], appPort: 1),
            identityDirectory: clientIdentity.directory, appPort: 1, logFile: clientLog, upstreamTimeout: .seconds(60), idleTimeouts: idleTimeouts)
        try server.install(SnapshotBuilder.snapshot(version: 2))
        try client.install(SnapshotBuilder.snapshot(
            version: 2, services: [("server", "default", 8080, [("127.0.0.1:\(server.inboundPort)", serverIdentity.spiffeID, "server-v1")])]))
        let proxies = TwoProxies(client: client, server: server, clientLog: clientLog, serverLog: serverLog)
        do {
            try await body(proxies)
        } catch {
            await client.stop()
            await server.stop()
            throw error
        }
        await client.stop()
        await server.stop()
    }
}

/// An HTTP/1.1 listener on loopback for the tests' applications, and its accept loop.
enum LoopbackHTTP {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    typealias Listener = NIOAsyncChannel<Connection, Never>

    /// Binds 127.0.0.1 on a port the system picks.
    static func listen() async throws -> Listener {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Serves each connection with `serve`, in a task of its own, until the task is cancelled.
    static func run(_ listener: Listener, _ serve: @escaping @Sendable (Connection) async throws -> Void) async {
        try? await withThrowingDiscardingTaskGroup { group in
            try await listener.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { try? await serve(connection) }
                }
            }
        }
    }

    /// Serves each stream of each HTTP/2 connection `listener` accepts with `serve`, in a task of
    /// its own, telling it the number of its connection (1 for the first accepted), until the task
    /// is cancelled.
    static func runHTTP2<Stream: Sendable>(
        _ listener: NIOAsyncChannel<NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>, Never>,
        accepted: @escaping @Sendable () -> Void = {},
        _ serve: @escaping @Sendable (Stream, _ connection: Int) async -> Void
    ) async {
        try? await withThrowingDiscardingTaskGroup { group in
            try await listener.executeThenClose { connections in
                var number = 0
                for try await multiplexer in connections {
                    number += 1
                    accepted()
                    let connection = number
                    group.addTask {
                        try? await withThrowingDiscardingTaskGroup { streams in
                            for try await stream in multiplexer.inbound {
                                streams.addTask { await serve(stream, connection) }
                            }
                        }
                    }
                }
            }
        }
    }
}
