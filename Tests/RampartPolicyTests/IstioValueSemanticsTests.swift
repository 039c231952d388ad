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
        "hosts fold ASCII case only, as Envoy's ignore_case compares: a Kelvin sign or a dotted capital I is not a k or an i",
        arguments: [
            // (policy host, request host, allowed)
            ("k.example.com", "K.EXAMPLE.COM", true),
            ("K.Example.com", "k.example.com", true),
            ("\u{212A}.example.com", "k.example.com", false),
            ("\u{212A}.example.com", "K.example.com", false),
            ("k.example.com", "\u{212A}.EXAMPLE.COM", false),
            ("\u{212A}.example.com", "\u{212A}.EXAMPLE.com", true),
            ("\u{130}nfo.example.com", "info.example.com", false),
            ("*.\u{130}NFO.com", "a.\u{130}nfo.com", true),
            ("caf\u{C9}.com", "CAF\u{C9}.COM", true),
            ("caf\u{C9}.com", "caf\u{E9}.com", false),
        ])
    func hostsFoldASCII(policy: String, host: String, allowed: Bool) {
        let engine = Self.engine(rules: "  - to: [{operation: {hosts: [\"\(policy)\"]}}]")
        #expect(Self.decide(engine, Fixture.http(method: "GET", path: "/", host: host)) == (allowed ? .allow : .deny), "\(policy) against \(host)")
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
