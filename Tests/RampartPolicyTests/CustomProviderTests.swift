@testable import RampartPolicy
import Testing

/// CUSTOM policies naming more than one provider for a workload: Istio takes one ext-authz
/// provider per workload and otherwise turns every CUSTOM rule into a denial
/// (istio/istio pilot/pkg/security/authz/builder, testdata custom-bad-multiple-providers).
@Suite("CUSTOM policies with several providers")
struct CustomProviderTests {
    static func policies(_ first: String, _ second: String) -> String {
        """
        \(Fixture.policy("ext1", action: "CUSTOM", extra: "", rules: "  - to: [{operation: {paths: [/httpbin1]}}]")
            .replacingOccurrences(of: "  action: CUSTOM", with: "  action: CUSTOM\n  provider: {name: \(first)}"))
        ---
        \(Fixture.policy("ext2", action: "CUSTOM", extra: "", rules: "  - to: [{operation: {paths: [/httpbin2]}}]")
            .replacingOccurrences(of: "  action: CUSTOM", with: "  action: CUSTOM\n  provider: {name: \(second)}"))
        """
    }

    static func decide(_ yaml: String, path: String, answer: AuthzRequest.ExtAuthzAnswer?) -> Decision {
        let workload = Fixture.engine(yaml).snapshot.workload(namespace: "ns1", labels: ["app": "b"])
        let request = Fixture.http(path: path, extAuthz: answer)
        let fast = workload.evaluate(request)
        #expect(fast == workload.evaluateReference(request), "the fast path and the reference disagree on \(path)")
        return fast
    }

    @Test("two providers: a matching CUSTOM rule denies whatever the provider would say; other requests go on to DENY and ALLOW")
    func twoProviders() {
        let yaml = Self.policies("default", "another")
        for answer in [AuthzRequest.ExtAuthzAnswer.allow, .deny] {
            let denied = Self.decide(yaml, path: "/httpbin1", answer: answer)
            #expect(denied.decision == .deny && denied.status == 403)
            #expect(denied.cause == .customProvidersConflict(["another", "default"]))
            #expect(denied.policy == "ns1/ext1")
            #expect(denied.reason.contains("2 providers"), "\(denied.reason)")
        }
        #expect(Self.decide(yaml, path: "/other", answer: nil).decision == .allow)
    }

    @Test("one provider named twice is one provider: its answer decides")
    func oneProvider() {
        let yaml = Self.policies("default", "default")
        #expect(Self.decide(yaml, path: "/httpbin1", answer: .allow).decision == .allow)
        #expect(Self.decide(yaml, path: "/httpbin2", answer: .deny).cause == .customDenied)
    }

    static func warnings(_ yaml: String, workloads: [Workload]? = nil) -> [Diagnostic] {
        let loaded = PolicyLoader.load(yaml: yaml, file: "custom.yaml")
        return PolicyAnalyzer.analyze(loaded.resources, workloads: workloads).filter { $0.code == .customProviderConflict }
    }

    @Test("analyze warns of two providers for the same workloads, once, on the later policy; not of one provider, nor of policies that never meet")
    func analyzerWarning() {
        let found = Self.warnings(Self.policies("default", "another"))
        #expect(found.count == 1 && found[0].severity == .warning && found[0].resource?.name == "ext2", "\(found)")
        #expect(found.first?.message.contains("default") == true && found.first?.message.contains("another") == true)
        #expect(Self.warnings(Self.policies("default", "default")).isEmpty)
        // Selectors that differ meet only on a workload both select.
        let apart = Self.policies("default", "another").replacingOccurrences(of: "metadata: {name: ext2, namespace: ns1}", with: "metadata: {name: ext2, namespace: ns2}")
        #expect(Self.warnings(apart).isEmpty)
        let split = """
            \(Self.policies("default", "another"))
            """.replacingOccurrences(of: "spec:\n  action: CUSTOM\n  provider: {name: another}", with: "spec:\n  selector: {matchLabels: {app: other}}\n  action: CUSTOM\n  provider: {name: another}")
        let workloads = [Workload(namespace: "ns1", labels: ["app": "b"])]
        #expect(Self.warnings(split, workloads: workloads).isEmpty, "a policy for app=other meets no listed workload of the other")
        #expect(Self.warnings(split, workloads: workloads + [Workload(namespace: "ns1", labels: ["app": "other"])]).count == 1)
    }
}
