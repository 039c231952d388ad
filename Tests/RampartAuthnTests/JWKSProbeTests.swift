import Foundation
import RampartAuthn
import RampartPolicy
import Testing

@Suite("JWKS probe for checks without a proxy")
struct JWKSProbeTests {
    static let jwks = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"AAAA","y":"AAAA"}]}"#

    private func rule(_ uri: String, jwks: String = "", timeout: Double? = nil) -> JWTRule {
        JWTRule(issuer: "https://issuer.example.com", jwksURI: uri, jwks: jwks, timeoutMilliseconds: timeout)
    }

    @Test("a URI that answers a JWKS is reachable; one that fails, or answers something else, is not")
    func fetchedOutcomes() async {
        let fetcher = ScriptedFetcher()
        fetcher.serve("https://keys.example.com/good", Self.jwks)
        fetcher.serve("https://keys.example.com/html", "<html>not keys</html>")
        // The X.509 form: each kid mapped to a PEM certificate.
        fetcher.serve("https://keys.example.com/x509", #"{"k1": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}"#)
        fetcher.serve("https://keys.example.com/strings", #"{"k1": "not a certificate"}"#)
        fetcher.fail("https://keys.example.com/down")
        let environment = await JWKSProbe.environment(
            rules: [
                rule("https://keys.example.com/good"), rule("https://keys.example.com/html"), rule("https://keys.example.com/down"),
                rule("https://keys.example.com/missing"), rule("https://keys.example.com/x509"),
                rule("https://keys.example.com/strings"),
            ],
            fetcher: fetcher)
        #expect(environment.reachable("https://keys.example.com/good", within: 5000))
        #expect(environment.reachable("https://keys.example.com/x509", within: 5000))
        #expect(!environment.reachable("https://keys.example.com/strings", within: 5000))
        // Each failure keeps its own reason, for the 401 to give.
        #expect(environment.problem("https://keys.example.com/down", within: 5000)?.contains("answered HTTP 503") == true)
        #expect(environment.problem("https://keys.example.com/html", within: 5000)?.contains("holds no key") == true)
        #expect(environment.problem("https://keys.example.com/good", within: 5000) == nil)
        #expect(JWKSEnvironment(states: ["u": .latency(2000)]).problem("u", within: 1000) == "u answered after 2 s, past the rule's timeout of 1 s")
        #expect(!environment.reachable("https://keys.example.com/html", within: 5000))
        #expect(!environment.reachable("https://keys.example.com/down", within: 5000))
        #expect(!environment.reachable("https://keys.example.com/missing", within: 5000))
    }

    @Test("a URI that answers is fetched once; inline keys are not fetched")
    func fetchesOnce() async {
        let fetcher = ScriptedFetcher()
        fetcher.serve("https://keys.example.com/a", Self.jwks)
        let environment = await JWKSProbe.environment(
            rules: [
                rule("https://keys.example.com/a", timeout: 10), rule("https://keys.example.com/a", timeout: 2000),
                rule("https://keys.example.com/inline", jwks: Self.jwks),
            ],
            fetcher: fetcher)
        #expect(fetcher.calls("https://keys.example.com/a") == 1)
        #expect(environment.reachable("https://keys.example.com/a", within: 10))
        #expect(fetcher.calls("https://keys.example.com/inline") == 0)
        #expect(environment.states["https://keys.example.com/inline"] == nil)
    }

    @Test("without jwksUri or jwks the keys come by OIDC discovery, as a proxy gets them; a set with no key is no keys")
    func discoveryAndEmptySets() async {
        let fetcher = ScriptedFetcher()
        func issuer(_ name: String) -> JWTRule { JWTRule(issuer: "https://\(name).example.com/") }
        fetcher.serve("https://good.example.com/.well-known/openid-configuration", #"{"issuer": "https://good.example.com/", "jwks_uri": "https://good.example.com/keys"}"#)
        fetcher.serve("https://good.example.com/keys", Self.jwks)
        fetcher.serve("https://nouri.example.com/.well-known/openid-configuration", #"{"issuer": "https://nouri.example.com/"}"#)
        fetcher.serve("https://empty.example.com/.well-known/openid-configuration", #"{"jwks_uri": "https://empty.example.com/keys"}"#)
        fetcher.serve("https://empty.example.com/keys", #"{"keys": []}"#)
        fetcher.serve("https://keys.example.com/empty", #"{"keys": []}"#)
        let environment = await JWKSProbe.environment(
            rules: [issuer("good"), issuer("missing"), issuer("nouri"), issuer("empty"), rule("https://keys.example.com/empty")],
            fetcher: fetcher)
        #expect(environment.reachable("https://good.example.com/.well-known/openid-configuration", within: 5000))
        #expect(fetcher.calls("https://good.example.com/keys") == 1)
        for name in ["missing", "nouri", "empty"] {
            #expect(!environment.reachable("https://\(name).example.com/.well-known/openid-configuration", within: 5000), "\(name)")
        }
        #expect(!environment.reachable("https://keys.example.com/empty", within: 5000))

        // An abstract valid token of an issuer whose keys cannot be had is refused, naming where they come from.
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules:
              - issuer: "https://missing.example.com/"
              - issuer: "https://inline.example.com"
                jwks: '{"keys": []}'
            """
        let engine = PolicyEngine(yaml: yaml, file: "jwt.yaml", options: SnapshotOptions(jwks: environment))
        for (issuer, source) in [("https://missing.example.com/", "OIDC discovery at https://missing.example.com/.well-known/openid-configuration"), ("https://inline.example.com", "the rule's inline jwks")] {
            let request = AuthzRequest(
                destination: .init(namespace: "shop", labels: [:], port: 8080), method: "GET", host: "cart", path: "/",
                jwt: JWTOutcome(present: true, valid: true, claims: .object(["iss": .string(issuer), "sub": .string("u")]), requestPrincipal: "\(issuer)/u"))
            let decision = engine.snapshot.evaluate(request)
            #expect(decision.status == 401 && decision.reason.contains(source), "\(decision.reason)")
        }
    }

    @Test("a URI that answers only within a longer timeout is late for the rules with shorter ones")
    func shortAndLongTimeouts() async {
        let fetcher = DeadlineFetcher(answersAfter: 300, body: Self.jwks)
        let environment = await JWKSProbe.environment(
            rules: [rule("https://keys.example.com/slow", timeout: 100), rule("https://keys.example.com/slow", timeout: 1000)],
            fetcher: fetcher)
        #expect(!environment.reachable("https://keys.example.com/slow", within: 100))
        #expect(environment.reachable("https://keys.example.com/slow", within: 1000))
        let never = await JWKSProbe.environment(rules: [rule("https://keys.example.com/slow", timeout: 100)], fetcher: fetcher)
        #expect(!never.reachable("https://keys.example.com/slow", within: 100))
        #expect(!never.reachable("https://keys.example.com/slow", within: 5000))
    }

    @Test("the test JWT server placeholder is reachable, after its delay when it names one")
    func testServerDelay() async {
        let environment = await JWKSProbe.environment(
            rules: [rule("<JWKS server>"), rule("<JWKS server>?delay=500ms", timeout: 10)], fetcher: ScriptedFetcher())
        #expect(environment.reachable("<JWKS server>", within: 10))
        #expect(!environment.reachable("<JWKS server>?delay=500ms", within: 10))
        #expect(environment.reachable("<JWKS server>?delay=500ms", within: 1000))
        #expect(JWKSProbe.testServerDelay("<JWKS server>?a=1&delay=1m30s") == 90_000)
        #expect(JWKSProbe.testServerDelay("<JWKS server>?delay=250us") == 0.25)
        #expect(JWKSProbe.testServerDelay("<JWKS server>?delay=1.5s") == 1500)
        #expect(JWKSProbe.testServerDelay("<JWKS server>?delay=soon") == nil)
        #expect(JWKSProbe.testServerDelay("<JWKS server>?delay=") == nil)
        #expect(JWKSProbe.testServerDelay("<JWKS server>") == nil)
    }

    @Test("a real server on loopback: a served JWKS is reachable, a 404 and a closed port are not")
    func loopbackServer() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        try server.serve(Self.jwks, at: "jwks.json")
        // A port that was just free: nothing listens there.
        let closed = "http://127.0.0.1:\(server.port == 65535 ? 1 : server.port + 1)/jwks.json"
        let environment = await JWKSProbe.environment(
            rules: [rule(server.url("jwks.json"), timeout: 60_000), rule(server.url("missing.json"), timeout: 60_000), rule(closed, timeout: 2000)],
            fetcher: AsyncHTTPClientFetcher())
        #expect(environment.reachable(server.url("jwks.json"), within: 5000))
        #expect(!environment.reachable(server.url("missing.json"), within: 5000))
        #expect(!environment.reachable(closed, within: 5000))
    }

    @Test("Istio's published sample JWKS is answered from its public key, on any branch; other URIs are fetched")
    func publishedSample() async throws {
        let base = ScriptedFetcher()
        let fetcher = PublishedJWKSFetcher(base: base)
        for branch in ["master", "release-1.24"] {
            let body = try await fetcher.get(
                "https://raw.githubusercontent.com/istio/istio/\(branch)/security/tools/jwt/samples/jwks.json", timeout: .seconds(1))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let keys = try #require(object["keys"] as? [[String: Any]])
            #expect(keys.first?["kid"] as? String == "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ")
        }
        #expect(base.calls("https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json") == 0)
        for other in [
            "https://raw.githubusercontent.com/istio/istio/master/tests/common/jwt/jwks-not-exist.json",
            "https://raw.githubusercontent.com/other/istio/master/security/tools/jwt/samples/jwks.json",
            "https://raw.githubusercontent.com/istio/istio/a/b/security/tools/jwt/samples/jwks.json",
        ] {
            await #expect(throws: AuthnError.self) { _ = try await fetcher.get(other, timeout: .seconds(1)) }
            #expect(base.calls(other) == 1)
        }
    }
}

/// A fetcher whose server answers after a fixed delay, judged against each request's timeout
/// without waiting: the deadline decides, as the HTTP client's does.
struct DeadlineFetcher: HTTPFetcher {
    let answersAfter: Double
    let body: String

    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        let milliseconds = Double(timeout.components.seconds) * 1000 + Double(timeout.components.attoseconds) / 1e15
        guard answersAfter <= milliseconds else {
            throw AuthnError(.keySourceUnavailable, "\(url) did not answer within \(Int(milliseconds)) ms")
        }
        return body
    }
}
