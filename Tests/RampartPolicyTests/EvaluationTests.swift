import RampartPolicy
import Testing

@Suite("evaluation semantics")
struct EvaluationTests {
    @Test("ANDs fields within a source and ORs entries of from")
    func andOr() {
        let engine = Fixture.engine(
            Fixture.policy(
                "p",
                rules: """
                  - from:
                    - source: {principals: ["cluster.local/ns/ns1/sa/a"], namespaces: ["ns2"]}
                    - source: {principals: ["cluster.local/ns/ns3/sa/*"]}
                    to: [{operation: {methods: ["GET", "HEAD"], paths: ["/x*"]}}]
                """))
        #expect(engine.snapshot.evaluate(Fixture.http(path: "/x1")).decision == .deny)
        #expect(engine.snapshot.evaluate(Fixture.http(principal: "cluster.local/ns/ns3/sa/z", path: "/x1")).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(principal: "cluster.local/ns/ns3/sa/z", method: "HEAD", path: "/xy")).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(principal: "cluster.local/ns/ns3/sa/z", path: "/y")).decision == .deny)
    }

    @Test("a field with an empty list is not set: it asks nothing of the request, on the fast path and in explain")
    func emptyListFields() {
        let engine = Fixture.engine(
            Fixture.policy(
                "p",
                rules: """
                  - from: [{source: {principals: [], notNamespaces: [], namespaces: ["ns3"]}}]
                    to: [{operation: {methods: [], notPaths: [], paths: ["/x*"]}}]
                """))
        let request = Fixture.http(principal: "cluster.local/ns/ns3/sa/z", path: "/x1")
        #expect(engine.snapshot.evaluate(request).decision == .allow)
        #expect(engine.snapshot.explain(request).decision.decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(principal: "cluster.local/ns/ns4/sa/z", path: "/x1")).decision == .deny)
        #expect(engine.snapshot.evaluate(Fixture.http(principal: "cluster.local/ns/ns3/sa/z", path: "/y")).decision == .deny)
    }

    @Test("ANDs when conditions and negates notValues, also for a missing header")
    func conditions() {
        let engine = Fixture.engine(
            Fixture.policy(
                "p",
                rules: """
                  - when:
                    - {key: "request.headers[x-a]", values: ["1"]}
                    - {key: "request.headers[x-b]", notValues: ["no"]}
                """))
        #expect(engine.snapshot.evaluate(Fixture.http(headers: ["X-A": "1"])).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(headers: ["x-a": "1", "x-b": "no"])).decision == .deny)
        #expect(engine.snapshot.evaluate(Fixture.http(headers: ["x-b": "yes"])).decision == .deny)
    }

    @Test("an ALLOW policy without rules allows nothing, and rules: [{}] allows everything")
    func emptyPolicies() {
        let nothing = Fixture.engine("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: n, namespace: ns1}\nspec: {}\n")
        #expect(nothing.snapshot.evaluate(Fixture.http()).decision == .deny)
        let all = Fixture.engine(Fixture.policy("p", rules: "  - {}"))
        let decision = all.snapshot.evaluate(Fixture.http())
        #expect(decision.decision == .allow && decision.policy == "ns1/p" && decision.rule == 0)
    }

    @Test("applies root-namespace policies mesh-wide, with selectors in every namespace")
    func rootNamespace() {
        let yaml = Fixture.policy("deny-x", action: "DENY", namespace: "mesh-root", rules: "  - to: [{operation: {paths: [\"/x\"]}}]")
            + "\n---\n"
            + Fixture.policy("deny-y", action: "DENY", namespace: "mesh-root", extra: "", rules: "  - to: [{operation: {paths: [\"/y\"]}}]")
                .replacingOccurrences(of: "spec:\n", with: "spec:\n  selector: {matchLabels: {app: c}}\n")
        let engine = Fixture.engine(yaml, root: "mesh-root")
        #expect(engine.snapshot.evaluate(Fixture.http(path: "/x")).policy == "mesh-root/deny-x")
        #expect(engine.snapshot.evaluate(Fixture.http(path: "/y")).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(labels: ["app": "c"], path: "/y")).decision == .deny)
        let other = Fixture.engine(yaml, root: "istio-system")
        #expect(other.snapshot.evaluate(Fixture.http(path: "/x")).decision == .allow)
    }

    @Test("reports a dry-run DENY without enforcing it")
    func dryRun() {
        let engine = Fixture.engine(
            Fixture.policy(
                "shadow", action: "DENY", extra: ", annotations: {\"istio.io/dry-run\": \"true\"}",
                rules: "  - to: [{operation: {paths: [\"/headers\"]}}]"))
        let decision = engine.snapshot.evaluate(Fixture.http(path: "/headers"))
        #expect(decision.decision == .allow)
        #expect(decision.dryRun.first?.wouldBe == .deny)
        #expect(decision.dryRun.first?.policy == "ns1/shadow")
    }

    @Test("drops ALLOW rules with HTTP-only fields on TCP but only the HTTP conditions of DENY rules")
    func tcpHandling() {
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - to: [{operation: {methods: [\"GET\"], ports: [\"9000\"]}}]"))
        #expect(allow.snapshot.evaluate(Fixture.tcp(port: 9000)).decision == .deny)
        let deny = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: "  - to: [{operation: {methods: [\"GET\"], ports: [\"9000\"]}}]"))
        #expect(deny.snapshot.evaluate(Fixture.tcp(port: 9000)).decision == .deny)
        #expect(deny.snapshot.evaluate(Fixture.tcp(port: 9001)).decision == .allow)
        let denyAll = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {requestPrincipals: [\"*\"]}}]"))
        #expect(denyAll.snapshot.evaluate(Fixture.tcp()).decision == .deny)
        #expect(denyAll.snapshot.evaluate(Fixture.http()).decision == .allow)
    }

    @Test("needs mTLS for principals: a plaintext source has none")
    func plaintextHasNoPrincipal() {
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {namespaces: [\"ns1\"]}}]"))
        #expect(engine.snapshot.evaluate(Fixture.http()).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(principal: nil)).decision == .deny)
    }

    @Test("explains which rule and field failed for each policy, with what the request had and the values it was compared with")
    func explain() {
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - to: [{operation: {paths: [\"/a\"]}}]"))
        let (decision, trace) = engine.snapshot.explain(Fixture.http(path: "/b"))
        #expect(decision.decision == .deny)
        #expect(trace.lines.contains { $0.contains(#"rules[0].to[0].operation.paths: "/b" does not match ["/a"]"#) }, "\(trace.lines)")

        // A when condition names its key; a not-field says the value was excluded; a plaintext peer has no identity.
        let conditions = Fixture.engine(Fixture.policy("q", rules: """
              - when: [{key: "request.headers[x-env]", notValues: ["prod"]}]
              - from: [{source: {principals: ["cluster.local/ns/a/sa/b"]}}]
            """))
        let (_, explained) = conditions.snapshot.explain(Fixture.http(principal: nil, headers: ["x-env": "prod"]))
        #expect(explained.lines.contains { $0.contains(#"when[0].notValues (request.headers[x-env]): "prod" matches ["prod"], which the rule excludes"#) }, "\(explained.lines)")
        #expect(explained.lines.contains { $0.contains("source.principals: the request has no peer identity (plaintext, or hidden by the mTLS mode), so it does not match") }, "\(explained.lines)")
    }

    @Test("explain lists AUDIT before DENY, as Istio orders its filters, and ends with the namespace's policies that do not apply and why")
    func explainOrderAndSkipped() {
        let yaml = [
            Fixture.policy("deny-all", action: "DENY", rules: "  - {}"),
            Fixture.policy("audit-all", action: "AUDIT", rules: "  - {}"),
            Fixture.policy("typo", action: "DENY", rules: "  - {}").replacingOccurrences(of: "spec:\n", with: "spec:\n  selector: {matchLabels: {app: bb}}\n"),
            Fixture.policy("waypoint", rules: "  - {}").replacingOccurrences(of: "spec:\n", with: "spec:\n  targetRefs: [{kind: Service, group: \"\", name: b}]\n"),
            Fixture.policy("elsewhere", namespace: "ns2", rules: "  - {}"),
        ].joined(separator: "\n---\n")
        let (decision, trace) = Fixture.engine(yaml).snapshot.explain(Fixture.http())
        #expect(decision.policy == "ns1/deny-all")
        let kinds = trace.steps.map { "\($0.kind) \($0.policy)" }
        let audit = kinds.firstIndex(of: "AUDIT ns1/audit-all"), deny = kinds.firstIndex(of: "DENY ns1/deny-all")
        #expect(audit != nil && deny != nil && audit! < deny!, "\(kinds)")
        let typo = trace.steps.first { $0.policy == "ns1/typo" }
        #expect(typo?.notes.first?.contains("it selects {app: bb}, and the workload's labels are {app: b}") == true, "\(trace.lines)")
        #expect(trace.steps.first { $0.policy == "ns1/waypoint" }?.notes.first?.contains("targetRefs") == true, "\(trace.lines)")
        #expect(!trace.steps.contains { $0.policy == "ns2/elsewhere" })
    }
}
