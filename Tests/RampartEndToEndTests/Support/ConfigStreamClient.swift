import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import RampartAPI
import Synchronization

/// One `MeshConfigService/StreamConfig` call to a real CA, driven step by step: messages go up
/// when the test sends them; snapshots are collected as they arrive, and waits are bounded.
final class ConfigStreamClient: Sendable {
    private struct Received {
        var snapshots: [Rampart_Config_V1_Snapshot] = []
        var ended = false
        var error: (any Error)?
    }

    private let outgoing: AsyncStream<Rampart_Config_V1_ProxyMessage>
    private let continuation: AsyncStream<Rampart_Config_V1_ProxyMessage>.Continuation
    private let received = Mutex(Received())

    init() {
        (outgoing, continuation) = AsyncStream.makeStream(of: Rampart_Config_V1_ProxyMessage.self)
    }

    /// Runs the call on `port` until the stream ends, presenting `chainPEM`/`keyPEM` when given.
    func run(port: Int, rootPEM: String, chainPEM: String?, keyPEM: String?) async {
        do {
            let root = Array(rootPEM.utf8)
            let security: HTTP2ClientTransport.Posix.TransportSecurity
            if let chainPEM, let keyPEM {
                security = .mTLS(
                    certificateChain: [.bytes(Array(chainPEM.utf8), format: .pem)], privateKey: .bytes(Array(keyPEM.utf8), format: .pem)
                ) { config in
                    config.trustRoots = .certificates([.bytes(root, format: .pem)])
                }
            } else {
                security = .tls { config in config.trustRoots = .certificates([.bytes(root, format: .pem)]) }
            }
            let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security)
            let outgoing = self.outgoing
            try await withGRPCClient(transport: transport) { client in
                let mesh = Rampart_Config_V1_MeshConfigService.Client(wrapping: client)
                try await mesh.streamConfig(
                    requestProducer: { writer in
                        for await message in outgoing { try await writer.write(message) }
                    },
                    onResponse: { response in
                        for try await snapshot in response.messages {
                            self.received.withLock { $0.snapshots.append(snapshot) }
                        }
                    }
                )
            }
            received.withLock { $0.ended = true }
        } catch {
            received.withLock {
                $0.ended = true
                $0.error = error
            }
        }
    }

    /// Sends a message up the stream.
    func send(_ message: Rampart_Config_V1_ProxyMessage) {
        continuation.yield(message)
    }

    /// Closes the proxy's side of the stream.
    func close() {
        continuation.finish()
    }

    /// Every snapshot received so far.
    var snapshots: [Rampart_Config_V1_Snapshot] { received.withLock { $0.snapshots } }

    /// The first snapshot after the first `after` received that satisfies `predicate`, waiting at
    /// most `timeout`; nil when none arrived in time.
    func snapshot(after: Int = 0, within timeout: Duration, where predicate: (Rampart_Config_V1_Snapshot) -> Bool = { _ in true }) async -> Rampart_Config_V1_Snapshot? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (snapshots, ended) = received.withLock { ($0.snapshots, $0.ended) }
            if let found = snapshots.dropFirst(after).first(where: predicate) { return found }
            if ended || ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The error the call ended with, waiting at most `timeout` for it to end.
    func end(within timeout: Duration) async -> (ended: Bool, error: (any Error)?) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let end = received.withLock({ $0.ended ? ($0.ended, $0.error) : nil }) { return end }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return (false, nil)
    }
}

extension Rampart_Config_V1_ProxyMessage {
    /// A registration message.
    static func registration(workload: String, namespace: String, services: [(String, UInt32)], inbound: String, labels: [String: String] = [:]) -> Self {
        var registration = Rampart_Config_V1_Registration()
        registration.workload = workload
        registration.namespace = namespace
        registration.labels = labels
        registration.services = services.map { name, port in
            var service = Rampart_Config_V1_ServicePort()
            service.name = name
            service.port = port
            return service
        }
        registration.inboundAddress = inbound
        registration.proxyVersion = "e2e-test"
        var message = Self()
        message.registration = registration
        return message
    }

    /// An ACK (accepted) or NACK of the snapshot with `nonce`.
    static func ack(_ nonce: String, accepted: Bool = true, detail: String = "") -> Self {
        var ack = Rampart_Config_V1_Ack()
        ack.nonce = nonce
        ack.accepted = accepted
        ack.errorDetail = detail
        var message = Self()
        message.ack = ack
        return message
    }
}
