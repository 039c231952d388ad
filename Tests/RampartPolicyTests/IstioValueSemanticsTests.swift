@testable import RampartPolicy
import Testing

/// How particular field values are read, where Istio's translation to Envoy gives them a meaning of
/// their own (pilot/pkg/security/authz/model/generator.go and matcher/header.go in istio/istio):
/// request principals compared as an issuer pattern and a subject pattern, `*` on headers as a
/// presence match, service accounts without a namespace, and namespaces read from the principal only.
/// Every case is decided by both evaluation paths (the fast path and the traced one).
@Suite("Istio value semantics")
struct IstioValueSemanticsTests {
    /// A workload `app: b` in ns1 with one ALLOW policy holding `rules`, and a RequestAuthentication
    /// for issuers `a` and `https://issuer.example.com` with an inline key set (a placeholder key), so a token
    /// outcome given in the request is accepted.
    static func engine(rules: String) -> PolicyEngine {
        Fixture.engine(
            Fixture.policy("p", rules: rules)
                + Fixture.requestAuthentication([
                    "{issuer: a, jwks: '{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}'}",
                    "{issuer: \"https://issuer.example.com\", jwks: '{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}'}",
                ]))
    }

    static func token(issuer: String, subject: String) -> AuthzRequest {
        AuthzRequest(
            source: AuthzRequest.Source(principal: "cluster.local/ns/ns1/sa/a"),
            destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080), method: "GET",
            host: "b.ns1", path: "/",
            jwt: JWTOutcome(
                present: true, valid: true,
                claims: .object(["iss": .string(issuer), "sub": .string(subject)]),
                requestPrincipal: "\(issuer)/\(subject)"))
    }

    /// The decision of both paths, which must agree.
    static func decide(_ engine: PolicyEngine, _ request: AuthzRequest) -> Decision.Verdict {
        let fast = engine.snapshot.evaluate(request)
        let traced = engine.snapshot.explain(request).decision
        #expect(fast == traced, "the fast path and the traced path disagree")
        return fast.decision
    }

    @Test(
        "requestPrincipals split the value at its last slash into an issuer and a subject pattern",
        arguments: [
            // (pattern, issuer, subject, allowed)
            ("a/sub1", "a", "sub1", true),
            ("a/sub1", "a", "x/sub1", false),
            ("*", "a", "x/sub1", true),
            ("*/sub1", "a", "sub1", true),
            ("*/sub1", "a", "x/sub1", false),
            ("*a/sub1", "a", "sub1", true),
            ("*a/sub1", "a", "x/sub1", false),
            ("*sub1", "a", "x/sub1", true),
            ("*sub1", "a", "sub2", false),
            ("a/*", "a", "anything/at/all", true),
            ("b/*", "a", "sub1", false),
            ("a/su*", "a", "sub1", true),
            ("a/su*", "a", "x-sub1", false),
            ("a*", "a", "sub1", true),
            ("https://issuer.example.com/*", "https://issuer.example.com", "u1", true),
            ("https://issuer.example.com/u1", "https://issuer.example.com", "u1", true),
            // Its last slash makes `https:/` the issuer and `issuer*` the subject prefix: no match.
            ("https://issuer*", "https://issuer.example.com", "u1", false),
            ("*.example.com/u1", "https://issuer.example.com", "u1", true),
        ])
    func requestPrincipals(pattern: String, issuer: String, subject: String, allowed: Bool) {
        let engine = Self.engine(rules: "  - from: [{source: {requestPrincipals: [\"\(pattern)\"]}}]")
        #expect(Self.decide(engine, Self.token(issuer: issuer, subject: subject)) == (allowed ? .allow : .deny))
    }

    @Test(
        "request.headers conditions on :authority, :method, :path and :scheme read the request's host, method, path and scheme, as Envoy's header matchers do",
        arguments: [
            // (key, values, method, host, path, allowed)
            (":authority", "[b.ns1]", "GET", "b.ns1", "/", true),
            // Only `hosts` ignores case; a header matcher on :authority does not.
            (":authority", "[b.ns1]", "GET", "B.ns1", "/", false),
            (":authority", "[\"*.ns1\"]", "GET", "b.ns1", "/", true),
            (":authority", "[\"*\"]", "GET", "b.ns1", "/", true),
            (":method", "[GET, HEAD]", "HEAD", "b.ns1", "/", true),
            (":method", "[GET]", "POST", "b.ns1", "/", false),
            // :path is the normalized path with its query, which `paths` leave out.
            (":path", "[/api]", "GET", "b.ns1", "/api", true),
            (":path", "[/api]", "GET", "b.ns1", "/api?x=1", false),
            (":path", "[\"/api?x=*\"]", "GET", "b.ns1", "/api?x=1", true),
            (":path", "[/api/b]", "GET", "b.ns1", "/api/./a/../b#frag", true),
            (":path", "[\"/api/b?q\"]", "GET", "b.ns1", "/api/a/../b?q#frag", true),
            // Envoy's connection manager sets :scheme on every request that lacks it.
            (":scheme", "[\"*\"]", "GET", "b.ns1", "/", true),
            (":scheme", "[ftp]", "GET", "b.ns1", "/", false),
            // Envoy's header map keeps Host as :authority, so `host` reads the host too.
            ("host", "[b.ns1]", "GET", "b.ns1", "/", true),
            ("host", "[\"other.*\"]", "GET", "b.ns1", "/", false),
        ])
    func pseudoHeaders(key: String, values: String, method: String, host: String, path: String, allowed: Bool) {
        let engine = Self.engine(rules: "  - when: [{key: \"request.headers[\(key)]\", values: \(values)}]")
        let request = Fixture.http(method: method, path: path, host: host)
        #expect(Self.decide(engine, request) == (allowed ? .allow : .deny), "\(key) \(values) \(method) \(host) \(path)")
    }

    @Test(
        "an HTTP/1.1 request's :scheme is its x-forwarded-proto when that is http or https, else the connection's, as Envoy sets it",
        arguments: [
            // (mtls, x-forwarded-proto, :scheme)
            (true, nil, "https"), (false, nil, "http"), (true, "http", "http"), (false, "https", "https"),
            (false, "HTTPS", "https"), (true, "ftp", "https"), (false, "", "http"),
        ] as [(Bool, String?, String)])
    func schemeFromForwardedProto(mtls: Bool, proto: String?, scheme: String) {
        let engine = Self.engine(rules: "  - when: [{key: \"request.headers[:scheme]\", values: [\"\(scheme)\"]}]")
        let request = AuthzRequest(
            transport: .http, source: mtls ? .init(principal: "cluster.local/ns/ns1/sa/a") : .init(mtls: false),
            destination: .init(namespace: "ns1", labels: ["app": "b"], port: 8080), method: "GET", host: "b.ns1", path: "/",
            headers: proto.map { ["x-forwarded-proto": $0] } ?? [:]
        ).withProxyHeaders(requestID: "id")
        #expect(Self.decide(engine, request) == .allow, "\(mtls) \(proto ?? "-")")
    }

    @Test("a DENY unless :authority or :method is listed lets the listed ones through; a header the request carries wins")
    func pseudoHeaderDeny() {
        let deny = Fixture.engine(
            Fixture.policy(
                "d", action: "DENY", rules: "  - when: [{key: \"request.headers[:authority]\", notValues: [b.ns1, \"b.ns1:8080\"]}]"))
        #expect(Self.decide(deny, Fixture.http(host: "b.ns1")) == .allow)
        #expect(Self.decide(deny, Fixture.http(host: "b.ns1:8080")) == .allow)
        #expect(Self.decide(deny, Fixture.http(host: "evil.example")) == .deny)
        #expect(Self.decide(deny, Fixture.http(host: "evil.example", headers: [":authority": "b.ns1"])) == .allow)
        let method = Fixture.engine(
            Fixture.policy("m", action: "DENY", rules: "  - when: [{key: \"request.headers[:method]\", notValues: [GET]}]"))
        #expect(Self.decide(method, Fixture.http(method: "GET")) == .allow)
        #expect(Self.decide(method, Fixture.http(method: "DELETE")) == .deny)
        // On TCP the HTTP condition is dropped and the DENY rule matches every connection, as Istio does.
        #expect(Self.decide(method, Fixture.tcp()) == .deny)
    }

    @Test("request.auth.principal conditions and notRequestPrincipals read the same split")
    func requestPrincipalConditions() {
        let condition = Self.engine(rules: "  - when: [{key: request.auth.principal, values: [\"*/sub1\"]}]")
        #expect(Self.decide(condition, Self.token(issuer: "a", subject: "sub1")) == .allow)
        #expect(Self.decide(condition, Self.token(issuer: "a", subject: "x/sub1")) == .deny)
        let negated = Self.engine(rules: "  - from: [{source: {notRequestPrincipals: [\"*/sub1\"]}}]")
        #expect(Self.decide(negated, Self.token(issuer: "a", subject: "x/sub1")) == .allow)
        #expect(Self.decide(negated, Self.token(issuer: "a", subject: "sub1")) == .deny)
    }

    @Test("the principal is split after the token's issuer, so an issuer URL's slashes and a subject's slashes stay apart")
    func issuerWithSlashes() {
        let issuer = "https://issuer.example.com"
        let anySubject = Self.engine(rules: "  - from: [{source: {requestPrincipals: [\"\(issuer)/*\"]}}]")
        #expect(Self.decide(anySubject, Self.token(issuer: issuer, subject: "team/u1")) == .allow)
        // Split at the last slash, the issuer would be https://issuer.example.com/team and this would match.
        let exactSubject = Self.engine(rules: "  - from: [{source: {requestPrincipals: [\"*/u1\"]}}]")
        #expect(Self.decide(exactSubject, Self.token(issuer: issuer, subject: "team/u1")) == .deny)
        #expect(Self.decide(exactSubject, Self.token(issuer: issuer, subject: "u1")) == .allow)
        #expect(RequestPrincipalPattern.issuerLength("\(issuer)/team/u1", issuer) == issuer.utf8.count)
        #expect(RequestPrincipalPattern.issuerLength("other/u1", issuer) == -1)
        #expect(RequestPrincipalPattern.parts(principal: "https://i.example/x/s", issuerLength: -1)! == ("https://i.example/x", "s"))
        #expect(RequestPrincipalPattern.parts(principal: "https://i.example/x/s", issuerLength: 17)! == ("https://i.example", "x/s"))
        #expect(RequestPrincipalPattern.parts(principal: "no-slash", issuerLength: -1)! == ("no-slash", ""))
    }

    @Test("* on a header, the host or the method matches a present header even when its value is empty")
    func headerPresence() {
        let header = Fixture.engine(
            Fixture.policy("p", rules: "  - when: [{key: \"request.headers[x-foo]\", values: [\"*\"]}]"))
        #expect(Self.decide(header, Fixture.http(headers: ["x-foo": ""])) == .allow)
        #expect(Self.decide(header, Fixture.http(headers: ["x-foo": "v"])) == .allow)
        #expect(Self.decide(header, Fixture.http()) == .deny)
        let host = Fixture.engine(Fixture.policy("p", rules: "  - to: [{operation: {hosts: [\"*\"]}}]"))
        #expect(Self.decide(host, Fixture.http(host: "")) == .allow)
        // Other attributes keep `*` as "any non-empty value": a principal must be there.
        let principal = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: [\"*\"]}}]"))
        #expect(Self.decide(principal, Fixture.http(principal: nil)) == .deny)
        #expect(Self.decide(principal, Fixture.http()) == .allow)
    }

    @Test("a service account without a namespace is the policy's namespace's")
    func shortServiceAccounts() {
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [\"a\"]}}]"))
        #expect(Self.decide(engine, Fixture.http(principal: "cluster.local/ns/ns1/sa/a")) == .allow)
        #expect(Self.decide(engine, Fixture.http(principal: "cluster.local/ns/ns2/sa/a")) == .deny)
        #expect(Self.decide(engine, Fixture.http(principal: "cluster.local/ns/ns1/sa/b")) == .deny)
        let condition = Fixture.engine(
            Fixture.policy("p", rules: "  - when: [{key: source.serviceAccount, notValues: [\"a\"]}]"))
        #expect(Self.decide(condition, Fixture.http(principal: "cluster.local/ns/ns1/sa/a")) == .deny)
        #expect(Self.decide(condition, Fixture.http(principal: "cluster.local/ns/ns2/sa/a")) == .allow)
    }

    @Test("namespaces are read from an Istio workload principal, never from what the source claims")
    func namespaceFromPrincipalOnly() {
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {namespaces: [\"ns1\"]}}]"))
        func request(_ principal: String?) -> AuthzRequest {
            AuthzRequest(
                source: AuthzRequest.Source(principal: principal, namespace: "ns1"),
                destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080),
                method: "GET", host: "b.ns1", path: "/")
        }
        #expect(Self.decide(engine, request("cluster.local/ns/ns1/sa/a")) == .allow)
        #expect(Self.decide(engine, request("example.org/custom/id")) == .deny)
        #expect(Self.decide(engine, request(nil)) == .deny)
    }
}

@Suite("service account validation")
struct ServiceAccountValidationTests {
    static func errors(_ values: [String]) -> [Diagnostic] {
        let list = values.map { "\"\($0)\"" }.joined(separator: ", ")
        let yaml = Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [\(list)]}}]")
        let loaded = PolicyLoader.load(yaml: yaml, file: "sa.yaml")
        return (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.severity == .error }
    }

    @Test("name and namespace/name are accepted", arguments: [["a"], ["ns1/a"], ["a", "ns2/b"]])
    func accepted(values: [String]) {
        #expect(Self.errors(values).isEmpty)
    }

    @Test(
        "more than one slash, an empty part, a wildcard or more than 320 characters are refused with the field named",
        arguments: [["ns/a/b"], ["/a"], ["ns/"], ["ns1/*"], [String(repeating: "x", count: 321)]])
    func refused(values: [String]) throws {
        let error = try #require(Self.errors(values).first)
        #expect(error.code == .badServiceAccount)
        #expect(error.field == "spec.rules[0].from[0].source.serviceAccounts[0]")
        #expect(!error.fix.isEmpty)
    }

    @Test("source.serviceAccount conditions follow the same rules, and a CUSTOM policy may not use them")
    func conditions() throws {
        func diagnostics(_ values: [String], action: String = "ALLOW") -> [Diagnostic] {
            let list = values.map { "\"\($0)\"" }.joined(separator: ", ")
            let yaml = Fixture.policy(
                "p", action: action, rules: "  - when: [{key: source.serviceAccount, notValues: [\(list)]}]")
            let loaded = PolicyLoader.load(yaml: yaml, file: "sa.yaml")
            return (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.severity == .error }
        }
        #expect(diagnostics(["a", "ns2/b"]).isEmpty)
        let error = try #require(diagnostics(["ns/a/b"]).first)
        #expect(error.code == .badServiceAccount)
        #expect(error.field == "spec.rules[0].when[0].notValues[0]")
        #expect(diagnostics((1...17).map { "sa\($0)" }).map(\.code) == [.badServiceAccount])
        let custom = diagnostics(["a"], action: "CUSTOM").map(\.code)
        #expect(custom.contains(.unsupportedWithCustom))
    }

    @Test("at most 16 service accounts in one field")
    func tooMany() {
        #expect(Self.errors((1...16).map { "sa\($0)" }).isEmpty)
        #expect(Self.errors((1...17).map { "sa\($0)" }).map(\.code) == [.badServiceAccount])
    }
}

/// Paths with `{*}`/`{**}` templates, checked as Istio's webhook checks `paths` and `notPaths`.
/// Cases from TestCheckValidPathTemplate and TestIsValidLiteral in istio/istio
/// pkg/config/security/security_test.go (the outcome only; the messages are Rampart's).
@Suite("path template validation")
struct PathTemplateValidationTests {
    static func errors(_ path: String, field: String = "paths") -> [Diagnostic] {
        let yaml = Fixture.policy("p", rules: "  - to: [{operation: {\(field): [\"\(path)\"]}}]")
        let loaded = PolicyLoader.load(yaml: yaml, file: "paths.yaml")
        return (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.severity == .error }
    }

    @Test(
        "whole-segment operators with literal segments are accepted",
        arguments: [
            "/{*}/foo", "/{*}/foo/", "/foo/{**}/bar", "/foo/bar/{**}", "/{*}/{*}/x", "/a/{*}/b/{**}",
            "/v1/{*}/-._~%20!$&'()+,;:@=", "/plain/path", "/prefix*", "*suffix", "/a*b",
        ])
    func accepted(path: String) {
        #expect(Self.errors(path).isEmpty)
        #expect(Self.errors(path, field: "notPaths").isEmpty)
    }

    @Test(
        "misplaced operators, named variables, stray braces and non-literal characters are refused",
        arguments: [
            "/foo/{**}buzz/bar", "/{*}/foo/{}/bar", "/foo/{*}/bar/*", "/foo/{*}/bar/**/buzz", "/foo/{buzz}/bar",
            "/{buzz}", "/foo/{buzz}/bar/{**}", "/foo/{buzz=*}/bar/{**}", "/{*}/foo/{buzz=**}/bar",
            "/{*}/foo/{**}bar", "/{*}/foo/{*}.txt", "/{*}/foo/{temp", "/{*}/foo/temp}/bar", "/{*}/foo/temp}/*",
            "/{**}/foo/temp/{*}/bar", "/{**}/{**}", "/{**}/foo/temp/{**}/bar", "/{*}/foo/?abc", "/{*}/ab*c",
            "/{*}/a b", "/a//{*}", "/x/{y}",
        ])
    func refused(path: String) throws {
        for field in ["paths", "notPaths"] {
            let error = try #require(Self.errors(path, field: field).first)
            #expect(error.code == .badPathTemplate)
            #expect(error.field == "spec.rules[0].to[0].operation.\(field)[0]")
            #expect(error.message.contains(path))
            #expect(!error.fix.isEmpty)
        }
    }
}

/// `serviceAccounts` against SPIFFE IDs that are not Istio workload IDs, matched with the regex
/// Istio's generator builds (`spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`,
/// pilot/pkg/security/authz/model/generator.go serviceAccountRegex).
@Suite("service accounts in other SPIFFE IDs")
struct ServiceAccountRegexTests {
    @Test(
        "extra segments between the namespace and sa, and after the name, still match; partial names do not",
        arguments: [
            ("cluster.local/ns/ns1/sa/a", true), ("cluster.local/ns/ns1/sa/a/extra", true),
            ("cluster.local/ns/ns1/x/y/sa/a", true), ("td/with/slashes/ns/ns1/sa/a", true),
            ("cluster.local/ns/ns1/sa/a/", false), ("cluster.local/ns/ns1/sa/ab", false),
            ("cluster.local/ns/ns1/xsa/a", false), ("cluster.local/ns/ns2/sa/a", false),
            ("cluster.local/ns/ns1x/sa/a", false), ("cluster.local/ns/ns1/sa", false),
        ])
    func regex(principal: String, matches: Bool) {
        let pattern = ServiceAccountPattern("ns1/a")
        #expect(pattern?.matches(principal: principal) == matches)
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [ns1/a]}}]"))
        #expect(IstioValueSemanticsTests.decide(engine, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
        let negated = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: "  - when: [{key: source.serviceAccount, notValues: [a]}]"))
        #expect(IstioValueSemanticsTests.decide(negated, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
    }
}

/// Values Istio puts into regexes unescaped: a `.` in a `serviceAccounts` value or after the `*`
/// of a wildcard-prefixed principal stands for any one character (generator.go's
/// serviceAccountRegex; matcher/string.go's StringMatcherWithPrefix, `spiffe://.*<suffix>`).
/// Exact and `prefix*` principals are compared literally, as Envoy's exact and prefix matchers are.
@Suite("regex dots in identities")
struct RegexDotTests {
    @Test(
        "a service account's dots match any character, in Istio workload IDs and in other IDs alike",
        arguments: [
            ("cluster.local/ns/ns1/sa/build-bot", true), ("cluster.local/ns/ns1/sa/build.bot", true),
            ("cluster.local/ns/ns1/sa/buildXbot", true), ("cluster.local/ns/ns1/x/sa/build_bot", true),
            ("cluster.local/ns/ns1/sa/buildbot", false), ("cluster.local/ns/ns1/sa/build--bot", false),
            ("cluster.local/ns/ns2/sa/build-bot", false),
        ])
    func serviceAccounts(principal: String, denied: Bool) {
        let deny = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {serviceAccounts: [\"ns1/build.bot\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(deny, Fixture.http(principal: principal)) == (denied ? .deny : .allow))
        let condition = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: "  - when: [{key: source.serviceAccount, values: [\"ns1/build.bot\"]}]"))
        #expect(IstioValueSemanticsTests.decide(condition, Fixture.http(principal: principal)) == (denied ? .deny : .allow))
    }

    @Test(
        "a wildcard-prefixed principal's dots match any character; exact and prefix principals are literal",
        arguments: [
            // (pattern, principal, matches)
            ("*cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/b", true),
            ("*cluster.local/ns/a/sa/b", "clusterXlocal/ns/a/sa/b", true),
            ("*cluster.local/ns/a/sa/b", "td/clusterXlocal/ns/a/sa/b", true),
            ("*cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/c", false),
            ("*.local/ns/a/sa/b", "x-local/ns/a/sa/b", true),
            ("*.local/ns/a/sa/b", "local/ns/a/sa/b", false),
            ("*/sa/b", "cluster.local/ns/a/sa/b", true),
            ("cluster.local/ns/a/sa/b", "clusterXlocal/ns/a/sa/b", false),
            ("cluster.local/*", "clusterXlocal/ns/a/sa/b", false),
        ])
    func principals(pattern: String, principal: String, matches: Bool) {
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: [\"\(pattern)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(allow, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
        let notPrincipals = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {notPrincipals: [\"\(pattern)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(notPrincipals, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
        let condition = Fixture.engine(Fixture.policy("p", rules: "  - when: [{key: source.principal, values: [\"\(pattern)\"]}]"))
        #expect(IstioValueSemanticsTests.decide(condition, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
    }
}

/// The rest of a wildcard-prefixed principal holding other regex operators is matched as the
/// regular expression Istio makes of it, `spiffe://.*<rest>` (matcher/string.go's
/// StringMatcherWithPrefix), by both evaluation paths.
@Suite("regex operators in principals and namespaces")
struct PrincipalRegexTests {
    @Test(
        "a wildcard-prefixed principal's rest is a regular expression: * repeats, | chooses, [] is a class",
        arguments: [
            // (pattern, principal, matches)
            ("*/ns/ns1/*", "td/ns/ns1", true),
            ("*/ns/ns1/*", "td/ns/ns1//", true),
            ("*/ns/ns1/*", "td/ns/ns1/sa/a", false),
            ("*/ns/ns1/*", "td/ns/ns1x", false),
            ("*a*b", "cluster.local/ns/x/sa/b", true),
            ("*a*b", "cluster.local/ns/x/sa/c", false),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/a", true),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/b", true),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/c", false),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/ab", false),
            ("*/sa/x+", "cluster.local/ns/x/sa/xxx", true),
            ("*/sa/x+", "cluster.local/ns/x/sa/", false),
            ("*/sa/[ab]-api", "cluster.local/ns/x/sa/b-api", true),
            ("*/sa/[ab]-api", "cluster.local/ns/x/sa/c-api", false),
            ("*/ns/x/sa/a?", "cluster.local/ns/x/sa/", true),
            ("*/ns/x/sa/a?", "cluster.local/ns/x/sa/aa", false),
            // Without operators the suffix stays a suffix.
            ("*/sa/a", "cluster.local/ns/x/sa/a", true),
        ])
    func principals(pattern: String, principal: String, matches: Bool) {
        Self.expectEveryForm("principals", key: "source.principal", value: pattern, principal: principal, matches: matches)
    }

    /// An ALLOW on `field`, a DENY on its `not` form and an ALLOW on the `when` `key`, each holding
    /// `value`, decide a request from `principal` as `matches` says (both evaluation paths).
    static func expectEveryForm(_ field: String, key: String, value: String, principal: String, matches: Bool) {
        let negated = "not" + field.prefix(1).uppercased() + field.dropFirst()
        let request = Fixture.http(principal: principal)
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {\(field): [\"\(value)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(allow, request) == (matches ? .allow : .deny), "\(field) \(value) \(principal)")
        let deny = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {\(negated): [\"\(value)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(deny, request) == (matches ? .allow : .deny), "\(negated) \(value) \(principal)")
        let condition = Fixture.engine(Fixture.policy("p", rules: "  - when: [{key: \(key), values: [\"\(value)\"]}]"))
        #expect(IstioValueSemanticsTests.decide(condition, request) == (matches ? .allow : .deny), "\(key) \(value) \(principal)")
    }

    @Test(
        "a namespace value's operators other than * are regex operators: . is any character, + repeats, | chooses",
        arguments: [
            // (value, principal, matches), as Python's re.fullmatch reads .*/ns/<value>/.* against spiffe://<principal>
            ("team.*", "cluster.local/ns/team-a/sa/x", true),
            // `.` may be the slash after `team`, and `.*` the service account.
            ("team.*", "cluster.local/ns/team/sa/x", true),
            ("team.*", "cluster.local/ns/tea/sa/x", false),
            ("team.*", "td/ns/team", false),
            ("*.prod", "cluster.local/ns/a-prod/sa/x", true),
            ("*.prod", "cluster.local/ns/prod/sa/x", false),
            ("a+", "cluster.local/ns/aaa/sa/x", true),
            ("a+", "cluster.local/ns/b/sa/x", false),
            ("(a|b)", "cluster.local/ns/b/sa/x", true),
            ("(a|b)", "cluster.local/ns/c/sa/x", false),
            ("ns.1", "cluster.local/ns/ns-1/sa/x", true),
            ("ns.1", "cluster.local/ns/ns1/sa/x", false),
        ])
    func namespaces(value: String, principal: String, matches: Bool) {
        Self.expectEveryForm("namespaces", key: "source.namespace", value: value, principal: principal, matches: matches)
    }

    @Test(
        "a service account's regex operators are operators, as generator.go's serviceAccountRegex leaves them unescaped",
        arguments: [
            // (value, principal, matches), as Python's re.fullmatch reads spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?
            ("ns1/a+", "cluster.local/ns/ns1/sa/aa", true),
            ("ns1/a+", "cluster.local/ns/ns1/sa/b", false),
            ("ns1/(a|b)", "cluster.local/ns/ns1/sa/b", true),
            ("ns1/[ab]", "cluster.local/ns/ns1/sa/a", true),
            ("ns1/[ab]", "cluster.local/ns/ns1/sa/c", false),
            ("ns1/a?", "cluster.local/ns/ns1/sa/", true),
            ("b+/a", "cluster.local/ns/bb/sa/a", true),
            ("ns1/a+", "cluster.local/ns/ns1/x/sa/aa/extra", true),
        ])
    func serviceAccounts(value: String, principal: String, matches: Bool) {
        Self.expectEveryForm("serviceAccounts", key: "source.serviceAccount", value: value, principal: principal, matches: matches)
    }

    @Test("service accounts with regex operators are warned of, and refused when RE2 cannot compile them")
    func serviceAccountValidation() {
        let found = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [\"ns1/a+\", \"b(\", ok]}}]"))
        #expect(found.contains { $0.code == .principalRegex && $0.field.hasSuffix("serviceAccounts[0]") }, "\(found)")
        #expect(found.contains { $0.code == .badPrincipalRegex && $0.severity == .error && $0.field.hasSuffix("serviceAccounts[1]") }, "\(found)")
        #expect(!found.contains { $0.field.hasSuffix("serviceAccounts[2]") }, "\(found)")
    }

    @Test("namespace values with regex operators are warned of, and refused when RE2 cannot compile them; a * inside one is no literal")
    func namespaceValidation() {
        let warned = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {namespaces: [\"team.*\", \"a+\"]}}]"))
        #expect(warned.filter { $0.code == .principalRegex }.count == 2, "\(warned)")
        #expect(warned.contains { $0.message.contains(".*/ns/team..*/.*") }, "\(warned)")
        let refused = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - when: [{key: source.namespace, values: [\"x(\"]}]"))
        #expect(refused.contains { $0.code == .badPrincipalRegex && $0.severity == .error && $0.field.hasSuffix("values[0]") }, "\(refused)")
        let inner = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - when: [{key: source.namespace, values: [\"a*b\"]}]"))
        #expect(!inner.contains { $0.code == .literalWildcard || $0.code == .principalRegex }, "\(inner)")
        #expect(!NamespacePattern("x(").matches(principal: "cluster.local/ns/x(/sa/a"))
    }

    @Test("a suffix RE2 would refuse is an error of its own and matches nothing; one it compiles is a warning that names the expression")
    func validation() {
        func found(_ values: String, field: String = "principals") -> [Diagnostic] {
            SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {\(field): \(values)}}]"))
        }
        for bad in ["\"*/ns/(x\"", "\"*/sa/(?=x)\"", "\"*/sa/(a)\\\\1\"", "\"*/sa/a*+\""] {
            let diagnostics = found("[\(bad)]")
            #expect(diagnostics.contains { $0.code == .badPrincipalRegex && $0.severity == .error && $0.field.hasSuffix("principals[0]") }, "\(bad): \(diagnostics)")
        }
        let warned = found("[\"*/ns/ns1/*\", \"*a*b\", \"*/sa/(a|b)\"]", field: "notPrincipals")
        #expect(warned.filter { $0.code == .principalRegex && $0.severity == .warning }.count == 3, "\(warned)")
        #expect(warned.contains { $0.message.contains("spiffe://.*/ns/ns1/*") && $0.message.contains("repeats") })
        // The RP062 warning ("matched literally") would be wrong for them.
        #expect(!warned.contains { $0.code == .literalWildcard }, "\(warned)")
        let condition = SchemaParityTests.diagnostics(
            Fixture.policy("p", rules: "  - when: [{key: source.principal, values: [\"*/sa/x+\"]}]"))
        #expect(condition.contains { $0.code == .principalRegex && $0.field.hasSuffix("when[0].values[0]") }, "\(condition)")
        for sound in ["\"*/sa/a\"", "\"*.local/ns/a/sa/b\"", "\"cluster.local/ns/a/*\"", "\"*\""] {
            #expect(!found("[\(sound)]").contains { $0.code == .principalRegex || $0.code == .badPrincipalRegex }, "\(sound)")
        }
        #expect(!StringMatcher.principal("*/ns/(x").matches("td/ns/(x"))
    }

    @Test(
        "RE2's reading, not Swift's: a { that starts no repetition is literal, \\pL is a class, \\C any byte, ] first in a class literal",
        arguments: [
            // (pattern as written in single-quoted YAML, principal, matches)
            ("*/ns/ns1/sa/a{,1}", "td/ns/ns1/sa/a", false),
            ("*/ns/ns1/sa/a{,1}", "td/ns/ns1/sa/a{,1}", true),
            ("*/ns/ns1/sa/a{2}", "td/ns/ns1/sa/aa", true),
            (#"*/sa/\pL"#, "td/ns/x/sa/b", true),
            (#"*/sa/\pL"#, "td/ns/x/sa/1", false),
            (#"*/sa/\C"#, "td/ns/x/sa/b", true),
            ("*/sa/[]a]", "td/ns/x/sa/a", true),
            ("*/sa/[]a]", "td/ns/x/sa/b", false),
            ("*/sa/(?i)A", "td/ns/x/sa/a", true),
            (#"*/sa/\p{Lu}"#, "td/ns/x/sa/A", true),
            (#"*/sa/\p{^Lu}"#, "td/ns/x/sa/A", false),
            (#"*/sa/\x{41}"#, "td/ns/x/sa/A", true),
            (#"*/sa/\x41"#, "td/ns/x/sa/A", true),
        ])
    func re2Syntax(pattern: String, principal: String, matches: Bool) {
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: ['\(pattern)']}}]"))
        #expect(IstioValueSemanticsTests.decide(allow, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
    }

    @Test("what RE2 refuses is refused: \\Z, counts above 1000, unknown flags, \\x without two hex digits, possessive forms")
    func re2Refusals() {
        for pattern in [
            #"*/sa/\Z"#, "*/sa/a{1001}", "*/sa/(?x)a", #"*/sa/\x4"#, "*/sa/a{1,2}+", "*/sa/a{3,1}", "*/sa/(?<=a)b", "**", "*/sa/a+*",
            "*/sa/a*{2}",
        ] {
            let found = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {principals: ['\(pattern)']}}]"))
            #expect(found.contains { $0.code == .badPrincipalRegex && $0.severity == .error }, "\(pattern): \(found)")
        }
        #expect(PatternRegex.problem(PatternRegex.expression(suffix: "/sa/a{1000}")) == nil)
        #expect(PatternRegex.problem(PatternRegex.expression(suffix: "/sa/a*?b")) == nil, "a lazy repetition is one")
    }

    @Test("explain names the regular expression a principal was read as")
    func explain() {
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: [\"*/ns/ns1/*\"]}}]"))
        let (decision, trace) = engine.snapshot.explain(Fixture.http(principal: "td/ns/ns1/sa/a"))
        #expect(decision.decision == .deny)
        let messages = trace.steps.flatMap { $0.rules.flatMap { $0.failures.map(\.message) } }
        #expect(messages.contains { $0.contains("regular expression spiffe://.*/ns/ns1/*") }, "\(messages)")
    }
}

/// The headers a sidecar sets before its policies read a request, as `authz check` gives them.
@Suite("headers the proxy sets")
struct ProxyHeaderTests {
    @Test("a request is given the headers a sidecar sets before its policies: x-request-id, x-forwarded-proto, x-forwarded-client-cert")
    func proxyHeaders() {
        let plain = AuthzRequest(
            transport: .http, source: .init(mtls: false), destination: .init(namespace: "ns1", labels: [:], port: 80),
            method: "GET", host: "b", path: "/",
            headers: ["x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/ns1/sa/admin", "x-forwarded-proto": "https"])
        let seen = plain.withProxyHeaders(requestID: "id-1")
        #expect(seen.headers["x-request-id"] == "id-1")
        // The client's x-forwarded-proto is kept, as a sidecar's Envoy keeps it; one is set when absent.
        #expect(seen.headers["x-forwarded-proto"] == "https")
        let unclaimed = AuthzRequest(
            transport: .http, source: .init(mtls: false), destination: .init(namespace: "ns1", labels: [:], port: 80),
            method: "GET", host: "b", path: "/")
        #expect(unclaimed.withProxyHeaders(requestID: "id-0").headers["x-forwarded-proto"] == "http")
        #expect(seen.headers["x-forwarded-client-cert"] == nil)
        // Over mTLS the peer's element is appended; an x-request-id the request has is kept.
        let mutual = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: [:], port: 80),
            method: "GET", host: "b", path: "/", headers: ["x-request-id": "given", "x-forwarded-client-cert": "URI=spiffe://x"])
        let forwarded = mutual.withProxyHeaders(requestID: "id-2")
        #expect(forwarded.headers["x-request-id"] == "given")
        #expect(forwarded.headers["x-forwarded-proto"] == "https")
        // The element names the destination (By, its default service account when the request file
        // gives no destination.principal), as the sidecar's own does.
        #expect(
            forwarded.headers["x-forwarded-client-cert"]
                == #"URI=spiffe://x,By=spiffe://cluster.local/ns/ns1/sa/default;Subject="";URI=spiffe://cluster.local/ns/ns1/sa/a"#)
        let named = AuthzRequest(
            transport: .http, source: .init(principal: "td/ns/ns1/sa/a"),
            destination: .init(namespace: "ns1", labels: [:], port: 80, principal: "td/ns/ns1/sa/reviews"), method: "GET", host: "b", path: "/")
        #expect(named.withProxyHeaders(requestID: "id", trustDomain: "td").headers["x-forwarded-client-cert"] == #"By=spiffe://td/ns/ns1/sa/reviews;Subject="";URI=spiffe://td/ns/ns1/sa/a"#)
        #expect(
            AuthzRequest(
                transport: .http, source: .init(principal: "td/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: [:], port: 80),
                method: "GET", host: "b", path: "/"
            ).withProxyHeaders(requestID: "id", trustDomain: "td").headers["x-forwarded-client-cert"]?.hasPrefix("By=spiffe://td/ns/ns1/sa/default;") == true)
        // A policy on the forged header no longer matches a plaintext request.
        let engine = IstioValueSemanticsTests.engine(rules: "  - when: [{key: \"request.headers[x-forwarded-client-cert]\", values: [\"*sa/admin\"]}]")
        #expect(IstioValueSemanticsTests.decide(engine, plain) == .allow)
        #expect(IstioValueSemanticsTests.decide(engine, seen) == .deny)
        // TCP has no headers to set.
        let tcp = Fixture.tcp()
        #expect(tcp.withProxyHeaders(requestID: "id-3").headers.isEmpty)
    }

    static func seen(_ headers: [String: String], mtls: Bool = true) -> [String: String] {
        AuthzRequest(
            transport: .http, source: mtls ? .init(principal: "cluster.local/ns/ns1/sa/a") : .init(mtls: false),
            destination: .init(namespace: "ns1", labels: [:], port: 80), method: "GET", host: "b", path: "/", headers: headers
        ).withProxyHeaders(requestID: "id").headers
    }

    @Test(
        "a referer Envoy finds invalid is gone before the policies read the request: not a URL or relative reference, with user information or a fragment, or sent twice",
        arguments: [
            // Envoy's own vectors (test/common/http/utility_test.cc, isValidRefererValue).
            ("http://www.example.com", true), ("http://www.example.com/foo?bar=xyz", true), ("/resource.html", true),
            ("resource.html", true), ("foo/bar/resource.html", true), ("mal  formed/path/resource.html", false),
            ("htp:/www.malformed.com", false), ("http://www.example.com/?foo=bar#fragment", false), ("foo=bar#fragment", false),
            // And others: an absolute URL as http_parser reads one, else a relative reference.
            ("https://example.com:8443/a?b=c", true), ("http://[::1]:8080/x", true), ("/relative/path?x=1", true), ("a/b:c", true),
            ("", true), ("not a url", false), ("/a#fragment", false), ("https://user:pw@example.com/", false),
            ("https://example.com/a b", false), ("https://exa mple.com/", false), ("http://example.com:99999/", false),
            ("about:blank", false), ("mailto:someone", false), (":x", false), ("/x y", false), ("http:///path", false),
            // http_parser marks a fragment or user information only when it is not empty.
            ("http://h/p#", true), ("http://h/?#", true), ("http://@h/p", true),
        ])
    func referer(value: String, kept: Bool) {
        #expect(Self.seen(["referer": value])["referer"] == (kept ? value : nil), "\(value)")
        #expect(ConnectionManagerHeaders.isValidReferer(value) == kept)
    }

    @Test("a referer sent twice is gone, as Envoy removes it; a DENY on its presence then lets the request through")
    func repeatedReferer() {
        let twice = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: ["app": "b"], port: 80),
            method: "GET", host: "b", path: "/", headers: ["referer": "/a,/b"], repeatedHeaders: ["referer": ["/a", "/b"]])
        #expect(twice.withProxyHeaders(requestID: "id").headers["referer"] == nil)
        let engine = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - when: [{key: \"request.headers[referer]\", values: [\"*\"]}]"))
        #expect(IstioValueSemanticsTests.decide(engine, twice) == .deny, "the request as written carries it")
        #expect(IstioValueSemanticsTests.decide(engine, twice.withProxyHeaders(requestID: "id")) == .allow)
    }

    @Test("hop-by-hop headers are gone before the policies read the request, unless it asks for an upgrade; te only as trailers")
    func hopByHop() {
        let seen = Self.seen([
            "connection": "keep-alive", "keep-alive": "timeout=5", "proxy-connection": "keep-alive", "transfer-encoding": "chunked",
            "upgrade": "h2c", "te": "gzip", "x-kept": "1",
        ])
        for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"] {
            #expect(seen[name] == nil, "\(name)")
        }
        #expect(seen["x-kept"] == "1")
        #expect(Self.seen(["te": "gzip, trailers;q=0.5"])["te"] == "trailers")
        let upgrade = Self.seen(["connection": "keep-alive, Upgrade", "upgrade": "websocket", "keep-alive": "1"])
        #expect(upgrade["connection"] == "keep-alive, Upgrade" && upgrade["upgrade"] == "websocket" && upgrade["keep-alive"] == nil)
        // Without an upgrade header, `connection: upgrade` asks for nothing and is removed.
        #expect(Self.seen(["connection": "upgrade"])["connection"] == nil)

        // A DENY on a hop-by-hop header's presence no longer sees it, as Envoy's RBAC does not.
        let engine = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - when: [{key: \"request.headers[keep-alive]\", values: [\"*\"]}]"))
        let request = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: ["app": "b"], port: 80),
            method: "GET", host: "b", path: "/", headers: ["keep-alive": "timeout=5"])
        #expect(IstioValueSemanticsTests.decide(engine, request) == .deny)
        #expect(IstioValueSemanticsTests.decide(engine, request.withProxyHeaders(requestID: "id")) == .allow)
    }

    @Test("header values and the host lose the spaces and tabs around them before the policies read them")
    func paddedValues() {
        #expect(FieldValue.trimmed(" \tyes \t") == "yes")
        #expect(FieldValue.trimmed("a b") == "a b")
        #expect(FieldValue.trimmed(" \t ") == "")
        #expect(!FieldValue.isPadded("") && !FieldValue.isPadded("a b") && FieldValue.isPadded("a\t"))
        let engine = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: """
                  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
                  - to: [{operation: {hosts: ["forbidden.example"]}}]
                """))
        func request(host: String = "b", headers: [String: String] = [:], repeated: [String: [String]] = [:]) -> AuthzRequest {
            AuthzRequest(
                transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"),
                destination: .init(namespace: "ns1", labels: ["app": "b"], port: 80), method: "GET", host: host, path: "/",
                headers: headers, repeatedHeaders: repeated
            ).withProxyHeaders(requestID: "id")
        }
        for padded in ["yes ", "yes\t", " yes", "yes \t "] {
            #expect(request(headers: ["x-block": padded]).headers["x-block"] == "yes")
            #expect(IstioValueSemanticsTests.decide(engine, request(headers: ["x-block": padded])) == .deny, "\(padded)")
        }
        #expect(IstioValueSemanticsTests.decide(engine, request(headers: ["x-block": "no "])) == .allow)
        #expect(IstioValueSemanticsTests.decide(engine, request(host: "forbidden.example ")) == .deny)
        let both = request(headers: ["x-tag": "a ,b"], repeated: ["x-tag": ["a ", " b"]])
        #expect(both.repeatedHeaders["x-tag"] == ["a", "b"])
    }

    @Test("the proxy's quick filter passes every header name the connection manager treats, in any case")
    func quickFilter() {
        let treated = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "x-envoy-internal"]
            + ConnectionManagerHeaders.internalOnly.sorted()
        for name in treated {
            for spelling in [name, name.uppercased(), name.prefix(1).uppercased() + name.dropFirst()] {
                #expect(ConnectionManagerHeaders.mayTreat(spelling.lowercased()) && ConnectionManagerHeaders.mayTreatIgnoringCase(spelling), "\(spelling)")
            }
        }
        for name in ["accept", "x-request-id", "x-forwarded-for", "authorization", "user-agent", "x-envoy-attempt-count"] {
            #expect(!ConnectionManagerHeaders.mayTreat(name), "\(name)")
        }
        #expect(!ConnectionManagerHeaders.mayTreatIgnoringCase("x-request-id") && !ConnectionManagerHeaders.mayTreatIgnoringCase("authorization"))
    }

    @Test("x-envoy-internal is always removed; Envoy's request-control headers only an internal request keeps")
    func envoyInternalHeaders() {
        let control = ["x-envoy-retry-on": "5xx", "x-envoy-upstream-rq-timeout-ms": "1", "x-envoy-original-url": "http://a/", "x-envoy-internal": "true",
            "x-envoy-decorator-operation": "op"]
        let external = Self.seen(control)
        #expect(external["x-envoy-retry-on"] == nil && external["x-envoy-upstream-rq-timeout-ms"] == nil && external["x-envoy-original-url"] == nil)
        #expect(external["x-envoy-internal"] == nil)
        // Only an edge proxy removes the decorator operation.
        #expect(external["x-envoy-decorator-operation"] == "op")
        for (forwardedFor, isInternal) in [
            ("10.1.2.3", true), ("172.20.0.1", true), ("192.168.1.1", true), ("127.0.0.1", true), ("fd00::1", true), ("::1", true),
            ("8.8.8.8", false), ("172.32.0.1", false), ("10.0.0.1, 10.0.0.2", false), ("fe80::1", false), ("bogus", false),
        ] {
            var headers = control
            headers["x-forwarded-for"] = forwardedFor
            let seen = Self.seen(headers)
            #expect((seen["x-envoy-retry-on"] == "5xx") == isInternal, "\(forwardedFor)")
            #expect(seen["x-envoy-internal"] == nil, "\(forwardedFor)")
        }
    }
}
