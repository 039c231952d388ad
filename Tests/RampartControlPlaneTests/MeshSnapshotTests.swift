import Foundation
import RampartControlPlane
import RampartPolicy
import RampartStore
import Testing

@Suite("Snapshots and sync status")
struct MeshSnapshotTests {
    static func record(_ kind: String, _ namespace: String, _ name: String, spec: String) -> ConfigResourceRecord {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: \(kind)
            metadata: {name: \(name), namespace: \(namespace)}
            spec: \(spec)

            """
        return ConfigResourceRecord(kind: kind, namespace: namespace, name: name, generation: 1, yaml: yaml, createdAt: start, updatedAt: start)
    }

    static let state = ConfigState.compile(
        ConfigSnapshotRecords(version: 7, resources: [
            record("AuthorizationPolicy", "billing", "deny-all", spec: "{}"),
            record("AuthorizationPolicy", "istio-system", "mesh-deny", spec: "{action: DENY, rules: [{to: [{operation: {paths: [/debug]}}]}]}"),
            record("AuthorizationPolicy", "shop", "broken", spec: "{action: MAYBE}"),
            record("AuthorizationPolicy", "shop", "allow-get", spec: "{rules: [{to: [{operation: {methods: [GET]}}]}]}"),
            record("PeerAuthentication", "shop", "strict", spec: "{mtls: {mode: STRICT}}"),
            record("RequestAuthentication", "shop", "jwt", spec: "{jwtRules: [{issuer: https://issuer.example, jwksUri: https://issuer.example/jwks}]}"),
        ])
    )

    @Test("the config state keeps each accepted record with its YAML, and leaves invalid ones out")
    func acceptedRecords() {
        #expect(Self.state.accepted.map(\.key.description) == [
            "AuthorizationPolicy billing/deny-all", "AuthorizationPolicy istio-system/mesh-deny", "AuthorizationPolicy shop/allow-get",
            "PeerAuthentication shop/strict", "RequestAuthentication shop/jwt",
        ])
        #expect(Self.state.accepted.allSatisfy { $0.yaml.contains("kind: \($0.kind)") })
    }

    @Test("an endpoint is marked plaintext where its PeerAuthentication resolves to DISABLE for its application port")
    func plaintextEndpoints() {
        let state = ConfigState.compile(
            ConfigSnapshotRecords(version: 3, resources: [
                Self.record("PeerAuthentication", "istio-system", "mesh", spec: "{mtls: {mode: STRICT}}"),
                Self.record("PeerAuthentication", "legacy", "default", spec: "{mtls: {mode: DISABLE}}"),
                Self.record(
                    "PeerAuthentication", "legacy", "db-strict",
                    spec: "{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}}"),
                Self.record(
                    "PeerAuthentication", "shop", "metrics-plain",
                    spec: "{selector: {matchLabels: {app: cart}}, portLevelMtls: {\"9090\": {mode: DISABLE}}}"),
            ]))
        func endpoint(_ app: String, appPort: Int) -> MeshService.Endpoint {
            MeshService.Endpoint(address: "10.0.0.1:15006", spiffeID: spiffe(app), workload: app, labels: ["app": app], appPort: appPort)
        }
        let services = [
            MeshService(name: "old", namespace: "legacy", port: 80, endpoints: [endpoint("old", appPort: 8080), endpoint("db", appPort: 5432)]),
            MeshService(name: "cart", namespace: "shop", port: 80, endpoints: [endpoint("cart", appPort: 9090), endpoint("cart", appPort: 8080)]),
            MeshService(name: "web", namespace: "web", port: 80, endpoints: [endpoint("web", appPort: 0)]),
        ]
        let wire = MeshSnapshot(config: state, services: services, revoked: [])
            .wire(namespace: "shop", rootNamespace: "istio-system", proxySpiffeID: spiffe("cart"), nonce: "n")
        // Namespace DISABLE, unless the workload's own policy says STRICT; a port DISABLE under a
        // mesh-wide STRICT; a workload under mesh-wide STRICT with no port known.
        let plaintext = wire.services.map { service in service.endpoints.map { endpoint in endpoint.plaintext } }
        #expect(plaintext == [[true, false], [true, false], [false]])
    }

    @Test("a proxy is sent the resources of its namespace and of the root namespace, every kind, with the rest of the mesh")
    func wireSnapshot() {
        let service = MeshService(name: "reviews", namespace: "shop", port: 9080, endpoints: [
            MeshService.Endpoint(address: "10.0.0.1:15006", spiffeID: spiffe("reviews"), workload: "reviews-v1", labels: ["app": "reviews"]),
        ])
        let revoked = RevokedCertificate(serial: "abc123", spiffeID: spiffe("old"), notAfter: start.addingTimeInterval(0.5))
        let snapshot = MeshSnapshot(config: Self.state, services: [service], revoked: [revoked])
        let wire = snapshot.wire(namespace: "shop", rootNamespace: "istio-system", proxySpiffeID: spiffe("reviews"), nonce: "n-1")
        #expect(wire.nonce == "n-1")
        #expect(wire.configVersion == 7)
        #expect(wire.rootNamespace == "istio-system")
        #expect(wire.proxySpiffeID == spiffe("reviews"))
        #expect(wire.resources.map { "\($0.kind) \($0.namespace)/\($0.name)" } == [
            "AuthorizationPolicy istio-system/mesh-deny", "AuthorizationPolicy shop/allow-get", "PeerAuthentication shop/strict", "RequestAuthentication shop/jwt",
        ])
        #expect(wire.resources.allSatisfy { $0.yaml.contains("name: \($0.name)") })
        #expect(wire.services.count == 1)
        #expect(wire.services.first?.port == 9080)
        #expect(wire.services.first?.endpoints.first?.address == "10.0.0.1:15006")
        #expect(wire.services.first?.endpoints.first?.labels == ["app": "reviews"])
        #expect(wire.revoked.map(\.serial) == ["abc123"])
        #expect(wire.revoked.first?.notAfter == Int64(start.timeIntervalSince1970) + 1, "rounded up, so a proxy never forgets early")

        #expect(snapshot.hasSameContent(as: MeshSnapshot(config: Self.state, services: [service], revoked: [revoked])))
        #expect(!snapshot.hasSameContent(as: MeshSnapshot(config: Self.state, services: [], revoked: [revoked])))
        #expect(!snapshot.hasSameContent(as: MeshSnapshot(config: Self.state, services: [service], revoked: [])))
    }

    @Test("sync status reports each proxy's versions, NACK and connection, with nulls for what is absent")
    func syncStatus() throws {
        let registry = MeshRegistry()
        let synced = registry.register(registration("reviews-v1"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        let stale = registry.register(registration("ratings", services: []), spiffeID: spiffe("ratings"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        let nacked = registry.register(registration("web", namespace: "front"), spiffeID: spiffe("web", namespace: "front"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        for id in [synced, stale, nacked] { registry.recordSent(id, nonce: "\(id)-1", configVersion: 7) }
        registry.recordAck(synced, nonce: "\(synced)-1", accepted: true, detail: "")
        registry.recordAck(nacked, nonce: "\(nacked)-1", accepted: false, detail: "bad rule")
        registry.disconnect(stale, now: start.addingTimeInterval(60))

        let status = SyncStatus(configVersion: 7, proxies: registry.proxies())
        #expect(status.proxies.map(\.displayName) == ["web.front", "ratings.shop", "reviews-v1.shop"])
        let json = try #require(try JSONSerialization.jsonObject(with: status.json()) as? [String: Any])
        #expect(json["config_version"] as? Int == 7)
        let proxies = try #require(json["proxies"] as? [[String: Any]])
        let reviews = try #require(proxies.last)
        #expect(reviews["workload"] as? String == "reviews-v1")
        #expect(reviews["spiffe_id"] as? String == spiffe("reviews"))
        #expect(reviews["synced"] as? Bool == true)
        #expect(reviews["acked_config_version"] as? Int == 7)
        #expect(reviews["state"] as? String == "connected")
        #expect(reviews["disconnected_at"] is NSNull)
        #expect(reviews["last_nack"] is NSNull)
        #expect(reviews["certificate_not_after"] as? String == "2026-01-02T00:00:00Z")
        #expect(reviews["connected_at"] as? String == "2026-01-01T00:00:00Z")
        #expect((reviews["services"] as? [[String: Any]])?.first?["port"] as? Int == 9080)
        for key in ["namespace", "labels", "inbound_address", "proxy_version", "sent_config_version"] { #expect(reviews[key] != nil, "missing \(key)") }
        let ratings = try #require(proxies.dropFirst().first)
        #expect(ratings["state"] as? String == "disconnected")
        #expect(ratings["disconnected_at"] as? String == "2026-01-01T00:01:00Z")
        #expect(ratings["acked_config_version"] is NSNull)

        let decoded = try JSONDecoder().decode(SyncStatus.self, from: status.json())
        #expect(decoded == status)
        let table = status.table()
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("NAME") == true)
        #expect(lines.first?.contains("CERT EXPIRES") == true)
        let columns = lines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(columns.first?[3] == "ACKED")  // after NAME, SPIFFE and ID
        #expect(columns.first { $0.first == "reviews-v1.shop" }?[2] == "7", "the version reviews acked: \(table)")
        #expect(columns.first { $0.first == "ratings.shop" }?[2] == "-", "ratings acked none: \(table)")
        #expect(lines.contains { $0.hasPrefix("web.front") && $0.contains("NACK: bad rule") })
        #expect(lines.contains { $0.hasPrefix("ratings.shop") && $0.contains("STALE (acked none, current 7)") && $0.hasSuffix("disconnected") })
        #expect(lines.contains { $0.hasPrefix("reviews-v1.shop") && $0.contains("SYNCED") && $0.hasSuffix("connected") })
    }

    @Test("competing PeerAuthentications are decided by the store's creation times, whatever their names or YAML say")
    func peerAuthenticationAge() throws {
        func peer(_ name: String, _ mode: String, created: TimeInterval, stated: String = "") -> ConfigResourceRecord {
            let yaml = """
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: \(name), namespace: shop\(stated)}
                spec: {mtls: {mode: \(mode)}}

                """
            let at = start.addingTimeInterval(created)
            return ConfigResourceRecord(kind: "PeerAuthentication", namespace: "shop", name: name, generation: 1, yaml: yaml, createdAt: at, updatedAt: at)
        }
        let destination = AuthzRequest.Destination(namespace: "shop", labels: ["app": "cart"], port: 8080)
        // Stored in name order; zz-strict was created first, and its YAML's own timestamp is the later one.
        let records = [
            peer("aa-disable", "DISABLE", created: 60, stated: ", creationTimestamp: \"2020-01-01T00:00:00Z\""),
            peer("zz-strict", "STRICT", created: 0),
        ]
        let state = ConfigState.compile(ConfigSnapshotRecords(version: 2, resources: records))
        #expect(state.snapshot.peerModes(for: destination).mode(port: 8080) == .strict)
        // The proxy is told the creation times, and decides the same.
        let wire = MeshSnapshot(config: state, services: [], revoked: [])
            .wire(namespace: "shop", rootNamespace: "istio-system", proxySpiffeID: "spiffe://cluster.local/ns/shop/sa/cart", nonce: "n")
        #expect(wire.resources.map { $0.createdAt.date } == records.map(\.createdAt))
        // Created the other way round, the other one wins.
        let swapped = ConfigState.compile(ConfigSnapshotRecords(version: 3, resources: [
            peer("aa-disable", "DISABLE", created: 0), peer("zz-strict", "STRICT", created: 60),
        ]))
        #expect(swapped.snapshot.peerModes(for: destination).mode(port: 8080) == .disable)
    }
}
