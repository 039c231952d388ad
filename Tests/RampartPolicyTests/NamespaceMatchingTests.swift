import Foundation
import Testing

@testable import RampartPolicy

/// `namespaces` and `source.namespace` as Istio's generator compiles them: the regex
/// `.*/ns/<value>/.*` (each `*` of the value read as `.*`) against the peer's SPIFFE ID
/// (istio/istio pilot/pkg/security/authz/model/generator.go, `srcNamespaceGenerator`).
@Suite("namespace matching against the peer's SPIFFE ID")
struct NamespaceMatchingTests {
    @Test(
        "values match as the regex does",
        arguments: [
            // Istio workload IDs: the namespace segment.
            ("ns1", "cluster.local/ns/ns1/sa/a", true),
            ("ns1", "cluster.local/ns/ns10/sa/a", false),
            ("ns*", "cluster.local/ns/ns10/sa/a", true),
            ("*-prod", "cluster.local/ns/web-prod/sa/a", true),
            ("*-prod", "cluster.local/ns/web-dev/sa/a", false),
            ("*", "cluster.local/ns/ns1/sa/a", true),
            // IDs of other shapes: `/ns/<value>/` anywhere.
            ("ns1", "cluster.local/ns/ns1/sa/a/extra", true),
            ("ns1", "cluster.local/ns/ns1/workload", true),
            ("ns1", "example.org/team/x/ns/ns1/y", true),
            ("ns1", "cluster.local/ns/ns1", false),
            ("ns1", "cluster.local/ns1/sa/a", false),
            ("ns1", "example.org/workload/x", false),
            ("x", "td/ns/a/y/ns/x/z", true),
            ("a", "td/ns/a/y/ns/x/z", true),
            // The regex's own reach: a suffix may end at a later slash, `*` may be empty.
            ("*a", "cluster.local/ns/web/sa/b", true),
            ("*sa", "cluster.local/ns/web/sa/b", true),
            ("*x", "cluster.local/ns/web/sa/b", false),
            ("*b", "cluster.local/ns/web/sa/b", true),
            ("*", "cluster.local/ns//sa/a", true),
            ("", "cluster.local/ns//sa/a", true),
            ("w*b", "cluster.local/ns/web/sa/b", true),
            ("w*z", "cluster.local/ns/web/sa/b", false),
            // The ID starts with `spiffe://`, so `/ns/` may start at the principal's start.
            ("ns1", "ns/ns1/sa/a", true),
            ("ns1", "xns/ns1/sa/a", false),
        ])
    func regex(value: String, principal: String, matches: Bool) {
        #expect(NamespacePattern(value).matches(principal: principal) == matches)
        #expect(NamespacePattern(StringMatcher(value)).matches(principal: principal) == matches)
    }

    @Test("a principal's namespace segment is the text after its only /ns/, up to the next slash")
    func segments() {
        func segment(_ principal: String) -> String {
            switch NamespacePattern.segment(of: principal) {
            case (.one, let text?): return text
            case (.ambiguous, _): return "<ambiguous>"
            default: return "<none>"
            }
        }
        #expect(segment("cluster.local/ns/ns1/sa/a") == "ns1")
        #expect(segment("cluster.local/ns/ns1/sa/a/extra") == "ns1")
        #expect(segment("example.org/team/x/ns/ns1/y") == "ns1")
        #expect(segment("ns/ns1/sa/a") == "ns1")
        #expect(segment("cluster.local/ns/ns1") == "<none>")
        #expect(segment("cluster.local/sa/a") == "<none>")
        #expect(segment("td/ns/a/y/ns/x/z") == "<ambiguous>")
        #expect(segment("cluster.local/ns/ns/sa/a") == "<ambiguous>")
        #expect(NamespacePattern.isIndexable("ns1"))
        #expect(!NamespacePattern.isIndexable("a*b"))
        #expect(!NamespacePattern.isIndexable("a/b"))
    }

    private static func engine(_ rules: String, action: String) -> WorkloadPolicies {
        Fixture.engine(Fixture.policy("p", action: action, rules: rules)).snapshot.workload(
            namespace: "ns1", labels: ["app": "b"])
    }

    /// Decides with both evaluators and checks they agree.
    private static func decide(_ policies: WorkloadPolicies, principal: String?) -> Decision.Verdict {
        let request = Fixture.http(principal: principal)
        let decision = policies.evaluate(request)
        #expect(decision == policies.evaluateReference(request), "\(principal ?? "none")")
        return decision.decision
    }

    @Test("peers with IDs of other shapes are in the namespaces their IDs name, for ALLOW and DENY")
    func otherShapes() {
        let allow = Self.engine("  - from: [{source: {namespaces: [\"ns1\"]}}]", action: "ALLOW")
        let deny = Self.engine("  - from: [{source: {namespaces: [\"ns1\"]}}]", action: "DENY")
        let notIn = Self.engine("  - from: [{source: {notNamespaces: [\"ns1\"]}}]", action: "DENY")
        let when = Self.engine("  - when: [{key: source.namespace, values: [\"ns1\"]}]", action: "ALLOW")
        for principal in [
            "cluster.local/ns/ns1/sa/a", "cluster.local/ns/ns1/sa/a/extra", "cluster.local/ns/ns1/workload",
            "example.org/team/x/ns/ns1/y",
        ] {
            #expect(Self.decide(allow, principal: principal) == .allow, "\(principal)")
            #expect(Self.decide(deny, principal: principal) == .deny, "\(principal)")
            #expect(Self.decide(notIn, principal: principal) == .allow, "\(principal)")
            #expect(Self.decide(when, principal: principal) == .allow, "\(principal)")
        }
        for principal in ["cluster.local/ns/ns2/sa/a", "cluster.local/ns/ns1", "example.org/ns1/sa/a"] {
            #expect(Self.decide(allow, principal: principal) == .deny, "\(principal)")
            #expect(Self.decide(deny, principal: principal) == .allow, "\(principal)")
            #expect(Self.decide(notIn, principal: principal) == .deny, "\(principal)")
            #expect(Self.decide(when, principal: principal) == .deny, "\(principal)")
        }
        #expect(Self.decide(allow, principal: nil) == .deny)
        // A peer without a principal is in no namespace, so it is outside ns1.
        #expect(Self.decide(notIn, principal: nil) == .deny)
    }

    @Test("a principal naming several namespaces matches each, though the index looks up one")
    func severalNamespaces() {
        // Rules filed by namespace, so the fast path would find only one of the two.
        let rules = """
              - from: [{source: {namespaces: ["team"]}}]
                to: [{operation: {methods: ["GET"]}}]
              - from: [{source: {namespaces: ["ns1"]}}]
                to: [{operation: {methods: ["POST"]}}]
            """
        let policies = Self.engine(rules, action: "ALLOW")
        let ids = policies.resolved.program.identities.namespaces
        #expect(ids["team"] != nil && ids["ns1"] != nil)
        for (method, principal) in [("GET", "td/ns/team/x/ns/ns1/y"), ("POST", "td/ns/team/x/ns/ns1/y")] {
            let request = Fixture.http(principal: principal, method: method)
            #expect(policies.evaluate(request).decision == .allow, "\(method)")
            #expect(policies.evaluate(request) == policies.evaluateReference(request))
        }
        let other = Fixture.http(principal: "td/ns/a/x/ns/b/y", method: "GET")
        #expect(policies.evaluate(other).decision == .deny)
    }

    @Test("suffix and wildcard values keep the regex's reach on the fast path")
    func suffixReach() {
        let policies = Self.engine("  - from: [{source: {namespaces: [\"*a\"]}}]", action: "ALLOW")
        #expect(Self.decide(policies, principal: "cluster.local/ns/web/sa/b") == .allow)
        #expect(Self.decide(policies, principal: "cluster.local/ns/web/b") == .deny)
        let any = Self.engine("  - from: [{source: {namespaces: [\"*\"]}}]", action: "ALLOW")
        #expect(Self.decide(any, principal: "cluster.local/ns//sa/b") == .allow)
        #expect(Self.decide(any, principal: "spiffe-less/no-namespace") == .deny)
    }

    @Test("random values and IDs match exactly when Istio's regex matches")
    func againstTheRegex() throws {
        // Small alphabets, so that `/ns/`, stars and repeated segments come up often.
        let valueAlphabet = Array("ans*-")
        let idAlphabet = Array("ans/-")
        var generator = SeededGenerator(seed: 0x4E53)
        for _ in 0..<3000 {
            let value = String((0..<Int.random(in: 0...4, using: &generator)).map { _ in valueAlphabet.randomElement(using: &generator)! })
            let principal = String((0..<Int.random(in: 0...14, using: &generator)).map { _ in idAlphabet.randomElement(using: &generator)! })
            let regexText = "^.*/ns/" + value.split(separator: "*", omittingEmptySubsequences: false)
                .map { NSRegularExpression.escapedPattern(for: String($0)) }.joined(separator: ".*") + "/.*$"
            let regex = try NSRegularExpression(pattern: regexText, options: [.dotMatchesLineSeparators])
            let uri = "spiffe://" + principal
            let expected = regex.firstMatch(in: uri, range: NSRange(uri.startIndex..., in: uri)) != nil
            #expect(NamespacePattern(value).matches(principal: principal) == expected, "\(value) \(principal)")
            // A principal's segment, when it has one, is the only slash-free exact value that matches.
            if case (.one, let segment?) = NamespacePattern.segment(of: principal), !value.contains("*"), !value.contains("/") {
                #expect(NamespacePattern(value).matches(principal: principal) == (value == segment), "\(value) \(principal)")
            }
        }
    }
}
