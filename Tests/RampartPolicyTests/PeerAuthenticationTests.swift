import Foundation
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

    @Test("names the PeerAuthentication that set each port's mode, and explain shows every level")
    func provenance() throws {
        let engine = Fixture.engine(Self.yaml)
        let b = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"]).peer
        #expect(b.layers.map(\.scope) == [.mesh, .namespace, .workload])
        #expect(b.setBy(port: 8080) == "ns1/b")  // its portLevelMtls
        #expect(b.setBy(port: 8443) == "ns1/b")  // UNSET at the port: the workload's own PERMISSIVE
        let c = engine.snapshot.workload(namespace: "ns1", labels: ["app": "c"]).peer
        #expect(c.setBy(port: 80) == "istio-system/default")  // the namespace's UNSET inherits the mesh's
        #expect(PolicySnapshot(resources: []).workload(namespace: "x", labels: [:]).peer.setBy(port: 1) == nil)

        let strict = engine.check(Fixture.http(principal: nil, labels: ["app": "c"]), explain: true)
        #expect(strict["mtls_policy"] as? String == "istio-system/default")
        let steps = try #require(strict["explain"] as? [[String: Any]])
        let notes = try #require(steps.first?["notes"] as? [String])
        #expect(notes.contains("namespace-wide ns1/ns: mtls.mode UNSET, inherits STRICT"), "\(notes)")
        #expect(notes.contains("port 8080: STRICT, set by istio-system/default"), "\(notes)")
        #expect(notes.contains { $0.contains("plaintext: STRICT refuses it") }, "\(notes)")

        let port = engine.snapshot.explain(Fixture.http(port: 8080)).trace.lines
        #expect(port.contains { $0.contains("workload ns1/b: mtls.mode PERMISSIVE; portLevelMtls 8080: DISABLE, 8443: UNSET") }, "\(port)")
        #expect(port.contains { $0.contains("port 8080: DISABLE, from the portLevelMtls of ns1/b") }, "\(port)")
        #expect(port.contains { $0.contains("DISABLE: the peer's certificate is not used") }, "\(port)")
        let none = Fixture.engine("").check(Fixture.http(), explain: true)
        #expect(none["mtls_policy"] is NSNull)
    }

    @Test("explain lists the PeerAuthentications that do not apply: a younger competitor, a root-namespace selector, another workload's")
    func skippedInExplain() {
        let yaml = Self.yaml + """

            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: young, namespace: ns1, creationTimestamp: "2030-01-01T00:00:00Z"}
            spec: {mtls: {mode: DISABLE}}
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: rooted, namespace: istio-system}
            spec:
              selector: {matchLabels: {app: b}}
              mtls: {mode: DISABLE}
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: other, namespace: ns1}
            spec:
              selector: {matchLabels: {app: c}}
              mtls: {mode: DISABLE}
            """
        let engine = Fixture.engine(yaml)
        let peer = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"]).peer
        #expect(peer.sources == ["istio-system/default", "ns1/ns", "ns1/b"])
        #expect(peer.skipped.map(\.policy) == ["istio-system/rooted", "ns1/other", "ns1/young"])
        let lines = engine.snapshot.explain(Fixture.http(port: 9000)).trace.lines
        #expect(lines.contains { $0.contains("ns1/young not applied: ns1/ns is also namespace-wide") }, "\(lines)")
        #expect(lines.contains { $0.contains("istio-system/rooted not applied: a PeerAuthentication with a selector in the root namespace is ignored") }, "\(lines)")
        #expect(lines.contains { $0.contains("ns1/other not applied: it selects {app: c}, and the workload's labels are {app: b}") }, "\(lines)")
        // The policy that selects nothing here is not listed for a workload it does select.
        #expect(!engine.snapshot.workload(namespace: "ns1", labels: ["app": "c"]).peer.skipped.map(\.policy).contains("ns1/other"))
    }

    @Test("a plaintext request refused by STRICT names the port and the PeerAuthentication in its reason")
    func strictReason() {
        let result = Fixture.engine(Self.yaml).check(Fixture.http(principal: nil, labels: ["app": "c"], port: 8443))
        #expect(result["status"] as? Int == 403)
        let reason = result["reason"] as? String ?? ""
        #expect(reason.contains("port 8443, which PeerAuthentication istio-system/default makes STRICT"), "\(reason)")
        #expect(reason.contains("fix:"), "\(reason)")
    }

    @Test("denies plaintext under STRICT and accepts it under PERMISSIVE")
    func strictDeniesPlaintext() {
        let snapshot = Fixture.engine(Self.yaml).snapshot
        let strict = snapshot.evaluate(Fixture.http(principal: nil, labels: ["app": "c"]))
        #expect(strict.decision == .deny && strict.mtlsMode == .strict)
        #expect(snapshot.evaluate(Fixture.http(principal: nil, port: 9000)).decision == .allow)
    }

    /// Istio sorts competing PeerAuthentications by creation time, then name, then namespace
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
            // A name before a longer one it starts: `a` before `a-b` and `a.b` (the joined
            // `a-b.ns1` would sort before `a.ns1`).
            ([("a-b", nil, false, "STRICT"), ("a", nil, false, "DISABLE")], .disable),
            ([("a.b", nil, false, "STRICT"), ("a", nil, false, "DISABLE")], .disable),
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
