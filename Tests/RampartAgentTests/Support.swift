import Crypto
import Foundation
import RampartAgent
import RampartAuthn
import RampartIdentity
import RampartPKI
import Synchronization
import Testing
import X509

/// A clock for virtual time: `sleep` suspends until the test advances past the deadline.
final class ManualClock: AgentClock {
    private struct Sleeper {
        let deadline: Date
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [UInt64: Sleeper] = [:]
        var nextID: UInt64 = 0
        var requested: [Date] = []
    }

    private let state: Mutex<State>

    init(_ start: Date) {
        state = Mutex(State(now: start))
    }

    func now() -> Date { state.withLock { $0.now } }

    /// Every deadline the agent has slept until, in order.
    var requestedDeadlines: [Date] { state.withLock { $0.requested } }

    func sleep(until deadline: Date) async throws {
        let id: UInt64 = state.withLock { state in
            state.requested.append(deadline)
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = state.withLock { state in
                    if deadline <= state.now || Task.isCancelled { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Moves time to `date` and wakes the sleepers that are due.
    func advance(to date: Date) {
        let due: [Sleeper] = state.withLock { state in
            state.now = max(state.now, date)
            let ready = state.sleepers.filter { $0.value.deadline <= state.now }
            for key in ready.keys { state.sleepers.removeValue(forKey: key) }
            return Array(ready.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (in real time, bounded) until someone sleeps towards a deadline, and returns it.
    func nextSleep(timeout: TimeInterval = 60) async throws -> Date {
        let limit = Date().addingTimeInterval(timeout)
        while Date() < limit {
            if let deadline = state.withLock({ $0.sleepers.values.map(\.deadline).min() }) { return deadline }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw AgentTestFailure("the agent did not go to sleep within \(timeout) s")
    }
}

struct AgentTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A real CA signing in process, standing in for the network: it uses the same issuer and
/// checks as `ca serve`, and can be told to fail or to change its bundle.
final class InProcessCA: IdentityProvider {
    struct Call: Sendable {
        let bearer: String?
        let presented: String?
        let publicKey: Certificate.PublicKey
        let ttl: Int64
    }

    let authority: CertificateAuthority
    let issuer: SVIDIssuer
    let clock: ManualClock
    let identity: SPIFFEID
    let jwtSigner: JWTSVIDSigner
    private let state = Mutex<(failures: Int, calls: [Call], extraRoots: [Certificate], revoked: Set<String>)>((0, [], [], []))

    init(clock: ManualClock, identity: String = "spiffe://cluster.local/ns/demo/sa/web") async throws {
        self.clock = clock
        authority = try CAMaterial.createRoot(trustDomain: try TrustDomain("cluster.local"), keyAlgorithm: .ecP256, now: clock.now().addingTimeInterval(-3600))
        issuer = try SVIDIssuer(authority: authority)
        self.identity = try SPIFFEID(parsing: identity)
        jwtSigner = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
    }

    /// Revokes a certificate: renewals presenting it are refused, as the CA refuses them.
    func revoke(serial: String) { state.withLock { _ = $0.revoked.insert(serial) } }
    /// Makes the next `count` calls fail as an unreachable CA would.
    func failNext(_ count: Int) { state.withLock { $0.failures = count } }
    /// Adds a root to the published bundle (a root rotation in progress).
    func addRoot(_ root: Certificate) { state.withLock { $0.extraRoots.append(root) } }
    var calls: [Call] { state.withLock { $0.calls } }

    func issue(csrPEM: String, ttlSeconds: Int64, credential: CallerCredential, trust: [Certificate]) async throws -> IssuanceResult {
        let facts = try CSRInspection.inspect(pem: csrPEM)
        var bearer: String?
        var presented: String?
        switch credential {
        case .bearer(let token): bearer = token
        case .certificate(let svid): presented = svid.serialHex
        }
        let (fail, revoked): (Bool, Bool) = state.withLock { state in
            state.calls.append(Call(bearer: bearer, presented: presented, publicKey: facts.publicKey, ttl: ttlSeconds))
            if let presented, state.revoked.contains(presented) { return (false, true) }
            if state.failures > 0 {
                state.failures -= 1
                return (true, false)
            }
            return (false, false)
        }
        if revoked {
            throw AgentError(.credentialRefused, "the CA at 127.0.0.1:1 refused (permissionDenied): client certificate \(presented ?? "") was revoked")
        }
        if fail { throw AgentError(.caFailure, "the CA at 127.0.0.1:1 is unavailable (test outage)") }
        let issued = try await issuer.issue(publicKey: facts.publicKey, spiffeID: identity, ttl: TimeInterval(ttlSeconds), now: clock.now())
        return IssuanceResult(chainPEM: issued.chainPEM, bundle: try published())
    }

    func trustBundle(trust: [Certificate], svid: X509SVID?) async throws -> PublishedBundle {
        try published()
    }

    func mintJWTSVID(audience: [String], ttlSeconds: Int64, svid: X509SVID, trust: [Certificate]) async throws -> (token: String, expiresAt: Date) {
        try await jwtSigner.sign(subject: svid.spiffeID, audience: audience, ttl: ttlSeconds == 0 ? 300 : TimeInterval(ttlSeconds), now: clock.now())
    }

    func published() throws -> PublishedBundle {
        let roots = authority.roots + state.withLock { $0.extraRoots }
        return PublishedBundle(
            trustDomain: "cluster.local",
            rootsPEM: try roots.map { try $0.serializeAsPEM().pemString },
            jwtAuthorities: JWTBundle(keys: [jwtSigner.bundleKey]).json()
        )
    }
}

/// A fresh temporary directory.
struct Scratch {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-agent-tests-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// File permission bits, following no symlinks.
func mode(of path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? NSNumber)?.intValue ?? -1
}
