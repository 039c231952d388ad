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
}
