import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import RampartAPI
@testable import RampartAgent
import Synchronization
import Testing

/// The Workload API served on a real Unix socket, in process, by an agent on virtual time.
@Suite("Workload API server", .serialized)
struct WorkloadAPIServerTests {
    static let header: Metadata = ["workload.spiffe.io": "true"]

    /// Runs `body` with a served agent and the socket's path.
    func withServer(_ body: (NodeAgentTests.Harness, String) async throws -> Void) async throws {
        let h = try await NodeAgentTests().harness(ttl: 100)
        _ = try await h.waitForSerial(different: nil)
        let socket = h.scratch.file("agent.sock")
        let listening = Mutex(false)
        let server = WorkloadAPIServer(socketPath: socket, agent: h.agent, logger: Logger(label: "test.workload-api")) {
            listening.withLock { $0 = true }
        }
        let serving = Task { try await server.run() }
        do {
            for _ in 0..<2000 where !listening.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            #expect(listening.withLock { $0 }, "the Workload API never listened")
            try await body(h, socket)
        } catch {
            serving.cancel()
            await h.stop()
            throw error
        }
        serving.cancel()
        _ = try? await serving.value
        await h.stop()
    }

    func client<Result: Sendable>(_ socket: String, _ body: (Workload_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>) async throws -> Result) async throws -> Result {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { try await body(Workload_SpiffeWorkloadAPI.Client(wrapping: $0)) }
    }

    @Test("streams a caller cancels end and free their watchers, even more of them at once than NIO's unadvertised 100 on one connection")
    func cancelledStreamsEnd() async throws {
        try await withServer { h, socket in
            let served = try await client(socket) { client in
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for index in 0..<150 {
                        group.addTask {
                            // One-shot fetches, as SPIFFE clients' fetch calls make them: read the first, then cancel.
                            let first: Bool
                            if index % 2 == 0 {
                                first = try await client.fetchX509SVID(Workload_X509SVIDRequest(), metadata: Self.header) { response in
                                    for try await message in response.messages { return !message.svids.isEmpty }
                                    return false
                                }
                            } else {
                                first = try await client.fetchX509Bundles(Workload_X509BundlesRequest(), metadata: Self.header) { response in
                                    for try await message in response.messages { return !message.bundles.isEmpty }
                                    return false
                                }
                            }
                            return first
                        }
                    }
                    var count = 0
                    for try await ok in group where ok { count += 1 }
                    return count
                }
            }
            #expect(served == 150)
            var left = h.agent.state.watcherCount
            for _ in 0..<1000 where left > 0 {
                try await Task.sleep(for: .milliseconds(10))
                left = h.agent.state.watcherCount
            }
            #expect(left == 0, "watchers of cancelled streams are still held")
        }
    }

    @Test("the server advertises how many streams a connection may open, so clients that open more queue them")
    func advertisesStreamLimit() async throws {
        try await withServer { _, socket in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: socket) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            let settings: [UInt16: UInt32] = try await channel.executeThenClose { inbound, outbound in
                // The client preface and an empty SETTINGS frame.
                var hello = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                hello.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
                try await outbound.write(hello)
                var received = ByteBuffer()
                for try await chunk in inbound {
                    var chunk = chunk
                    received.writeBuffer(&chunk)
                    // The server's first frame is its SETTINGS.
                    guard received.readableBytes >= 9, let length = received.getInteger(at: received.readerIndex, as: UInt32.self).map({ $0 >> 8 }),
                        received.readableBytes >= 9 + Int(length)
                    else { continue }
                    #expect(received.getInteger(at: received.readerIndex + 3, as: UInt8.self) == 4, "the first frame is not SETTINGS")
                    var values: [UInt16: UInt32] = [:]
                    var offset = received.readerIndex + 9
                    while offset + 6 <= received.readerIndex + 9 + Int(length) {
                        values[received.getInteger(at: offset, as: UInt16.self)!] = received.getInteger(at: offset + 2, as: UInt32.self)!
                        offset += 6
                    }
                    return values
                }
                return [:]
            }
            #expect(settings[3] == UInt32(WorkloadAPIServer.maxConcurrentStreams), "SETTINGS_MAX_CONCURRENT_STREAMS: \(settings)")
        }
    }

    @Test("the security header must be 'true', once; a malformed requested SPIFFE ID is an invalid argument")
    func headerAndIDs() async throws {
        try await withServer { _, socket in
            func code(_ metadata: Metadata, spiffeID: String = "") async throws -> RPCError.Code? {
                try await client(socket) { client in
                    var request = Workload_JWTSVIDRequest()
                    request.audience = ["orders"]
                    request.spiffeID = spiffeID
                    do {
                        _ = try await client.fetchJWTSVID(request, metadata: metadata)
                        return nil
                    } catch let error as RPCError {
                        return error.code
                    }
                }
            }
            var twice: Metadata = ["workload.spiffe.io": "true"]
            twice.addString("true", forKey: "workload.spiffe.io")
            let upper = try await code(["workload.spiffe.io": "TRUE"])
            let repeated = try await code(twice)
            let missing = try await code([:])
            let malformed = try await code(Self.header, spiffeID: "not a spiffe id")
            let other = try await code(Self.header, spiffeID: "spiffe://cluster.local/ns/other/sa/x")
            #expect(upper == .invalidArgument)
            #expect(repeated == .invalidArgument)
            #expect(missing == .invalidArgument)
            #expect(malformed == .invalidArgument)
            #expect(other == .permissionDenied)
        }
    }

    @Test("an expired X.509-SVID is never handed out: the caller is told it expired and why renewal fails")
    func expiredNotServed() async throws {
        try await withServer { h, socket in
            let current = try #require(h.agent.state.current)
            h.ca.failNext(1000)
            h.clock.advance(to: current.svid.notAfter.addingTimeInterval(1))
            let refusal: RPCError? = try await client(socket) { client in
                do {
                    try await client.fetchX509SVID(Workload_X509SVIDRequest(), metadata: Self.header) { response in
                        for try await _ in response.messages { return }
                    }
                    return nil
                } catch let error as RPCError {
                    return error
                }
            }
            #expect(refusal?.code == .unavailable)
            #expect(refusal?.message.contains("expired") == true, "\(String(describing: refusal))")
            // Status says so at once, whenever the next renewal attempt is due.
            let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
            let state = try await withGRPCClient(transport: transport) { client in
                try await Rampart_Agent_V1_AgentStatusService.Client(wrapping: client).getStatus(Rampart_Agent_V1_GetStatusRequest()).state
            }
            #expect(state == "expired")
        }
    }
}
