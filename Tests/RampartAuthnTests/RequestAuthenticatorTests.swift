import Foundation
import JWTKit
import RampartAuthn
import RampartPolicy
import Testing

@Suite("RequestAuthentication: verifying real tokens")
struct RequestAuthenticatorTests {
    let clock = ManualClock()
    let key = IssuerKey(kid: "k1")

    func authenticator() -> RequestAuthenticator {
        RequestAuthenticator(fetcher: ScriptedFetcher(), clock: clock)
    }

    func rules(more: String = "") throws -> [JWTProvider] {
        try providers(rules: [inlineRule(try jwksJSON([key.jwk]), more: more)])
    }

    func check(_ token: String, rules more: String = "") async throws -> RequestAuthnResult {
        await authenticator().authenticate(cartRequest(headers: ["Authorization": "Bearer \(token)"]), providers: try rules(more: more))
    }

    @Test("a valid token gives the request principal iss/sub and every claim, nested ones kept")
    func validToken() async throws {
        let claims = requestClaims(now: clock.now, extra: ["groups": .array([.string("admin")]), "org": .object(["team": .string("checkout")])])
        let result = try await check(try await key.sign(any: claims))
        #expect(result.failure == nil)
        #expect(result.status == 200)
        #expect(result.outcome.present && result.outcome.valid)
        #expect(result.outcome.requestPrincipal == "\(requestIssuer)/alice")
        #expect(result.outcome.claims?.value(at: ["org", "team"]) == .string("checkout"))
        #expect(result.outcome.claims?["groups"] == .array([.string("admin")]))
        #expect(result.outcome.location == "header authorization (prefix \"Bearer \")")
    }

    @Test("the verified outcome decides policy: requestPrincipals match iss/sub")
    func feedsPolicy() async throws {
        let jwks = try jwksJSON([key.jwk])
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules:
              - \(inlineRule(jwks))
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: alice-only, namespace: shop}
            spec:
              rules:
              - from: [{source: {requestPrincipals: ["\(requestIssuer)/alice"]}}]
            """
        let engine = PolicyEngine(yaml: yaml)
        let providers = engine.snapshot.jwtProviders(namespace: "shop", labels: ["app": "cart"])
        let token = try await key.sign(any: requestClaims(now: clock.now))
        let request = cartRequest(headers: ["authorization": "Bearer \(token)"])
        let result = await authenticator().authenticate(request, providers: providers)
        let decision = engine.snapshot.evaluate(request.with(jwt: result.outcome))
        #expect(decision.decision == .allow)
        #expect(decision.policy == "shop/alice-only")
        #expect(engine.snapshot.evaluate(request).decision == .deny)
    }

    @Test("an expired token is refused with 401 and the time it expired")
    func expired() async throws {
        let token = try await key.sign(any: requestClaims(now: clock.now, extra: ["exp": .number(clock.now.timeIntervalSince1970 - 61)]))
        let result = try await check(token)
        #expect(result.failure?.kind == .expired)
        #expect(result.status == 401)
        #expect(result.outcome.valid == false)
        #expect(result.failure?.reason.contains("expired at") == true, "\(result.failure?.reason ?? "")")
    }

    @Test("exp and nbf allow 60 s of clock skew")
    func clockSkew() async throws {
        let now = clock.now.timeIntervalSince1970
        let justExpired = try await key.sign(any: requestClaims(now: clock.now, extra: ["exp": .number(now - 59)]))
        #expect(try await check(justExpired).failure == nil)
        let soon = try await key.sign(any: requestClaims(now: clock.now, extra: ["nbf": .number(now + 59)]))
        #expect(try await check(soon).failure == nil)
        let later = try await key.sign(any: requestClaims(now: clock.now, extra: ["nbf": .number(now + 120)]))
        #expect(try await check(later).failure?.kind == .notYetValid)
    }

    @Test("a token for another audience is refused with 403, as Envoy's JwtAudienceNotAllowed, naming both")
    func wrongAudience() async throws {
        let token = try await key.sign(any: requestClaims(now: clock.now, audience: .array([.string("billing")])))
        let result = try await check(token)
        #expect(result.failure?.kind == .audienceNotAllowed)
        #expect(result.status == 403)
        #expect(result.failure?.reason.contains("billing") == true)
        #expect(result.failure?.reason.contains("[shop]") == true)
    }

    @Test("a token from an issuer no rule accepts is refused with 401")
    func wrongIssuer() async throws {
        let token = try await key.sign(any: requestClaims(now: clock.now, issuer: "https://evil.example"))
        let result = try await check(token)
        #expect(result.failure?.kind == .unknownIssuer)
        #expect(result.status == 401)
        #expect(result.failure?.reason.contains("https://evil.example") == true)
    }

    @Test("a token naming a kid the JWKS lacks is refused, not verified with the first key")
    func unknownKid() async throws {
        let token = try await key.sign(any: requestClaims(now: clock.now), headerKid: "k2")
        let result = try await check(token)
        #expect(result.failure?.kind == .unknownKid)
        #expect(result.failure?.reason.contains("k2") == true)
        #expect(result.status == 401)
    }

    @Test("a token signed by another key, or altered, fails its signature check")
    func badSignature() async throws {
        let forged = try await IssuerKey(kid: "k1").sign(any: requestClaims(now: clock.now))
        #expect(try await check(forged).failure?.kind == .badSignature)
        let good = try await key.sign(any: requestClaims(now: clock.now))
        var parts = good.split(separator: ".").map(String.init)
        let other = try await key.sign(any: requestClaims(now: clock.now, extra: ["sub": .string("mallory")]))
        parts[1] = String(other.split(separator: ".")[1])
        let result = try await check(parts.joined(separator: "."))
        #expect(result.failure?.kind == .badSignature)
        #expect(result.status == 401)
    }

    @Test("something that is not a JWT is refused with 401")
    func malformed() async throws {
        let result = try await check("not-a-jwt")
        #expect(result.failure?.kind == .malformed)
        #expect(result.outcome.present)
        #expect(result.status == 401)
    }

    @Test("RS256 and PS256 tokens verify with RSA keys from the JWKS")
    func rsaTokens() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let rs = try RSAIssuerKey(kid: "rs", in: directory)
        let ps = try RSAIssuerKey(kid: "ps", in: directory)
        var psJWK = try ps.jwk()
        psJWK["alg"] = "PS256"
        let rules = try providers(rules: [inlineRule(try jwksJSON([try rs.jwk(), psJWK]))])
        for (token, name) in [
            (try await rs.sign(any: requestClaims(now: clock.now), pss: false), "RS256"),
            (try await ps.sign(any: requestClaims(now: clock.now), pss: true), "PS256"),
        ] {
            let result = await authenticator().authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
            #expect(result.failure == nil, "\(name): \(result.failure?.reason ?? "")")
        }
        // An RS256 token under the PS256 key's kid is refused: the key's algorithm is pinned.
        let keys = JWTKeyCollection()
        await keys.add(rsa: ps.privateKey, digestAlgorithm: .sha256, kid: JWKIdentifier(string: "ps"))
        let downgraded = try await keys.sign(requestClaims(now: clock.now), kid: JWKIdentifier(string: "ps"))
        let result = await authenticator().authenticate(cartRequest(headers: ["authorization": "Bearer \(downgraded)"]), providers: rules)
        #expect(result.failure?.kind == .algorithmMismatch)
    }

    @Test("no token means no request principal, and a REQUIRED-free policy lets it through")
    func noToken() async throws {
        let result = await authenticator().authenticate(cartRequest(), providers: try rules())
        #expect(!result.tokenPresent)
        #expect(result.outcome == .absent)
        #expect(result.outcome.requestPrincipal == nil)
    }

    @Test("header edits: payload to a header, claims to headers, the token header removed unless forwarded")
    func headerEdits() async throws {
        let claims = requestClaims(now: clock.now, extra: ["org": .object(["team": .string("checkout")]), "level": .number(3)])
        let token = try await key.sign(any: claims)
        let result = try await check(token, rules: "outputPayloadToHeader: x-jwt-payload, outputClaimToHeaders: [{header: x-team, claim: org.team}, {header: X-Level, claim: level}]")
        let payload = String(token.split(separator: ".")[1])
        // Every header the rule writes is removed first (a client's own copy never reaches the
        // application), then set from the token.
        #expect(
            result.headerEdits == [
                .remove("x-jwt-payload"), .remove("x-team"), .remove("x-level"), .remove("authorization"),
                .set("x-jwt-payload", payload), .set("x-team", "checkout"), .set("x-level", "3"),
            ])
        let forwarded = try await check(token, rules: "forwardOriginalToken: true")
        #expect(forwarded.headerEdits.isEmpty)
    }

    @Test("with tokens in two locations every one must verify; the first gives the principal")
    func multipleTokens() async throws {
        let rules = try self.rules(more: "fromHeaders: [{name: x-jwt}], fromParams: [token]")
        let alice = try await key.sign(any: requestClaims(now: clock.now))
        let bob = try await key.sign(any: requestClaims(now: clock.now, extra: ["sub": .string("bob")]))
        let both = await authenticator().authenticate(cartRequest(path: "/items?token=\(bob)", headers: ["x-jwt": alice]), providers: rules)
        #expect(both.failure == nil)
        #expect(both.verified.count == 2)
        #expect(both.outcome.requestPrincipal == "\(requestIssuer)/alice")
        let expired = try await key.sign(any: requestClaims(now: clock.now, extra: ["exp": .number(clock.now.timeIntervalSince1970 - 3600)]))
        let oneBad = await authenticator().authenticate(cartRequest(path: "/items?token=\(expired)", headers: ["x-jwt": alice]), providers: rules)
        #expect(oneBad.failure?.kind == .expired)
        #expect(oneBad.status == 401)
        #expect(oneBad.outcome.location == "query parameter token")
        // With two tokens, the reason says which one failed.
        #expect(oneBad.failure?.reason.hasPrefix("the token in query parameter token") == true, "\(oneBad.failure?.reason ?? "")")
    }

    @Test("presence IGNORED: a token that fails its issuer's rule is as no token; under OPTIONAL it is refused")
    func ignoredPresence() async throws {
        let expired = try await key.sign(any: requestClaims(now: clock.now, extra: ["exp": .number(clock.now.timeIntervalSince1970 - 3600)]))
        let request = cartRequest(headers: ["authorization": "Bearer \(expired)"])
        let ignored = await authenticator().authenticate(request, providers: try rules(more: "presence: IGNORED, failedStatusInMetadata: true"))
        #expect(ignored.failure == nil && ignored.outcome.ignored && ignored.status == 200, "\(String(describing: ignored.failure))")
        #expect(ignored.outcome.failure?.contains("expired") == true, "\(String(describing: ignored.outcome.failure))")
        let refused = await authenticator().authenticate(request, providers: try rules(more: "presence: OPTIONAL"))
        #expect(refused.failure?.kind == .expired && refused.status == 401)
        // A good token under IGNORED is verified as usual.
        let alice = try await key.sign(any: requestClaims(now: clock.now))
        let accepted = await authenticator().authenticate(
            cartRequest(headers: ["authorization": "Bearer \(alice)"]), providers: try rules(more: "presence: IGNORED"))
        #expect(accepted.failure == nil && accepted.outcome.requestPrincipal == "\(requestIssuer)/alice")
    }

    @Test("a header sent twice holds two tokens, and both must verify; a token from a parameter is removed from the target")
    func repeatedHeaderAndParameter() async throws {
        let rules = try self.rules()
        let alice = try await key.sign(any: requestClaims(now: clock.now))
        let expired = try await key.sign(any: requestClaims(now: clock.now, extra: ["exp": .number(clock.now.timeIntervalSince1970 - 3600)]))
        func request(_ values: [String]) -> AuthzRequest {
            AuthzRequest(
                destination: .init(namespace: "shop", labels: ["app": "cart"], port: 8080), method: "GET", host: "cart",
                path: "/items", headers: ["authorization": values.joined(separator: ",")],
                repeatedHeaders: ["authorization": values])
        }
        let twice = await authenticator().authenticate(request(["Bearer \(alice)", "Bearer \(alice)"]), providers: rules)
        #expect(twice.failure == nil && twice.outcome.requestPrincipal == "\(requestIssuer)/alice")
        // The header both came in is removed once.
        #expect(twice.headerEdits.filter { $0 == .remove("authorization") }.count == 1, "\(twice.headerEdits)")
        let oneBad = await authenticator().authenticate(request(["Bearer \(alice)", "Bearer \(expired)"]), providers: rules)
        #expect(oneBad.failure?.kind == .expired && oneBad.status == 401)

        let fromQuery = await authenticator().authenticate(cartRequest(path: "/items?page=2&access_token=\(alice)"), providers: rules)
        #expect(fromQuery.failure == nil)
        #expect(fromQuery.headerEdits == [.removeQueryParameter("access_token")])
        let kept = await authenticator().authenticate(
            cartRequest(path: "/items?access_token=\(alice)"), providers: try self.rules(more: "forwardOriginalToken: true"))
        #expect(kept.headerEdits.isEmpty)
    }

    @Test("an empty access_token parameter is a token that does not parse (401), not a missing one")
    func emptyParameter() async throws {
        let empty = await authenticator().authenticate(cartRequest(path: "/items?access_token="), providers: try rules())
        #expect(empty.tokenPresent && empty.status == 401, "\(String(describing: empty.failure))")
        let none = await authenticator().authenticate(cartRequest(path: "/items?page=1"), providers: try rules())
        #expect(!none.tokenPresent && none.failure == nil && none.status == 200)
    }

    @Test("of several failing tokens, the one Envoy checks first decides 401 or 403: a rule's parameters before its headers, the first refusing rule before the others")
    func whichFailureDecides() async throws {
        let other = "https://other.example"
        let keys = try jwksJSON([key.jwk])
        let one = try providers(rules: [inlineRule(keys)])
        let two = try providers(rules: [inlineRule(keys), inlineRule(keys, issuer: other)])
        let now = clock.now
        func token(_ issuer: String = requestIssuer, audience: String = "shop", expired: Bool = false) async throws -> String {
            let exp: [String: JSONValue] = expired ? ["exp": .number(now.timeIntervalSince1970 - 3600)] : [:]
            return try await key.sign(any: requestClaims(now: now, issuer: issuer, audience: .string(audience), extra: exp))
        }
        func status(header: String, parameter: String, _ rules: [JWTProvider]) async -> Int {
            let request = cartRequest(path: "/items?access_token=\(parameter)", headers: ["authorization": "Bearer \(header)"])
            return await authenticator().authenticate(request, providers: rules).status
        }
        // One rule: the parameter is checked first, and its failure stops the rule.
        #expect(await status(header: try await token(audience: "web"), parameter: try await token(expired: true), one) == 401)
        #expect(await status(header: try await token(expired: true), parameter: try await token(audience: "web"), one) == 403)
        // Two rules sharing the default locations: each first meets the parameter. The first rule
        // refuses the other issuer's token as "issuer not configured", so the second rule's
        // refusal decides.
        #expect(await status(header: try await token(audience: "web"), parameter: try await token(other, expired: true), two) == 401)
        #expect(await status(header: try await token(expired: true), parameter: try await token(other, audience: "web"), two) == 403)
        // One token, for the first rule, with a wrong audience: that refusal decides over the
        // second rule's "issuer not configured".
        let single = cartRequest(headers: ["authorization": "Bearer \(try await token(audience: "web"))"])
        #expect(await authenticator().authenticate(single, providers: two).status == 403)
        // Each rule reading a header of its own: the first rule's refusal decides.
        let own = try providers(rules: [
            inlineRule(keys, more: "fromHeaders: [{name: x-a}]"), inlineRule(keys, issuer: other, more: "fromHeaders: [{name: x-b}]"),
        ])
        let firstAud = cartRequest(headers: ["x-a": try await token(audience: "web"), "x-b": try await token(other, expired: true)])
        #expect(await authenticator().authenticate(firstAud, providers: own).status == 403)
        let firstExpired = cartRequest(headers: ["x-a": try await token(expired: true), "x-b": try await token(other, audience: "web")])
        #expect(await authenticator().authenticate(firstExpired, providers: own).status == 401)
    }

    @Test("a CORS preflight and TCP traffic skip JWT checks, as Envoy does")
    func preflightAndTCP() async throws {
        let headers = ["authorization": "Bearer garbage", "origin": "https://shop.example", "access-control-request-method": "POST"]
        let preflight = await authenticator().authenticate(cartRequest(headers: headers, method: "OPTIONS"), providers: try rules())
        #expect(!preflight.tokenPresent)
        let tcp = AuthzRequest(transport: .tcp, destination: .init(namespace: "shop", labels: ["app": "cart"]), headers: ["authorization": "Bearer garbage"])
        #expect(!(await authenticator().authenticate(tcp, providers: try rules())).tokenPresent)
    }
}
