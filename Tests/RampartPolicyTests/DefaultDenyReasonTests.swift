import Foundation
import Testing

@testable import RampartPolicy

/// A request denied because no ALLOW rule matched names the ALLOW policies that were tried, so the
/// reason answers "which policy should have let this in?" without `--explain`.
@Suite("the reason of a default deny")
struct DefaultDenyReasonTests {
    static func reason(_ yaml: String, _ request: AuthzRequest, explain: Bool = false) -> String {
        let (decision, object) = PolicyEngine.check(request, snapshot: Fixture.engine(yaml).snapshot, explain: explain)
        #expect(decision.decision == .deny && decision.policy == nil)
        return object["reason"] as? String ?? ""
    }

    @Test("the ALLOW policies tried are named, the same with and without --explain")
    func namesPolicies() {
        let yaml = Fixture.policy("readers", rules: "  - to: [{operation: {methods: [GET]}}]") + "\n---\n"
            + Fixture.policy("writers", rules: "  - from: [{source: {principals: [cluster.local/ns/ns1/sa/w]}}]")
        let said = Self.reason(yaml, Fixture.http(method: "POST"))
        #expect(said == "denied: no rule of the ALLOW policies that apply to the workload (ns1/readers, ns1/writers) matched", "\(said)")
        #expect(Self.reason(yaml, Fixture.http(method: "POST"), explain: true) == said)
    }

    @Test("on TCP the rules left out for HTTP-only fields are counted; allow-nothing says it has no rules")
    func tcpAndAllowNothing() {
        let http = Fixture.policy("readers", rules: "  - to: [{operation: {methods: [GET]}}]")
        let said = Self.reason(http, Fixture.tcp())
        #expect(said.hasSuffix("on TCP, 1 of their rules is left out for holding HTTP-only fields"), "\(said)")
        let nothing = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: allow-nothing, namespace: ns1}
            spec: {}
            """
        let empty = Self.reason(nothing, Fixture.http())
        #expect(empty.contains("(ns1/allow-nothing) have no rules, so they allow nothing"), "\(empty)")
    }

    @Test("past five policies the rest are counted")
    func manyPolicies() {
        let yaml = (1...7).map { Fixture.policy("p\($0)", rules: "  - to: [{operation: {methods: [GET]}}]") }
            .joined(separator: "\n---\n")
        let said = Self.reason(yaml, Fixture.http(method: "PUT"))
        #expect(said.contains("ns1/p5 and 2 more"), "\(said)")
    }
}
