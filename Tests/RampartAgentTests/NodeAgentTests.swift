import Foundation
import Logging
import RampartAgent
import RampartIdentity
import RampartPKI
import Testing
import SwiftASN1
import X509

@Suite("Node agent rotation on virtual time")
struct NodeAgentTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    struct Harness {
        let clock: ManualClock
        let ca: InProcessCA
        let agent: NodeAgent
        let scratch: Scratch
        let task: Task<Void, any Error>

        func stop() async {
            task.cancel()
            _ = try? await task.value
            scratch.remove()
        }

        var files: IdentityFiles { IdentityFiles(directory: scratch.file("out")) }

        func waitForSerial(different previous: String?, timeout: TimeInterval = 60) async throws -> String {
            let limit = Date().addingTimeInterval(timeout)
            while Date() < limit {
                if let serial = agent.state.current?.svid.serialHex, serial != previous { return serial }
                try await Task.sleep(for: .milliseconds(2))
            }
            throw AgentTestFailure("no new certificate within \(timeout) s; status: \(agent.state.status)")
        }
    }

    // Real-time limits are generous bounds, not measurements: the agent's task shares the test
    // runner's two cooperative threads with CPU-heavy tests of other suites.
    func harness(
        ttl: TimeInterval = 100, token: String = "rbt_test-token", failFirst: Int = 0, prepare: (Scratch) throws -> Void = { _ in }
    ) async throws -> Harness {
        let clock = ManualClock(start)
        let ca = try await InProcessCA(clock: clock)
        ca.failNext(failFirst)
        let scratch = try Scratch()
        try token.write(toFile: scratch.file("token"), atomically: true, encoding: .utf8)
        try prepare(scratch)
        let agent = NodeAgent(
            configuration: AgentConfiguration(
                provider: ca, caRoots: ca.authority.roots, credential: .tokenFile(scratch.file("token")),
                output: IdentityFiles(directory: scratch.file("out")), ttl: ttl, schedule: try RenewalSchedule()
            ),
            clock: clock, random: { 0.5 }, logger: Logger(label: "test.agent")
        )
        let task = Task { try await agent.rotate() }
        return Harness(clock: clock, ca: ca, agent: agent, scratch: scratch, task: task)
    }

    @Test("bootstrap uses the token once; every renewal after uses mTLS, a new key, at half the lifetime")
    func bootstrapThenRenew() async throws {
        let h = try await harness(ttl: 100)
        defer { Task { await h.stop() } }
        let first = try await h.waitForSerial(different: nil)
        #expect(h.ca.calls.count == 1)
        #expect(h.ca.calls[0].bearer == "rbt_test-token")
        #expect(h.ca.calls[0].ttl == 100)

        var previous = first
        for round in 1...3 {
            let due = try await h.clock.nextSleep()
            let current = try #require(h.agent.state.current?.svid)
            // Half of the lifetime counted from receipt (the CA backdates notBefore by 60 s).
            #expect(due == current.lifetimeStart.addingTimeInterval(50), "round \(round)")
            h.clock.advance(to: due)
            previous = try await h.waitForSerial(different: previous)
        }
        let calls = h.ca.calls
        #expect(calls.count == 4)
        #expect(calls.dropFirst().allSatisfy { $0.bearer == nil && $0.presented != nil })
        #expect(Set(calls.map { $0.publicKey.sha256Hex }).count == 4, "a new key for every certificate")
        #expect(h.agent.state.status.renewals == 3)
        #expect(h.agent.state.status.phase == .serving)
    }

    @Test("output files that cannot be written keep the issued identity served and the token unspent twice: the next attempt renews over mTLS and writes")
    func unwritableOutput() async throws {
        let h = try await harness(ttl: 100) { scratch in
            // key.pem as a directory: the rename onto it fails after the CA has issued.
            try FileManager.default.createDirectory(atPath: scratch.file("out/key.pem"), withIntermediateDirectories: true)
        }
        defer { Task { await h.stop() } }
        let first = try await h.waitForSerial(different: nil)
        let retry = try await h.clock.nextSleep()
        let status = h.agent.state.status
        #expect(status.phase == .backingOff)
        #expect(status.lastError?.contains("served on the Workload API") == true, "\(status.lastError ?? "")")
        #expect(h.ca.calls.count == 1 && h.ca.calls[0].bearer != nil)
        try FileManager.default.removeItem(atPath: h.scratch.file("out/key.pem"))
        h.clock.advance(to: retry)
        let second = try await h.waitForSerial(different: first)
        #expect(h.ca.calls.count == 2)
        #expect(h.ca.calls[1].bearer == nil && h.ca.calls[1].presented != nil, "the retry renews over mTLS, without the spent token")
        var written: String?
        for _ in 0..<500 {
            if case .success(let (svid, _)) = await h.files.load(now: h.clock.now()) { written = svid.serialHex; break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(written == second)
    }

    @Test("a credential file holding two lines is refused in words before anything is sent")
    func twoLineCredential() async throws {
        let h = try await harness(ttl: 100, token: "rbt_first\nrbt_second\n")
        defer { Task { await h.stop() } }
        _ = try await h.clock.nextSleep()
        #expect(h.agent.state.status.lastError?.contains("holds more than one token") == true, "\(h.agent.state.status)")
        #expect(h.ca.calls.isEmpty)
    }

    @Test("a damaged set of files in the output directory is described as those files, not as the CA's answer")
    func damagedFilesDescribed() async throws {
        let h = try await harness(ttl: 100)
        defer { Task { await h.stop() } }
        _ = try await h.waitForSerial(different: nil)
        for _ in 0..<500 {
            if case .success = await h.files.load(now: h.clock.now()) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let out = h.scratch.file("out")
        func reason() async -> String {
            if case .failure(let error) = await IdentityFiles(directory: out).load(now: h.clock.now()) { return error.reason }
            return "usable"
        }
        let key = try String(contentsOfFile: "\(out)/key.pem", encoding: .utf8)
        try "not a key".write(toFile: "\(out)/key.pem", atomically: true, encoding: .utf8)
        let junkKey = await reason()
        #expect(junkKey.contains("key.pem") && !junkKey.contains("ASN1Error") && !junkKey.contains(".swift"), "\(junkKey)")
        try WorkloadKey.generate(.ecP256).pkcs8PEM.write(toFile: "\(out)/key.pem", atomically: true, encoding: .utf8)
        let otherKey = await reason()
        // Read without the scratch directory's name, whose random part may hold the letters "CA".
        let otherKeyWords = otherKey.replacingOccurrences(of: out, with: "OUT")
        #expect(otherKey.contains("cert-chain.pem") && otherKey.contains("does not match the key in") && !otherKeyWords.contains("CA"), "\(otherKey)")
        try key.write(toFile: "\(out)/key.pem", atomically: true, encoding: .utf8)
        try "junk".write(toFile: "\(out)/cert-chain.pem", atomically: true, encoding: .utf8)
        let junkChain = await reason()
        #expect(junkChain.contains("cert-chain.pem") && !junkChain.contains("the CA"), "\(junkChain)")
    }

    @Test("while the CA is down the agent keeps its certificate and backs off 1 s, 2 s, 4 s …, then recovers")
    func backoffDuringOutage() async throws {
        let h = try await harness(ttl: 1000)
        defer { Task { await h.stop() } }
        let first = try await h.waitForSerial(different: nil)
        let due = try await h.clock.nextSleep()
        h.ca.failNext(4)
        h.clock.advance(to: due)

        var failedAt = due
        for expected in [1.0, 2.0, 4.0, 8.0] {
            let retry = try await h.clock.nextSleep()
            #expect(abs(retry.timeIntervalSince(failedAt) - expected) < 0.001)
            let status = h.agent.state.status
            #expect(status.phase == .backingOff)
            #expect(status.lastError?.contains("unavailable") == true)
            #expect(h.agent.state.current?.svid.serialHex == first, "the valid certificate stays in use")
            failedAt = retry
            h.clock.advance(to: retry)
        }
        let renewed = try await h.waitForSerial(different: first)
        #expect(renewed != first)
        let status = h.agent.state.status
        #expect(status.failures == 4)
        #expect(status.lastError == nil)
        // Back-off starts again from 1 s after a success.
        let next = try await h.clock.nextSleep()
        h.ca.failNext(1)
        h.clock.advance(to: next)
        let retry = try await h.clock.nextSleep()
        #expect(abs(retry.timeIntervalSince(next) - 1) < 0.001)
    }

    @Test("a failed bootstrap is retried with back-off and reports no identity yet")
    func bootstrapRetries() async throws {
        let h = try await harness(failFirst: 2)
        defer { Task { await h.stop() } }
        let retry = try await h.clock.nextSleep()
        #expect(abs(retry.timeIntervalSince(start) - 1) < 0.001)
        #expect(h.agent.state.status.phase == .bootstrapping)
        #expect(h.agent.state.current == nil)
        h.clock.advance(to: retry)
        let second = try await h.clock.nextSleep()
        #expect(abs(second.timeIntervalSince(retry) - 2) < 0.001)
        h.clock.advance(to: second)
        _ = try await h.waitForSerial(different: nil)
        #expect(h.ca.calls.allSatisfy { $0.bearer == "rbt_test-token" })
    }

    @Test("the files hold a matching set: key 0600, chain leaf first, roots; no temporary files left")
    func filesMatch() async throws {
        let h = try await harness()
        defer { Task { await h.stop() } }
        _ = try await h.waitForSerial(different: nil)
        let out = h.files
        #expect(mode(of: out.path("key.pem")) == 0o600)
        #expect(mode(of: out.path("cert-chain.pem")) == 0o644)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out.directory).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
        let key = try WorkloadKey(pkcs8PEM: String(contentsOfFile: out.path("key.pem"), encoding: .utf8))
        let chain = try PEMDocument.parseMultiple(pemString: String(contentsOfFile: out.path("cert-chain.pem"), encoding: .utf8)).map { try Certificate(pemDocument: $0) }
        #expect(chain.first?.publicKey == key.privateKey.publicKey)
        #expect(chain.first?.serialNumber.hexString == h.agent.state.current?.svid.serialHex)
        let roots = try String(contentsOfFile: out.path("root-cert.pem"), encoding: .utf8)
        #expect(roots == (try h.ca.authority.rootsPEM()))
    }

    @Test("a new root in the CA's bundle is picked up at renewal and root-cert.pem is rewritten")
    func bundleRotation() async throws {
        let h = try await harness()
        defer { Task { await h.stop() } }
        let first = try await h.waitForSerial(different: nil)
        let newRoot = try CAMaterial.createRoot(trustDomain: try TrustDomain("cluster.local"), keyAlgorithm: .ecP256, now: start).certificate
        h.ca.addRoot(newRoot)
        h.clock.advance(to: try await h.clock.nextSleep())
        _ = try await h.waitForSerial(different: first)
        let text = try String(contentsOfFile: h.files.path("root-cert.pem"), encoding: .utf8)
        let roots = try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
        #expect(roots.count == 2)
        #expect(roots.contains(newRoot))
        #expect(h.agent.state.current?.bundle.roots.count == 2)
    }

    @Test("after expiry the spent token is not sent again; the error says to put a new token in the file")
    func spentTokenAfterExpiry() async throws {
        let h = try await harness(ttl: 20)
        defer { Task { await h.stop() } }
        let first = try await h.waitForSerial(different: nil)
        let due = try await h.clock.nextSleep()
        h.ca.failNext(1000)
        h.clock.advance(to: due)
        // Let back-off run until the certificate has expired.
        let expiry = try #require(h.agent.state.current?.svid.notAfter)
        while h.clock.now() <= expiry.addingTimeInterval(2) {
            h.clock.advance(to: try await h.clock.nextSleep())
            try await Task.sleep(for: .milliseconds(5))
        }
        _ = try await h.clock.nextSleep()
        let status = h.agent.state.status
        #expect(status.phase == .expired)
        #expect(status.lastError?.contains("new token") == true, "\(status.lastError ?? "")")
        #expect(h.agent.state.current?.svid.serialHex == first)
        // An operator drops a fresh token in place, and the CA is back.
        try "rbt_fresh-token".write(toFile: h.scratch.file("token"), atomically: true, encoding: .utf8)
        h.ca.failNext(0)
        h.clock.advance(to: try await h.clock.nextSleep())
        _ = try await h.waitForSerial(different: first)
        #expect(h.ca.calls.last?.bearer == "rbt_fresh-token")
    }

    @Test("a revoked certificate is replaced at its next renewal by bootstrapping with a fresh token from the file; without one the error says to put one there")
    func revokedCertificateRebootstraps() async throws {
        let h = try await harness(ttl: 100)
        defer { Task { await h.stop() } }
        let first = try await h.waitForSerial(different: nil)
        h.ca.revoke(serial: first)
        // The token in the file was spent at bootstrap: nothing to bootstrap with yet.
        h.clock.advance(to: try await h.clock.nextSleep())
        _ = try await h.clock.nextSleep()
        let status = h.agent.state.status
        #expect(status.lastError?.contains("was revoked") == true && status.lastError?.contains("put a new token") == true, "\(status.lastError ?? "")")
        #expect(h.agent.state.current?.svid.serialHex == first)
        // A fresh token: the next attempt bootstraps with it at once, without waiting for expiry.
        try "rbt_after-revocation".write(toFile: h.scratch.file("token"), atomically: true, encoding: .utf8)
        h.clock.advance(to: try await h.clock.nextSleep())
        let second = try await h.waitForSerial(different: first)
        let calls = h.ca.calls
        #expect(calls.last?.bearer == "rbt_after-revocation" && calls.last?.presented == nil, "\(calls.map { ($0.bearer, $0.presented) })")
        #expect(calls.dropLast().last?.presented == first, "the renewal was tried first")
        #expect(second != first)
        #expect(h.agent.state.current?.svid.notAfter ?? .distantPast > h.clock.now())
    }

    @Test("a restarted agent resumes the valid identity on disk without its token")
    func resumeFromDisk() async throws {
        let h = try await harness(ttl: 1000)
        let first = try await h.waitForSerial(different: nil)
        h.task.cancel()
        _ = try? await h.task.value
        defer { h.scratch.remove() }
        try "".write(toFile: h.scratch.file("token"), atomically: true, encoding: .utf8)
        let again = NodeAgent(
            configuration: AgentConfiguration(
                provider: h.ca, caRoots: h.ca.authority.roots, credential: .tokenFile(h.scratch.file("token")),
                output: h.files, ttl: 1000, schedule: try RenewalSchedule()
            ),
            clock: h.clock, random: { 0.5 }, logger: Logger(label: "test.agent")
        )
        let task = Task { try await again.rotate() }
        defer { task.cancel() }
        let due = try await h.clock.nextSleep()
        #expect(again.state.current?.svid.serialHex == first)
        #expect(due > h.clock.now())
        h.clock.advance(to: due)
        let limit = Date().addingTimeInterval(60)
        while again.state.current?.svid.serialHex == first, Date() < limit { try await Task.sleep(for: .milliseconds(2)) }
        #expect(again.state.current?.svid.serialHex != first)
        #expect(h.ca.calls.last?.presented == first, "renewed over mTLS with the resumed certificate")
    }

    @Test("JWT-SVIDs come from the CA for the agent's identity, cached until half their lifetime, and validate against the bundle")
    func jwtSVIDs() async throws {
        let h = try await harness(ttl: 100_000)
        defer { Task { await h.stop() } }
        _ = try await h.waitForSerial(different: nil)
        let (token, id) = try await h.agent.jwtSVID(audience: ["reviews"])
        #expect(id == h.ca.identity)
        let (again, _) = try await h.agent.jwtSVID(audience: ["reviews", "reviews"])
        #expect(again == token, "served from the cache")
        h.clock.advance(to: h.clock.now().addingTimeInterval(151))
        let (fresh, _) = try await h.agent.jwtSVID(audience: ["reviews"])
        #expect(fresh != token, "refreshed after half of its 5 minutes")
        let validated = try await h.agent.validateJWTSVID(fresh, audience: "reviews")
        #expect(validated.spiffeID == h.ca.identity)
        await #expect(throws: (any Error).self) { try await h.agent.validateJWTSVID(fresh, audience: "billing") }
        await #expect(throws: AgentError.self) { try await h.agent.jwtSVID(audience: [""]) }
    }
}
