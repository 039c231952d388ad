import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import RampartAPI
import RampartControlPlane
import RampartPKI
import Synchronization
import Testing
import X509

/// A real CA process and a real agent process, with certificates of tens of seconds.
@Suite("Node agent end to end", .serialized)
struct AgentEndToEndTests {
    /// Collects every X.509-SVID message a Workload API stream delivers.
    final class StreamRecorder: Sendable {
        let serials = Mutex<[String]>([])
        let refusal = Mutex<RPCError?>(nil)
    }

    static func workloadClient<Result: Sendable>(socket: String, _ body: (Workload_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>) async throws -> Result) async throws -> Result {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { client in
            try await body(Workload_SpiffeWorkloadAPI.Client(wrapping: client))
        }
    }

    static let workloadHeader: Metadata = ["workload.spiffe.io": "true"]

    @Test("bootstrap in well under 10 s, two rotations pushed to the Workload API, a CA outage survived, clean shutdown")
    func lifecycle() async throws {
        let ca = try CAProcess(label: "agent-e2e")
        try ca.start()
        let dir = ca.directory
        let tokenFile = "\(dir)/token"
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/cart").trimmedOutput
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)

        let agent = AgentProcess(directory: dir)
        let started = Date()
        try agent.start(ca: ca, credentialFile: tokenFile, ttl: "20s")
        try await eventually(timeout: 30, "the first certificate on disk\n\(agent.log)") { agent.onDisk() != nil }
        // Measured by the agent's own write of the chain, not by when this task got to look.
        let written = try FileManager.default.attributesOfItem(atPath: "\(agent.out)/cert-chain.pem")[.modificationDate] as? Date
        let bootstrapSeconds = try #require(written).timeIntervalSince(started)
        #expect(bootstrapSeconds < 10)
        let first = try #require(agent.onDisk())
        #expect(first.keyMatches)
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(agent.out)/key.pem")[.posixPermissions] as? NSNumber
        #expect(keyMode?.intValue == 0o600)
        let socketMode = try FileManager.default.attributesOfItem(atPath: agent.socket)[.posixPermissions] as? NSNumber
        #expect(socketMode?.intValue == 0o600)
        let verify = try run("openssl", ["verify", "-x509_strict", "-CAfile", "\(agent.out)/root-cert.pem", "\(agent.out)/cert-chain.pem"])
        #expect(verify.succeeded, "\(verify.stdout)\(verify.stderr)")

        // A Workload API stream stays open and receives every rotation.
        let recorder = StreamRecorder()
        let socket = agent.socket
        let watcher = Task {
            try await Self.workloadClient(socket: socket) { client in
                try await client.fetchX509SVID(Workload_X509SVIDRequest(), metadata: Self.workloadHeader) { response in
                    for try await message in response.messages {
                        guard let svid = message.svids.first, let leaf = try? Certificate(derEncoded: Array(svid.x509Svid)) else { continue }
                        recorder.serials.withLock { $0.append(leaf.serialNumber.hexString) }
                    }
                }
            }
        }
        defer { watcher.cancel() }
        // The stream is open once it has delivered the current SVID; every rotation after that is pushed.
        try await eventually(timeout: 10, "the stream's first SVID\n\(agent.log)") { recorder.serials.withLock { $0.contains(first.serial) } }

        // Two rotations, each a new matching set, each before the old certificate expires.
        var seen = [first.serial]
        for _ in 1...2 {
            let previous = try #require(agent.onDisk())
            try await eventually(timeout: 25, "a rotation\n\(agent.log)") { (agent.onDisk()?.serial).map { !seen.contains($0) } ?? false }
            let now = try #require(agent.onDisk())
            #expect(now.keyMatches)
            #expect(Date() < previous.notAfter, "renewed before the old certificate expired")
            seen.append(now.serial)
        }
        try await eventually(timeout: 10, "the stream to deliver the rotations") { recorder.serials.withLock { Set($0).isSuperset(of: seen.dropFirst()) } }

        // The CA goes away; the agent keeps its certificate and retries.
        let held = try #require(agent.onDisk())
        let grpcPort = ca.grpcPort
        ca.stop()
        try await eventually(timeout: 25, "a failed renewal while the CA is down\n\(agent.log)") {
            ((try agent.status()["failures"] as? Int) ?? 0) >= 1
        }
        let during = try agent.status()
        #expect(during["state"] as? String == "backing_off")
        #expect((during["last_error"] as? String)?.contains("127.0.0.1:\(grpcPort)") == true, "\(during)")
        #expect(during["serial"] as? String == held.serial)
        #expect(agent.onDisk()?.serial == held.serial)
        #expect(Date() < held.notAfter)

        try ca.start(grpcPort: grpcPort)
        try await eventually(timeout: 20, "a renewal once the CA is back\n\(agent.log)") { agent.onDisk().map { $0.serial != held.serial } ?? false }
        let after = try #require(agent.onDisk())
        #expect(after.keyMatches)
        #expect(Date() < held.notAfter, "renewed before the held certificate expired")
        seen.append(after.serial)
        let recovered = try agent.status()
        #expect(recovered["state"] as? String == "serving")
        #expect(recovered["last_error"] is NSNull)
        #expect(recovered["spiffe_id"] as? String == "spiffe://cluster.local/ns/shop/sa/cart")
        #expect(recovered["next_renewal"] is String)

        // Every certificate the agent held is in the CA's store, issued over mTLS after the first.
        let listed = try rampart("cert", "list", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/cart", "--json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let stored = Set(rows.compactMap { $0["serial"] as? String })
        #expect(stored.isSuperset(of: seen), "store: \(stored), agent: \(seen)")

        // SIGTERM: a clean exit that removes the socket.
        watcher.cancel()
        let status = agent.terminate()
        #expect(status == 0, "\(agent.log)")
        #expect(!FileManager.default.fileExists(atPath: agent.socket))
    }

    @Test("Workload API calls without the workload.spiffe.io header are refused; JWT-SVIDs need an X.509-SVID at the CA")
    func refusals() async throws {
        let ca = try CAProcess(label: "agent-refusals")
        try ca.start()
        let dir = ca.directory
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/web").trimmedOutput
        try token.write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
        let agent = AgentProcess(directory: dir)
        try agent.start(ca: ca, credentialFile: "\(dir)/token", ttl: "1h")
        defer { _ = agent.terminate() }
        try await eventually(timeout: 10, "the first certificate\n\(agent.log)") { agent.onDisk() != nil && FileManager.default.fileExists(atPath: agent.socket) }

        let refusal: RPCError? = try await Self.workloadClient(socket: agent.socket) { client in
            do {
                _ = try await client.fetchJWTSVID({ var r = Workload_JWTSVIDRequest(); r.audience = ["a"]; return r }())
                return nil
            } catch let error as RPCError {
                return error
            }
        }
        #expect(refusal?.code == .invalidArgument)
        #expect(refusal?.message.contains("workload.spiffe.io") == true)

        let emptyAudience: RPCError? = try await Self.workloadClient(socket: agent.socket) { client in
            do {
                _ = try await client.fetchJWTSVID(Workload_JWTSVIDRequest(), metadata: Self.workloadHeader)
                return nil
            } catch let error as RPCError {
                return error
            }
        }
        #expect(emptyAudience?.code == .invalidArgument)

        // With the header: a JWT-SVID for the agent's identity, which validates for its audience only.
        let (token1, validated): (String, String) = try await Self.workloadClient(socket: agent.socket) { client in
            var request = Workload_JWTSVIDRequest()
            request.audience = ["orders"]
            let svid = try await client.fetchJWTSVID(request, metadata: Self.workloadHeader).svids[0]
            var check = Workload_ValidateJWTSVIDRequest()
            check.audience = "orders"
            check.svid = svid.svid
            let result = try await client.validateJWTSVID(check, metadata: Self.workloadHeader)
            #expect(result.claims.fields["sub"]?.stringValue == "spiffe://cluster.local/ns/shop/sa/web")
            return (svid.svid, result.spiffeID)
        }
        #expect(validated == "spiffe://cluster.local/ns/shop/sa/web")
        #expect(token1.split(separator: ".").count == 3)

        // At the CA, a bearer token is no way to get a JWT-SVID: only an X.509-SVID over mTLS is.
        let caRefusal: RPCError? = try await ca.client().withConnection { connection in
            do {
                _ = try await connection.mintJWTSVID(audience: ["orders"], bearer: token)
                return nil
            } catch let error as RPCError {
                return error
            }
        }
        #expect(caRefusal?.code == .unauthenticated)
        #expect(caRefusal?.message.contains("X.509-SVID") == true)
        let bundle = try await ca.client().withConnection { try await $0.trustBundle() }
        #expect(bundle.trustDomain == "cluster.local")
        #expect(bundle.x509Authorities.count == 1)
        let jwks = try #require(try JSONSerialization.jsonObject(with: bundle.jwtAuthorities) as? [String: Any])
        #expect((jwks["keys"] as? [[String: Any]])?.first?["use"] as? String == "jwt-svid")
    }

    @Test("an agent bootstraps with a JWT from a trusted issuer (signed by joserfc) instead of a token")
    func jwtBootstrap() throws {
        let ca = try CAProcess(label: "agent-jwt")
        let dir = ca.directory
        let tokens = try ca.startTrustingJoserfcTokens()
        try tokens[0].write(toFile: "\(dir)/sa.jwt", atomically: true, encoding: .utf8)
        let agent = AgentProcess(directory: dir)
        try agent.start(ca: ca, credentialFlag: "--jwt-file", credentialFile: "\(dir)/sa.jwt", ttl: "1h")
        defer { _ = agent.terminate() }
        try eventually(timeout: 10, "the first certificate\n\(agent.log)") { agent.onDisk() != nil && FileManager.default.fileExists(atPath: agent.socket) }
        #expect(agent.onDisk()?.keyMatches == true)
        #expect(try agent.status()["spiffe_id"] as? String == "spiffe://cluster.local/ns/shop/sa/cart")
    }

    @Test("the agent refuses bad settings with a message naming the option")
    func badSettings() throws {
        let dir = try Paths.temporaryDirectory("agent-flags")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "x".write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
        let both = try rampart("agent", "--ca-root", "\(dir)/none.pem", "--token-file", "\(dir)/token", "--jwt-file", "\(dir)/token", "--out", "\(dir)/out")
        #expect(!both.succeeded)
        #expect(both.stderr.contains("exactly one bootstrap credential"))
        let noRoot = try rampart("agent", "--ca-root", "\(dir)/none.pem", "--token-file", "\(dir)/token", "--out", "\(dir)/out")
        #expect(!noRoot.succeeded)
        #expect(noRoot.stderr.contains("--ca-root"))
        let grace = try rampart("agent", "--ca-root", "\(dir)/none.pem", "--token-file", "\(dir)/token", "--out", "\(dir)/out", "--grace-ratio", "1.5")
        #expect(!grace.succeeded)
        #expect(grace.stderr.contains("--grace-ratio"))
        let status = try rampart("agent", "status", "--socket", "\(dir)/missing.sock")
        #expect(!status.succeeded)
        #expect(status.stderr.contains("no agent socket"))
    }
}

/// The `spiffe` package from PyPI reads the identity from the agent's socket.
@Suite("A standard SPIFFE client reads the agent's socket", .serialized)
struct SPIFFEClientInteropTests {
    @Test("py-spiffe fetches the X.509-SVID, both bundles and a JWT-SVID, and validates it")
    func pythonSPIFFE() throws {
        let ca = try CAProcess(label: "py-spiffe")
        try ca.start()
        let dir = ca.directory
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/payments").trimmedOutput
        try token.write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
        let agent = AgentProcess(directory: dir)
        try agent.start(ca: ca, credentialFile: "\(dir)/token", ttl: "1h", extra: ["--key-type", "rsa-2048"])
        defer { _ = agent.terminate() }
        try eventually(timeout: 15, "the first certificate\n\(agent.log)") { agent.onDisk() != nil && FileManager.default.fileExists(atPath: agent.socket) }

        let script = Paths.interop.appendingPathComponent("spiffe_workload_client.py").path
        let result = try run("python3", [script, agent.socket, "payments-api"], timeout: 90)
        #expect(result.succeeded, "\(result.stdout)\n\(result.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let disk = try #require(agent.onDisk())
        #expect(out["x509_spiffe_id"] as? String == "spiffe://cluster.local/ns/shop/sa/payments")
        #expect(out["x509_serial"] as? String == disk.serial.drop(while: { $0 == "0" }).lowercased())
        #expect(out["x509_key_matches"] as? Bool == true)
        #expect(out["x509_chain_length"] as? Int == 1)
        #expect(out["x509_bundle_trust_domain"] as? String == "cluster.local")
        #expect(out["x509_bundle_authorities"] as? Int == 1)
        #expect(out["jwt_bundle_keys"] as? Int == 1)
        #expect(out["jwt_spiffe_id"] as? String == "spiffe://cluster.local/ns/shop/sa/payments")
        #expect(out["jwt_audience"] as? [String] == ["payments-api"])
        #expect(out["jwt_locally_valid_for"] as? String == "spiffe://cluster.local/ns/shop/sa/payments")
        #expect(out["jwt_agent_valid_for"] as? String == "spiffe://cluster.local/ns/shop/sa/payments")
        #expect(out["wrong_audience_refused"] as? Bool == true)
        #expect(out["headerless"] as? String == "INVALID_ARGUMENT")
    }
}

@Suite("Renewal herd benchmark command")
struct RenewBenchCommandTests {
    @Test("a small herd renews with no failures and reports its figures as JSON")
    func smallHerd() throws {
        let result = try run(Paths.rampart, ["bench", "renew", "--agents", "20", "--window", "2", "--json", "--no-openssl"], timeout: 120)
        #expect(result.succeeded, "\(result.stdout)\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["failures"] as? Int == 0)
        #expect(object["renewed"] as? Int == 20)
        #expect(object["renewed_in_store"] as? Int == 20)
        #expect((object["p99_ms"] as? Double ?? 0) > 0)
        #expect((object["ca_peak_rss_mib"] as? Double ?? 0) > 0)
    }
}

@Suite("CA benchmark command")
struct CABenchCommandTests {
    @Test("a short run issues without failures and reports rate, latency, CPU per issuance and the baseline as JSON")
    func shortRun() throws {
        let result = try run(
            Paths.rampart, ["bench", "ca", "--duration", "1", "--concurrency", "4", "--baseline", "--json", "--no-openssl"], timeout: 120)
        #expect(result.succeeded, "\(result.stdout)\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["failed"] as? Int == 0)
        #expect((object["issued"] as? Int ?? 0) > 0)
        #expect((object["per_second"] as? Double ?? 0) > 0)
        #expect((object["p50_ms"] as? Double ?? 0) > 0)
        #expect((object["p99_ms"] as? Double ?? 0) >= (object["p50_ms"] as? Double ?? 0))
        #expect((object["ca_cpu_ms_per_issuance"] as? Double ?? 0) > 0)
        #expect((object["client_cpu_ms_per_issuance"] as? Double ?? 0) > 0)
        #expect(object["baseline_failed"] as? Int == 0)
        #expect((object["baseline_per_second"] as? Double ?? 0) > 0)
        #expect((object["baseline_ca_cpu_ms_per_call"] as? Double ?? 0) > 0)
        #expect(object["share_of_crypto_limit"] == nil, "--no-openssl leaves the crypto comparison out")
    }
}
