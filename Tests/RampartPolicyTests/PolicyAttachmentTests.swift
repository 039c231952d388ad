@testable import RampartPolicy
import Testing

/// Where a policy attaches, as Istio's `ShouldAttachPolicy` decides: target references name
/// Gateways of the policy's own namespace (their pods carry the gateway's name as a label), even
/// from the root namespace, and take the place of a selector; other kinds attach to no workload here.
@Suite("policy attachment: selectors and targetRefs")
struct PolicyAttachmentTests {
    static let gatewayLabels = [PolicyTargetReference.gatewayNameLabel: "gw", "app": "gw"]

    static func denyAll(namespace: String, spec: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: d, namespace: \(namespace)}
        spec:
        \(spec)
          action: DENY
          rules: [{}]
        """
    }

    static func status(_ yaml: String, namespace: String = "ns1", labels: [String: String] = gatewayLabels) -> Int {
        Fixture.engine(yaml).snapshot.evaluate(Fixture.http(namespace: namespace, labels: labels)).status
    }

    static let gatewayRef = "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]"

    @Test("a Gateway reference attaches the policy to that gateway's pods in the policy's namespace")
    func sameNamespace() {
        #expect(Self.status(Self.denyAll(namespace: "ns1", spec: Self.gatewayRef)) == 403)
        #expect(Self.status(Self.denyAll(namespace: "ns1", spec: Self.gatewayRef), labels: ["app": "b"]) == 200)
        #expect(Self.status(Self.denyAll(namespace: "ns2", spec: Self.gatewayRef)) == 200)
    }

    @Test("from the root namespace, a Gateway reference still names only gateways of the root namespace")
    func rootNamespace() {
        let yaml = Self.denyAll(namespace: "istio-system", spec: Self.gatewayRef)
        #expect(Self.status(yaml) == 200)
        #expect(Self.status(yaml, namespace: "istio-system") == 403)
        // A selector in the root namespace still applies in every namespace.
        #expect(Self.status(Self.denyAll(namespace: "istio-system", spec: "  selector: {matchLabels: {app: gw}}")) == 403)
        let (_, trace) = Fixture.engine(yaml).snapshot.explain(Fixture.http(labels: Self.gatewayLabels))
        let note = trace.steps.first { $0.policy == "istio-system/d" }?.notes.first ?? ""
        #expect(note.contains("gateways of its own namespace"), "\(trace.lines)")
    }

    @Test("target references take the place of a selector: with both, a sidecar matching the selector is not attached")
    func referencesOverSelector() {
        let both = Self.denyAll(namespace: "ns1", spec: "  selector: {matchLabels: {app: b}}\n" + Self.gatewayRef)
        #expect(Self.status(both, labels: ["app": "b"]) == 200)
        #expect(Self.status(both) == 403)
    }

    @Test("a reference naming another namespace attaches nothing")
    func otherNamespace() {
        let spec = "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, namespace: ns2}]"
        #expect(Self.status(Self.denyAll(namespace: "ns1", spec: spec)) == 200)
        #expect(Self.status(Self.denyAll(namespace: "ns1", spec: spec), namespace: "ns2") == 200)
    }

    @Test("an allowed request that a CUSTOM policy sent to its provider says so")
    func customAllowedReason() {
        let custom = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: ext, namespace: ns1}
            spec:
              action: CUSTOM
              provider: {name: authz}
              rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
            """
        let engine = Fixture.engine(custom)
        func request(_ path: String) -> AuthzRequest { Fixture.http(path: path, extAuthz: .allow) }
        let sent = engine.check(request("/admin/x"))
        #expect(sent["decision"] as? String == "allow" && sent["custom_policy"] as? String == "ns1/ext")
        #expect((sent["reason"] as? String)?.contains("CUSTOM policy ns1/ext rule 0 matched") == true, "\(sent)")
        let notSent = engine.check(request("/public"))
        #expect(notSent["custom_policy"] == nil && (notSent["reason"] as? String)?.contains("CUSTOM") == false)
    }
}
