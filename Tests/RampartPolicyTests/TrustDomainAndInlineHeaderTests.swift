@testable import RampartPolicy
import Testing

/// `trustDomains`/`notTrustDomains` and `source.trustDomain` (istio/api#3665, istio/istio#59358),
/// and `request.experimental.inline.headers[...]` (pilot/pkg/security/authz/model/generator.go,
/// requestInlineHeaderGenerator). Every case is decided by both evaluation paths.
@Suite("trust domains and inline headers")
struct TrustDomainAndInlineHeaderTests {
    static func request(principal: String? = "cluster.local/ns/ns1/sa/a", headers: [String: String] = [:], tcp: Bool = false)
        -> AuthzRequest
    {
        AuthzRequest(
            transport: tcp ? .tcp : .http,
            source: AuthzRequest.Source(principal: principal, mtls: principal != nil),
            destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080),
            method: tcp ? nil : "GET", host: tcp ? nil : "b.ns1", path: tcp ? nil : "/", headers: headers)
    }

    static func decide(_ rules: String, action: String = "ALLOW", _ request: AuthzRequest) -> Decision.Verdict {
        IstioValueSemanticsTests.decide(Fixture.engine(Fixture.policy("p", action: action, rules: rules)), request)
    }

    @Test(
        "trustDomains match the part of the peer's SPIFFE ID before its first slash, exactly, by prefix, suffix or *",
        arguments: [
            // (value, principal, matches)
            ("cluster.local", "cluster.local/ns/ns1/sa/a", true),
            ("other.local", "cluster.local/ns/ns1/sa/a", false),
            ("cluster.*", "cluster.local/ns/ns1/sa/a", true),
            ("*.local", "east.local/ns/ns1/sa/a", true),
            ("*.local", "east.local.example/ns/ns1/sa/a", false),
            ("*", "any.example/workload", true),
            // A prefix pattern stays inside the trust domain: it does not reach into the path.
            ("cluster.local/ns*", "cluster.local/ns/ns1/sa/a", false),
            ("*ns1", "cluster.local/ns/ns1", false),
            ("example.org", "example.org", true),
        ])
    func trustDomains(value: String, principal: String, matches: Bool) {
        let allow = Self.decide("  - from: [{source: {trustDomains: [\"\(value)\"]}}]", Self.request(principal: principal))
        #expect(allow == (matches ? .allow : .deny))
        let negated = Self.decide(
            "  - from: [{source: {notTrustDomains: [\"\(value)\"]}}]", Self.request(principal: principal))
        #expect(negated == (matches ? .deny : .allow))
        let condition = Self.decide(
            "  - when: [{key: source.trustDomain, values: [\"\(value)\"]}]", Self.request(principal: principal))
        #expect(condition == allow)
    }

    @Test("a plaintext peer has no trust domain: trustDomains never match it and notTrustDomains always do")
    func plaintext() {
        #expect(Self.decide("  - from: [{source: {trustDomains: [\"*\"]}}]", Self.request(principal: nil)) == .deny)
        #expect(Self.decide("  - from: [{source: {notTrustDomains: [cluster.local]}}]", Self.request(principal: nil)) == .allow)
    }

    @Test("trustDomains apply to TCP traffic too")
    func tcp() {
        #expect(Self.decide("  - from: [{source: {trustDomains: [cluster.local]}}]", Self.request(tcp: true)) == .allow)
        #expect(
            Self.decide("  - from: [{source: {trustDomains: [cluster.local]}}]", action: "DENY", Self.request(tcp: true))
                == .deny)
    }

    @Test("trust domains are validated: a * in the middle, an empty value and CUSTOM use are refused")
    func validation() throws {
        func errors(_ rules: String, action: String = "ALLOW") -> [Diagnostic] {
            let loaded = PolicyLoader.load(yaml: Fixture.policy("p", action: action, rules: rules), file: "td.yaml")
            return (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.severity == .error }
        }
        #expect(errors("  - from: [{source: {trustDomains: [a.local, \"*.b\", \"c.*\", \"*\"]}}]").isEmpty)
        let middle = try #require(errors("  - from: [{source: {notTrustDomains: [\"fo*-bar\"]}}]").first)
        #expect(middle.code == .badWildcard)
        #expect(middle.field == "spec.rules[0].from[0].source.notTrustDomains[0]")
        #expect(errors("  - when: [{key: source.trustDomain, values: [\"fo*-bar\"]}]").map(\.code) == [.badWildcard])
        #expect(errors("  - from: [{source: {trustDomains: [\"\"]}}]").map(\.code) == [.emptyValue])
        #expect(errors("  - from: [{source: {trustDomains: [a.local]}}]", action: "CUSTOM").map(\.code).contains(.unsupportedWithCustom))
    }

    @Test(
        "an inline header condition matches one element of the comma-separated value",
        arguments: [
            // (pattern, header value or nil, matches)
            ("a", "a", true), ("a", "b,a", true), ("a", "a,b", true), ("a", "b,a,c", true), ("a", "ab", false),
            ("a", "b, a", false), ("a", nil, false), ("a*", "x,abc", true), ("*c", "abc,x", true), ("*", "", true),
            ("*", nil, false),
        ] as [(String, String?, Bool)])
    func inlineHeader(pattern: String, value: String?, matches: Bool) {
        let rules = "  - when: [{key: \"request.experimental.inline.headers[X-A]\", values: [\"\(pattern)\"]}]"
        let request = Self.request(headers: value.map { ["x-a": $0] } ?? [:])
        #expect(Self.decide(rules, request) == (matches ? .allow : .deny))
        #expect(Self.decide(rules, action: "DENY", request) == (matches ? .deny : .allow))
    }

    @Test("inline headers are HTTP-only: on TCP an ALLOW rule with one is dropped, a DENY rule loses the condition")
    func inlineHeaderOnTCP() {
        let rules = "  - when: [{key: \"request.experimental.inline.headers[x-a]\", values: [a]}]"
        #expect(Self.decide(rules, Self.request(tcp: true)) == .deny)
        #expect(Self.decide(rules, action: "DENY", Self.request(tcp: true)) == .deny)
    }
}

/// `cluster.local` in principals stands for the mesh's trust domain and aliases, as Istio's
/// trust domain bundle (pilot/pkg/security/trustdomain/bundle.go) rewrites them.
@Suite("trust domain aliases")
struct TrustDomainAliasTests {
    @Test(
        "principals in cluster.local, the trust domain or an alias stand for every trust domain of the mesh",
        arguments: [
            // (trust domain, aliases, principal in the policy, expanded)
            ("cluster.local", [], "cluster.local/ns/a/sa/b", ["cluster.local/ns/a/sa/b"]),
            ("td1", [], "cluster.local/ns/a/sa/b", ["td1/ns/a/sa/b"]),
            ("td2", ["td1"], "cluster.local/ns/a/sa/b", ["td2/ns/a/sa/b", "td1/ns/a/sa/b"]),
            ("td2", ["td1"], "td1/ns/a/sa/b", ["td2/ns/a/sa/b", "td1/ns/a/sa/b"]),
            ("td2", ["td1"], "other/ns/a/sa/b", ["other/ns/a/sa/b"]),
            ("td2", ["td1"], "*/ns/a/sa/b", ["*/ns/a/sa/b"]),
            ("td2", ["td1"], "cluster.local/ns/a/sa/b/extra", ["cluster.local/ns/a/sa/b/extra"]),
            ("td2", ["td1"], "cluster.local/*", ["cluster.local/*"]),
            ("td2", ["td1"], "*", ["*"]),
            // Trust domains written as patterns, read as Istio's bundle reads them (the outcomes of
            // istio/istio pilot/pkg/security/trustdomain/bundle_test.go and the builder's
            // trust-domain-wildcard-in-principal golden file).
            ("td2", ["foo-td1", "cluster.local"], "*-td1/ns/foo/sa/bar",
             ["td2/ns/foo/sa/bar", "*-td1/ns/foo/sa/bar", "cluster.local/ns/foo/sa/bar"]),
            ("td1", ["foobar"], "*bar/ns/foo/sa/x", ["td1/ns/foo/sa/x", "*bar/ns/foo/sa/x"]),
            ("td1", ["td2", "some-td"], "some-td/ns/foo/sa/bar",
             ["td1/ns/foo/sa/bar", "td2/ns/foo/sa/bar", "some-td/ns/foo/sa/bar"]),
            ("new-td", ["td2", "td3"], "td1/ns/some-ns/sa/some-sa", ["td1/ns/some-ns/sa/some-sa"]),
            // A prefix pattern covering a trust domain stands for the exact identity in each.
            ("cluster.local", [], "cl*/ns/ns1/sa/a", ["cluster.local/ns/ns1/sa/a"]),
            ("td2", ["td1"], "td*/ns/ns1/sa/a", ["td2/ns/ns1/sa/a", "td1/ns/ns1/sa/a"]),
            ("td2", ["td1"], "xy*/ns/ns1/sa/a", ["xy*/ns/ns1/sa/a"]),
            ("cluster.local", [], "*-td1/ns/ns1/sa/a", ["*-td1/ns/ns1/sa/a"]),
            ("cluster.local", [], "*.local/ns/ns1/sa/a", ["*.local/ns/ns1/sa/a"]),
        ] as [(String, [String], String, [String])])
    func expand(trustDomain: String, aliases: [String], principal: String, expanded: [String]) {
        #expect(TrustDomainBundle(trustDomain: trustDomain, aliases: aliases).expand([principal]) == expanded)
    }

    @Test("a trust domain pattern in a principal decides as Istio's rewritten principals do, and is not warned about as a literal *")
    func trustDomainPatterns() {
        func decide(_ principal: String, peer: String, trustDomain: String = "cluster.local", aliases: [String] = []) -> Decision.Verdict {
            let engine = PolicyEngine(
                yaml: Fixture.policy("p", rules: "  - from: [{source: {principals: [\"\(principal)\"]}}]"),
                options: SnapshotOptions(trustDomains: TrustDomainBundle(trustDomain: trustDomain, aliases: aliases)))
            let request = Fixture.http(principal: peer)
            let fast = engine.snapshot.evaluate(request)
            #expect(fast == engine.snapshot.explain(request).decision)
            return fast.decision
        }
        #expect(decide("cl*/ns/ns1/sa/a", peer: "cluster.local/ns/ns1/sa/a") == .allow)
        #expect(decide("cl*/ns/ns1/sa/a", peer: "clx/ns/ns1/sa/a") == .deny)
        #expect(decide("*bar/ns/ns1/sa/a", peer: "td1/ns/ns1/sa/a", trustDomain: "td1", aliases: ["foobar"]) == .allow)
        #expect(decide("*bar/ns/ns1/sa/a", peer: "xbar/ns/ns1/sa/a", trustDomain: "td1", aliases: ["foobar"]) == .allow)
        #expect(decide("*bar/ns/ns1/sa/a", peer: "td2/ns/ns1/sa/a", trustDomain: "td1", aliases: ["foobar"]) == .deny)
        let loaded = PolicyLoader.load(
            yaml: Fixture.policy("p", rules: "  - from: [{source: {principals: [\"cl*/ns/ns1/sa/a\", \"cluster.local/ns/*/sa/a\"], namespaces: [\"n*1\"]}}]"))
        let warned = (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.code == .literalWildcard }
        #expect(warned.map(\.field) == ["spec.rules[0].from[0].source.principals[1]"], "\(warned)")
    }

    @Test("a mesh under another trust domain matches its own workloads by their cluster.local principals")
    func decisions() {
        let yaml = Fixture.policy(
            "p",
            rules: """
                  - from: [{source: {principals: [cluster.local/ns/ns1/sa/a]}}]
                  - when: [{key: source.principal, notValues: [cluster.local/ns/ns1/sa/x]}]
                    to: [{operation: {paths: [/when]}}]
                """)
        let engine = PolicyEngine(
            yaml: yaml, options: SnapshotOptions(trustDomains: TrustDomainBundle(trustDomain: "td2", aliases: ["td1"])))
        for (principal, allowed) in [
            ("td2/ns/ns1/sa/a", true), ("td1/ns/ns1/sa/a", true), ("cluster.local/ns/ns1/sa/a", false),
            ("td3/ns/ns1/sa/a", false),
        ] {
            #expect(IstioValueSemanticsTests.decide(engine, Fixture.http(principal: principal)) == (allowed ? .allow : .deny))
        }
        // The condition's notValues are expanded too: td1's x is refused on /when, td3's is not.
        #expect(IstioValueSemanticsTests.decide(engine, Fixture.http(principal: "td1/ns/ns1/sa/x", path: "/when")) == .deny)
        #expect(IstioValueSemanticsTests.decide(engine, Fixture.http(principal: "td3/ns/ns1/sa/x", path: "/when")) == .allow)
        // With the default trust domain nothing changes.
        let plain = Fixture.engine(yaml)
        #expect(IstioValueSemanticsTests.decide(plain, Fixture.http(principal: "cluster.local/ns/ns1/sa/a")) == .allow)
        #expect(IstioValueSemanticsTests.decide(plain, Fixture.http(principal: "td2/ns/ns1/sa/a")) == .deny)
    }
}
