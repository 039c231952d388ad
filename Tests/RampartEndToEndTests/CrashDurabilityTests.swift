import Foundation
import GRPCCore
import RampartControlPlane
import RampartPKI
import RampartStore
import Synchronization
import Testing
import X509

/// A certificate a client holds must be in the store, whatever happens to the CA process.
@Suite("CA durability under kill -9", .serialized)
struct CrashDurabilityTests {
    @Test("after kill -9 during issuance, every certificate any client received is in the store and SQLite is intact")
    func killNineDuringIssuance() async throws {
        let ca = try CAProcess(label: "crash")
        try ca.start()
        let clients = 8
        let shared = SharedProgress()

        // Each client bootstraps once, then renews over mTLS in a loop bounded in count and time.
        var identities: [(chain: String, key: String, csr: String)] = []
        for index in 0..<clients {
            let id = "spiffe://cluster.local/ns/crash/sa/w\(index)"
            let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", id).trimmedOutput
            let (csrPath, keyPath) = try OpenSSL.csr(in: ca.directory, name: "w\(index)")
            let csr = try String(contentsOfFile: csrPath, encoding: .utf8)
            let chain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, bearer: token) }
            let first = try Certificate(pemEncoded: chain[0]).serialNumber.hexString
            shared.received.withLock { $0.append(first) }
            identities.append((chain.joined(separator: "\n"), try String(contentsOfFile: keyPath, encoding: .utf8), csr))
        }

        let port = ca.grpcPort
        let root = ca.rootPEM
        try await withThrowingTaskGroup(of: Void.self) { group in
            for identity in identities {
                let identity = (chain: identity.chain, key: identity.key, csr: identity.csr)
                group.addTask {
                    let client = CAClient(host: "127.0.0.1", port: port, rootPEM: root, clientChainPEM: identity.chain, clientKeyPEM: identity.key)
                    let deadline = ContinuousClock.now + .seconds(20)
                    try? await client.withConnection { connection in
                        for _ in 0..<5_000 {
                            if shared.stop.load(ordering: .relaxed) || ContinuousClock.now > deadline { return }
                            guard let chain = try? await connection.createCertificate(csrPEM: identity.csr, validitySeconds: 600) else { return }
                            if let leaf = try? Certificate(pemEncoded: chain[0]) {
                                shared.received.withLock { $0.append(leaf.serialNumber.hexString) }
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(1500))
            ca.kill9()
            try await Task.sleep(for: .milliseconds(300))
            shared.stop.store(true, ordering: .relaxed)
            try await group.waitForAll()
        }

        let serials = shared.received.withLock { $0 }
        #expect(serials.count > clients, "clients should have renewed before the kill (got \(serials.count))")

        // The CA restarts on the same state, and the store holds every certificate handed out.
        try ca.start()
        let store = try SQLiteStore(path: "\(ca.state)/rampart.sqlite")
        #expect(try await store.integrityCheck() == ["ok"])
        var missing: [String] = []
        for serial in serials {
            let hex = serial.replacingOccurrences(of: ":", with: "")
            if try await store.certificate(serial: hex) == nil { missing.append(hex) }
        }
        #expect(missing.isEmpty, "\(missing.count) of \(serials.count) received certificates are missing from the store")
        #expect(try await store.verifyAuditChain() == .intact(events: try await store.events().count))
        ca.stop()
    }
}

/// What the crash test's clients share.
final class SharedProgress: Sendable {
    let received = Mutex<[String]>([])
    let stop = Atomic<Bool>(false)
}
