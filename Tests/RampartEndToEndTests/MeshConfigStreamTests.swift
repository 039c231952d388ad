import Foundation
import GRPCCore
import RampartAPI
import Testing

/// A proxy's config stream against a real `rampart ca serve`: mTLS, registration, snapshots that
/// follow `rampart apply` and `rampart cert revoke`, ACKs seen on `/debug/syncz` and `rampart status`.
@Suite("Config stream end to end", .serialized)
struct MeshConfigStreamTests {
    /// A workload certificate from the running CA, bootstrapped with a token.
    struct Workload {
        let chainPEM: String
        let keyPEM: String
        let serial: String
    }

    static func workload(_ ca: CAProcess, namespace: String, account: String) async throws -> Workload {
        let id = "spiffe://cluster.local/ns/\(namespace)/sa/\(account)"
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", id, "--ttl", "5m")
        guard token.succeeded else { throw TestFailure("token create: \(token.stderr)") }
        let (csrPath, keyPath) = try OpenSSL.csr(in: ca.directory, name: "\(namespace)-\(account)")
        let csr = try String(contentsOfFile: csrPath, encoding: .utf8)
        let chain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, bearer: token.trimmedOutput) }
        return Workload(
            chainPEM: chain.joined(separator: "\n"), keyPEM: try String(contentsOfFile: keyPath, encoding: .utf8), serial: try serial(of: chain[0], in: ca.directory)
        )
    }

    static func policy(_ name: String, namespace: String, in directory: String) throws -> String {
        let file = "\(directory)/\(namespace)-\(name).yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: \(name), namespace: \(namespace)}
            spec:
              action: DENY
              rules: [{to: [{operation: {paths: [/\(name)]}}]}]

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// `/debug/syncz` as JSON.
    static func syncz(_ ca: CAProcess) throws -> [String: Any] {
        let body = try run("curl", ["-sf", "http://127.0.0.1:\(ca.adminPort)/debug/syncz"], timeout: 10).stdout
        return (try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:]
    }

    /// Polls `/debug/syncz` until `predicate` holds, for at most `timeout` seconds.
    static func waitForSyncz(_ ca: CAProcess, timeout: TimeInterval = 5, _ predicate: ([String: Any]) -> Bool) throws -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            let status = try syncz(ca)
            if predicate(status) { return status }
            usleep(20_000)
        } while Date() < deadline
        return nil
    }

    static func proxies(_ status: [String: Any]) -> [[String: Any]] { status["proxies"] as? [[String: Any]] ?? [] }

    @Test("a proxy registers over mTLS, gets a snapshot at once, follows apply and revoke within a second, and its ACKs show in syncz and status")
    func streamFollowsChanges() async throws {
        let ca = try CAProcess(label: "mesh-stream")
        let root = try rampart("apply", "-f", try Self.policy("mesh-wide", namespace: "istio-system", in: ca.directory), "-f", try Self.policy("elsewhere", namespace: "billing", in: ca.directory), "--state", ca.state)
        #expect(root.succeeded, "\(root.stderr)")
        try ca.start(extraArguments: ["--registration-grace", "1"])
        defer { ca.stop() }
        let proxy = try await Self.workload(ca, namespace: "shop", account: "reviews")
        let other = try await Self.workload(ca, namespace: "shop", account: "ratings")

        let stream = ConfigStreamClient()
        async let finished: Void = stream.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: proxy.chainPEM, keyPEM: proxy.keyPEM)
        stream.send(.registration(workload: "reviews-v1", namespace: "shop", services: [("reviews", 9080)], inbound: "0.0.0.0:15006", labels: ["app": "reviews"]))

        let first = try #require(await stream.snapshot(within: .seconds(5)), "no first snapshot: \(ca.log)")
        #expect(first.configVersion == 1)
        #expect(first.rootNamespace == "istio-system")
        #expect(first.proxySpiffeID == "spiffe://cluster.local/ns/shop/sa/reviews")
        #expect(first.resources.map { "\($0.kind) \($0.namespace)/\($0.name)" } == ["AuthorizationPolicy istio-system/mesh-wide"])
        #expect(first.resources.first?.yaml.contains("paths: [/mesh-wide]") == true)
        #expect(first.services.map { "\($0.namespace)/\($0.name):\($0.port)" } == ["shop/reviews:9080"])
        let endpoint = try #require(first.services.first?.endpoints.first)
        #expect(endpoint.address == "127.0.0.1:15006", "the unspecified host is replaced by the address the proxy connected from")
        #expect(endpoint.spiffeID == "spiffe://cluster.local/ns/shop/sa/reviews")
        #expect(endpoint.workload == "reviews-v1")
        #expect(endpoint.labels == ["app": "reviews"])
        #expect(first.revoked.isEmpty)
        #expect(!first.nonce.isEmpty)

        // ACK the first snapshot: syncz shows the proxy synced at version 1.
        stream.send(.ack(first.nonce))
        let synced = try Self.waitForSyncz(ca) { status in Self.proxies(status).first?["acked_config_version"] as? Int == 1 }
        let entry = try #require(synced.flatMap { Self.proxies($0).first }, "syncz never showed the ACK")
        #expect(synced?["config_version"] as? Int == 1)
        #expect(entry["workload"] as? String == "reviews-v1")
        #expect(entry["namespace"] as? String == "shop")
        #expect(entry["spiffe_id"] as? String == "spiffe://cluster.local/ns/shop/sa/reviews")
        #expect(entry["synced"] as? Bool == true)
        #expect(entry["state"] as? String == "connected")
        #expect(entry["disconnected_at"] is NSNull)
        #expect(entry["inbound_address"] as? String == "0.0.0.0:15006")
        #expect(entry["proxy_version"] as? String == "e2e-test")
        #expect((entry["certificate_not_after"] as? String)?.hasSuffix("Z") == true)

        // An apply in the proxy's namespace reaches it within a second.
        let seen = stream.snapshots.count
        let applied = try rampart("apply", "-f", try Self.policy("deny-admin", namespace: "shop", in: ca.directory), "--state", ca.state)
        #expect(applied.succeeded, "\(applied.stderr)")
        let afterApply = try #require(
            await stream.snapshot(after: seen, within: .seconds(1)) { $0.resources.contains { $0.name == "deny-admin" } }, "the apply did not arrive within 1 s"
        )
        #expect(afterApply.configVersion == 2)
        #expect(afterApply.resources.map(\.name) == ["mesh-wide", "deny-admin"])
        #expect(afterApply.nonce != first.nonce)

        // A revocation of another certificate reaches it within a second.
        let revokedSeen = stream.snapshots.count
        let revoke = try rampart("cert", "revoke", "--state", ca.state, other.serial, "--reason", "keyCompromise")
        #expect(revoke.succeeded, "\(revoke.stderr)")
        let afterRevoke = try #require(
            await stream.snapshot(after: revokedSeen, within: .seconds(1)) { $0.revoked.contains { $0.serial == other.serial } }, "the revocation did not arrive within 1 s"
        )
        #expect(afterRevoke.revoked.first?.spiffeID == "spiffe://cluster.local/ns/shop/sa/ratings")
        #expect(afterRevoke.revoked.first.map { $0.notAfter > Int64(Date().timeIntervalSince1970) } == true)
        #expect(afterRevoke.configVersion == 2)

        // Nothing changed since: no identical snapshot is resent.
        try await Task.sleep(for: .milliseconds(700))
        #expect(stream.snapshots.count == revokedSeen + 1, "an identical snapshot was resent")

        // ACK the latest; `rampart status` shows the proxy synced.
        stream.send(.ack(afterRevoke.nonce))
        #expect(try Self.waitForSyncz(ca) { Self.proxies($0).first?["acked_config_version"] as? Int == 2 } != nil)
        let table = try rampart("status", "--admin", "127.0.0.1:\(ca.adminPort)")
        #expect(table.succeeded, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("NAME") == true, "\(table.stdout)")
        let row = try #require(lines.first { $0.hasPrefix("reviews-v1.shop") }, "\(table.stdout)")
        #expect(row.contains("spiffe://cluster.local/ns/shop/sa/reviews"))
        #expect(row.contains("SYNCED"))
        #expect(row.hasSuffix("connected"))
        let json = try rampart("status", "--admin", "127.0.0.1:\(ca.adminPort)", "--json")
        #expect(json.stdout.contains("\"acked_config_version\" : 2"), "\(json.stdout)")

        // A NACK is reported with its reason, and the acked version stays.
        let nackSeen = stream.snapshots.count
        _ = try rampart("apply", "-f", try Self.policy("deny-debug", namespace: "shop", in: ca.directory), "--state", ca.state)
        let third = try #require(await stream.snapshot(after: nackSeen, within: .seconds(1)) { $0.configVersion == 3 })
        stream.send(.ack(third.nonce, accepted: false, detail: "test refused deny-debug"))
        #expect(try Self.waitForSyncz(ca) { Self.proxies($0).first?["last_nack"] as? String == "test refused deny-debug" } != nil)
        let nacked = try rampart("status", "--admin", "127.0.0.1:\(ca.adminPort)")
        #expect(nacked.stdout.contains("NACK: test refused deny-debug"), "\(nacked.stdout)")
        #expect(try Self.proxies(Self.syncz(ca)).first?["acked_config_version"] as? Int == 2)
        #expect(ca.log.contains("proxy refused config"), "\(ca.log)")

        // Closing the stream leaves the proxy listed as disconnected for the grace period, then removes it.
        stream.close()
        await finished
        let disconnected = try Self.waitForSyncz(ca) { Self.proxies($0).first?["state"] as? String == "disconnected" }
        let gone = try Self.proxies(Self.syncz(ca)).isEmpty
        #expect(disconnected != nil || gone, "the closed stream was never marked disconnected")
        #expect(try Self.waitForSyncz(ca) { Self.proxies($0).isEmpty } != nil, "the registration outlived its grace period")
    }

    @Test("a registration in another namespace than the certificate's, or with a revoked certificate, is PERMISSION_DENIED")
    func permissionDenied() async throws {
        let ca = try CAProcess(label: "mesh-denied")
        try ca.start()
        defer { ca.stop() }
        let proxy = try await Self.workload(ca, namespace: "shop", account: "reviews")

        let stream = ConfigStreamClient()
        async let finished: Void = stream.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: proxy.chainPEM, keyPEM: proxy.keyPEM)
        stream.send(.registration(workload: "reviews-v1", namespace: "billing", services: [], inbound: "127.0.0.1:15006"))
        stream.close()
        await finished
        let end = await stream.end(within: .seconds(5))
        let error = try #require(end.error as? RPCError, "expected an RPC error, got \(String(describing: end.error))")
        #expect(error.code == .permissionDenied)
        #expect(error.message.contains("'billing'") && error.message.contains("'shop'"), "\(error.message)")
        #expect(stream.snapshots.isEmpty)

        #expect(try rampart("cert", "revoke", "--state", ca.state, proxy.serial).succeeded)
        let revoked = ConfigStreamClient()
        async let revokedDone: Void = revoked.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: proxy.chainPEM, keyPEM: proxy.keyPEM)
        revoked.send(.registration(workload: "reviews-v1", namespace: "shop", services: [], inbound: "127.0.0.1:15006"))
        revoked.close()
        await revokedDone
        let revokedError = try #require(await revoked.end(within: .seconds(5)).error as? RPCError)
        #expect(revokedError.code == .permissionDenied)
        #expect(revokedError.message.contains("revoked"), "\(revokedError.message)")
    }

    @Test("an open stream is closed with PERMISSION_DENIED within a second of its own certificate's revocation, and SIGTERM ends open streams")
    func revokedWhileConnected() async throws {
        let ca = try CAProcess(label: "mesh-revoked-live")
        try ca.start()
        defer { ca.stop() }
        let proxy = try await Self.workload(ca, namespace: "shop", account: "reviews")
        let stream = ConfigStreamClient()
        async let finished: Void = stream.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: proxy.chainPEM, keyPEM: proxy.keyPEM)
        stream.send(.registration(workload: "reviews-v1", namespace: "shop", services: [("reviews", 9080)], inbound: "127.0.0.1:15006"))
        #expect(await stream.snapshot(within: .seconds(5)) != nil, "no first snapshot: \(ca.log)")

        #expect(try rampart("cert", "revoke", "--state", ca.state, proxy.serial).succeeded)
        let end = await stream.end(within: .seconds(1))
        #expect(end.ended, "the stream of a revoked proxy stayed open")
        let error = try #require(end.error as? RPCError, "expected an RPC error, got \(String(describing: end.error))")
        #expect(error.code == .permissionDenied)
        #expect(error.message.contains("revoked"), "\(error.message)")
        stream.close()
        await finished

        // Another proxy stays connected while the CA shuts down: the stream ends and the CA exits promptly.
        let survivor = try await Self.workload(ca, namespace: "shop", account: "ratings")
        let open = ConfigStreamClient()
        async let openDone: Void = open.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: survivor.chainPEM, keyPEM: survivor.keyPEM)
        open.send(.registration(workload: "ratings-v1", namespace: "shop", services: [], inbound: "127.0.0.1:15007"))
        #expect(await open.snapshot(within: .seconds(5)) != nil)
        let stopping = ContinuousClock.now
        ca.stop()
        #expect(ContinuousClock.now - stopping < .seconds(5), "ca serve took \(ContinuousClock.now - stopping) to stop with a stream open")
        #expect(await open.end(within: .seconds(5)).ended)
        open.close()
        await openDone
    }

    @Test("a stream without a client certificate is UNAUTHENTICATED, one that starts with an ACK is INVALID_ARGUMENT, and status without a CA says to pass --admin")
    func refusals() async throws {
        let ca = try CAProcess(label: "mesh-refusals")
        try ca.start()
        defer { ca.stop() }

        let anonymous = ConfigStreamClient()
        async let anonymousDone: Void = anonymous.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: nil, keyPEM: nil)
        anonymous.send(.registration(workload: "reviews-v1", namespace: "shop", services: [], inbound: "127.0.0.1:15006"))
        anonymous.close()
        await anonymousDone
        let unauthenticated = try #require(await anonymous.end(within: .seconds(5)).error as? RPCError)
        #expect(unauthenticated.code == .unauthenticated)
        #expect(unauthenticated.message.contains("no client certificate"), "\(unauthenticated.message)")

        let proxy = try await Self.workload(ca, namespace: "shop", account: "reviews")
        let ackFirst = ConfigStreamClient()
        async let ackFirstDone: Void = ackFirst.run(port: ca.grpcPort, rootPEM: ca.rootPEM, chainPEM: proxy.chainPEM, keyPEM: proxy.keyPEM)
        ackFirst.send(.ack("nothing-yet"))
        ackFirst.close()
        await ackFirstDone
        let ackEnd = await ackFirst.end(within: .seconds(5))
        let invalid = try #require(ackEnd.error as? RPCError, "ended: \(ackEnd.ended), error: \(String(describing: ackEnd.error))")
        #expect(invalid.code == .invalidArgument)
        #expect(invalid.message.contains("must be a Registration"), "\(invalid.message)")

        let status = try rampart("status", "--admin", "127.0.0.1:1")
        #expect(!status.succeeded)
        #expect(status.stderr.contains("127.0.0.1:1") && status.stderr.contains("--admin"), "\(status.stderr)")
    }
}
