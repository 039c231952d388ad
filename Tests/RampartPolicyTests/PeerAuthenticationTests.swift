import RampartPolicy
import Testing

@Suite("peer authentication")
struct PeerAuthenticationTests {
    static let yaml = """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: ns, namespace: ns1}
        spec: {mtls: {mode: UNSET}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: b, namespace: ns1}
        spec:
          selector: {matchLabels: {app: b}}
          mtls: {mode: PERMISSIVE}
          portLevelMtls:
            8080: {mode: DISABLE}
            8443: {mode: UNSET}
        """

    @Test("resolves mesh, namespace, workload and port levels with UNSET inheriting")
    func resolution() {
        let snapshot = Fixture.engine(Self.yaml).snapshot
        let b = snapshot.workload(namespace: "ns1", labels: ["app": "b"]).peer
        #expect(b.mode(port: 8080) == .disable)
        #expect(b.mode(port: 8443) == .permissive)
        #expect(b.mode(port: 9000) == .permissive)
        #expect(snapshot.workload(namespace: "ns1", labels: ["app": "c"]).peer.mode(port: 80) == .strict)
        #expect(snapshot.workload(namespace: "ns2", labels: [:]).peer.mode(port: 80) == .strict)
        #expect(PolicySnapshot(resources: []).workload(namespace: "x", labels: [:]).peer.mode(port: 1) == .permissive)
    }

    @Test("denies plaintext under STRICT and accepts it under PERMISSIVE")
    func strictDeniesPlaintext() {
        let snapshot = Fixture.engine(Self.yaml).snapshot
        let strict = snapshot.evaluate(Fixture.http(principal: nil, labels: ["app": "c"]))
        #expect(strict.decision == .deny && strict.mtlsMode == .strict)
        #expect(snapshot.evaluate(Fixture.http(principal: nil, port: 9000)).decision == .allow)
    }

    /// Istio sorts competing PeerAuthentications by creation time, then `name.namespace`
    /// (pilot/pkg/model/config.go sortConfigByCreationTime), and the first wins at each level.
    static func competing(_ documents: [(name: String, created: String?, selector: Bool, mode: String)], namespace: String = "ns1")
        -> String
    {
        documents.map { document in
            let created = document.created.map { ", creationTimestamp: \"\($0)\"" } ?? ""
            return """
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: \(document.name), namespace: \(namespace)\(created)}
                spec:
                  \(document.selector ? "selector: {matchLabels: {app: b}}" : "")
                  mtls: {mode: \(document.mode)}
                """
        }.joined(separator: "\n---\n")
    }

    @Test(
        "where PeerAuthentications compete, the oldest wins, then the first by name, whatever the load order",
        arguments: [
            // Names alone: aaa sorts first.
            ([("zzz", nil, false, "STRICT"), ("aaa", nil, false, "PERMISSIVE")], MTLSMode.permissive),
            ([("aaa", nil, false, "PERMISSIVE"), ("zzz", nil, false, "STRICT")], .permissive),
            // The older creation time wins over the name.
            ([("newer", "2024-01-01T00:00:00Z", false, "STRICT"), ("older", "2020-01-01T00:00:00Z", false, "PERMISSIVE")], .permissive),
            ([("aaa", "2024-01-01T00:00:00Z", false, "STRICT"), ("zzz", "2020-01-01T00:00:00Z", false, "DISABLE")], .disable),
            // Workload level, the same rule.
            ([("zzz", nil, true, "STRICT"), ("aaa", nil, true, "DISABLE")], .disable),
            ([("newer", "2024-01-01T00:00:00.5Z", true, "STRICT"), ("older", "2024-01-01T00:00:00Z", true, "PERMISSIVE")], .permissive),
        ] as [([(String, String?, Bool, String)], MTLSMode)])
    func precedence(documents: [(String, String?, Bool, String)], expected: MTLSMode) {
        let yaml = Self.competing(documents.map { (name: $0.0, created: $0.1, selector: $0.2, mode: $0.3) })
        let snapshot = Fixture.engine(yaml).snapshot
        #expect(snapshot.workload(namespace: "ns1", labels: ["app": "b"]).peer.mode(port: 8080) == expected)
    }

    @Test("mesh-wide policies in the root namespace follow the same order; an unreadable creationTimestamp is an error")
    func meshPrecedence() throws {
        let yaml = Self.competing(
            [(name: "zzz", created: nil, selector: false, mode: "STRICT"), (name: "aaa", created: nil, selector: false, mode: "PERMISSIVE")],
            namespace: "istio-system")
        #expect(Fixture.engine(yaml).snapshot.workload(namespace: "ns1", labels: [:]).peer.mode(port: 80) == .permissive)
        let bad = PolicyLoader.load(
            yaml: Self.competing([(name: "a", created: "yesterday", selector: false, mode: "STRICT")]), file: "pa.yaml")
        let error = try #require(bad.diagnostics.first { $0.severity == .error })
        #expect(error.code == .badMetadata)
        #expect(error.field == "metadata.creationTimestamp")
    }
}
