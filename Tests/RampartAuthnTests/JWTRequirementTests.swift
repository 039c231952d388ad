import Crypto
import Foundation
import JWTKit
import RampartAuthn
import RampartPolicy
import Testing

/// How a request's tokens meet a workload's several JWT rules, in the order Envoy checks one
/// token, as Istio configures Envoy's jwt_authn filter (istio/istio
/// pilot/pkg/security/authn/policy_applier.go `convertToEnvoyJwtConfig`; envoyproxy/envoy
/// source/extensions/filters/http/jwt_authn verifier.cc, authenticator.cc, extractor.cc; jwt_verify_lib
/// jwt.cc, jwks.cc). Keys and tokens are made by the tests.
@Suite("RequestAuthentication: several rules, check order, times and keys as Envoy")
struct JWTRequirementTests {
    let clock = ManualClock()
    let alpha = IssuerKey(kid: "a1")
    let beta = IssuerKey(kid: "b1")
    static let alphaIssuer = "https://alpha.example"
    static let betaIssuer = "https://beta.example"

    func run(_ headers: [String: String], rules: [String], path: String = "/items") async throws -> RequestAuthnResult {
        await RequestAuthenticator(fetcher: ScriptedFetcher(), clock: clock)
            .authenticate(cartRequest(path: path, headers: headers), providers: try providers(rules: rules))
    }

    /// Rule for issuer alpha (default locations) and rule for beta (header x-beta), `more` added to both.
    func twoRules(betaFirst: Bool = false, more: String = "") throws -> [String] {
        let alphaRule = inlineRule(try jwksJSON([alpha.jwk]), issuer: Self.alphaIssuer, more: more)
        let extra = more.isEmpty ? "fromHeaders: [{name: x-beta}]" : "fromHeaders: [{name: x-beta}], \(more)"
        let betaRule = inlineRule(try jwksJSON([beta.jwk]), issuer: Self.betaIssuer, more: extra)
        return betaFirst ? [betaRule, alphaRule] : [alphaRule, betaRule]
    }

    func token(_ key: IssuerKey, _ issuer: String, subject: String = "alice", tamper: Bool = false) async throws -> String {
        var claims = requestClaims(now: clock.now, issuer: issuer)
        claims.members["sub"] = .string(subject)
        let signed = try await key.sign(any: claims)
        return tamper ? signed.dropLast(4) + "AAAA" : signed
    }

    @Test("the first rule whose own tokens all verify accepts the request; a bad token in another rule's location does not matter")
    func anyRuleAccepts() async throws {
        let rules = try twoRules()
        let goodAlpha = try await token(alpha, Self.alphaIssuer)
        let goodBeta = try await token(beta, Self.betaIssuer, subject: "bob")
        let first = try await run(["authorization": "Bearer \(goodAlpha)", "x-beta": "junk"], rules: rules)
        #expect(first.failure == nil, "\(first.failure?.reason ?? "")")
        #expect(first.outcome.requestPrincipal == "\(Self.alphaIssuer)/alice")
        let badAlpha = try await token(alpha, Self.alphaIssuer, tamper: true)
        let second = try await run(["authorization": "Bearer \(badAlpha)", "x-beta": goodBeta], rules: rules)
        #expect(second.failure == nil, "\(second.failure?.reason ?? "")")
        #expect(second.outcome.requestPrincipal == "\(Self.betaIssuer)/bob")
    }

    @Test("rules are tried sorted by issuer, whatever order they are written in")
    func sortedByIssuer() async throws {
        let headers = [
            "authorization": "Bearer \(try await token(alpha, Self.alphaIssuer))",
            "x-beta": try await token(beta, Self.betaIssuer, subject: "bob"),
        ]
        for betaFirst in [false, true] {
            let result = try await run(headers, rules: try twoRules(betaFirst: betaFirst))
            #expect(result.outcome.requestPrincipal == "\(Self.alphaIssuer)/alice", "beta written first: \(betaFirst)")
        }
    }

    @Test("only the accepting rule's token header is removed; the other rule never ran")
    func editsOfTheAcceptingRule() async throws {
        let headers = [
            "authorization": "Bearer \(try await token(alpha, Self.alphaIssuer))",
            "x-beta": try await token(beta, Self.betaIssuer),
        ]
        let result = try await run(headers, rules: try twoRules())
        #expect(result.headerEdits.contains(.remove("authorization")))
        #expect(!result.headerEdits.contains(.remove("x-beta")))
    }

    @Test("no token anywhere is anonymous; a bad token that no rule accepts is refused with the first rule's reason")
    func refusalAndAnonymity() async throws {
        let rules = try twoRules()
        let none = try await run([:], rules: rules)
        #expect(none.failure == nil && !none.tokenPresent && none.outcome.requestPrincipal == nil)
        let bad = try await run(["x-beta": try await token(beta, Self.betaIssuer, tamper: true)], rules: rules)
        #expect(bad.failure?.kind == .badSignature)
        #expect(bad.status == 401)
        #expect(bad.outcome.valid == false && bad.outcome.claims == nil)
    }

    @Test("a token both rules read is refused with every rule's reason when neither accepts it")
    func sharedLocationReasons() async throws {
        let alphaRule = inlineRule(try jwksJSON([alpha.jwk]), issuer: Self.alphaIssuer)
        let betaRule = inlineRule(try jwksJSON([beta.jwk]), issuer: Self.betaIssuer)
        let bad = try await token(beta, Self.betaIssuer, tamper: true)
        let result = try await run(["authorization": "Bearer \(bad)"], rules: [alphaRule, betaRule])
        // Envoy's requires_any reports the fault of the rule the token was for, not alpha's
        // "issuer not configured" (verifier.cc AnyVerifierImpl, envoyproxy/envoy#15194).
        #expect(result.failure?.kind == .badSignature)
        #expect(result.failure?.reason.contains("does not verify") == true, "\(result.failure?.reason ?? "")")
        #expect(result.failure?.reason.contains(Self.alphaIssuer) == true, "\(result.failure?.reason ?? "")")
        let good = try await run(["authorization": "Bearer \(try await token(beta, Self.betaIssuer))"], rules: [alphaRule, betaRule])
        #expect(good.failure == nil)
        // A token for beta's issuer with another audience is 403, as its own rule refuses it.
        let audienceRule = inlineRule(try jwksJSON([beta.jwk]), issuer: Self.betaIssuer)
        var claims = requestClaims(now: clock.now, issuer: Self.betaIssuer, audience: .string("elsewhere"))
        claims.members["sub"] = .string("bob")
        let foreign = try await beta.sign(any: claims)
        let refused = try await run(["authorization": "Bearer \(foreign)"], rules: [alphaRule, audienceRule])
        #expect(refused.failure?.kind == .audienceNotAllowed && refused.status == 403, "\(refused.failure?.reason ?? "")")
        // A token no rule's issuer matches is "issuer not configured", 401.
        let stranger = try await run(["authorization": "Bearer \(try await token(beta, "https://gamma.example"))"], rules: [alphaRule, audienceRule])
        #expect(stranger.failure?.kind == .unknownIssuer && stranger.status == 401)
    }

    @Test("the audience is checked before the signature: a token for another audience is 403 even when altered")
    func audienceBeforeSignature() async throws {
        let claims = requestClaims(now: clock.now, audience: .string("elsewhere"))
        let altered = try await alpha.sign(any: claims).dropLast(4) + "AAAA"
        let result = try await run(["authorization": "Bearer \(altered)"], rules: [inlineRule(try jwksJSON([alpha.jwk]))])
        #expect(result.failure?.kind == .audienceNotAllowed)
        #expect(result.status == 403)
        // Refused for its audience, the token grants nothing: its claims are not handed to policy.
        #expect(result.outcome.valid == false && result.outcome.claims == nil && result.outcome.audienceRefused)
    }

    @Test("two rules of one issuer: a token one refuses for its audience and the other for its signature is refused")
    func audienceRefusalGrantsNothing() async throws {
        let jwks = try jwksJSON([alpha.jwk])
        let rules = [
            "{issuer: '\(requestIssuer)', audiences: [one], jwks: '\(jwks)'}",
            "{issuer: '\(requestIssuer)', audiences: [two], jwks: '\(jwks)'}",
        ]
        let altered = try await alpha.sign(any: requestClaims(now: clock.now, audience: .string("two"))).dropLast(4) + "AAAA"
        let result = try await run(["authorization": "Bearer \(altered)"], rules: rules)
        #expect(result.failure != nil)
        let policy = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: users, namespace: shop}
            spec:
              rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
            """
        let engine = PolicyEngine(yaml: policy, file: "policy.yaml")
        let decision = engine.snapshot.evaluate(cartRequest(headers: ["authorization": "Bearer \(altered)"]).with(jwt: result.outcome))
        #expect(decision.decision == .deny)
    }

    @Test("times are whole seconds with 60 s of skew; exp or nbf of 0 is no limit; exp beyond 2^64 is malformed")
    func times() async throws {
        let rules = [inlineRule(try jwksJSON([alpha.jwk]))]
        let now = clock.now.timeIntervalSince1970.rounded(.down)
        func result(exp: Double? = nil, nbf: Double? = nil) async throws -> RequestAuthnResult {
            var claims = requestClaims(now: clock.now)
            claims.members["exp"] = exp.map(JSONValue.number)
            claims.members["nbf"] = nbf.map(JSONValue.number)
            return try await run(["authorization": "Bearer \(try await alpha.sign(any: claims))"], rules: rules)
        }
        #expect(try await result(exp: now - 60).failure == nil)
        #expect(try await result(exp: now - 61).failure?.kind == .expired)
        #expect(try await result(exp: now - 60.9).failure?.kind == .expired)
        #expect(try await result(exp: 0).failure == nil)
        #expect(try await result(nbf: now + 60).failure == nil)
        #expect(try await result(nbf: now + 61).failure?.kind == .notYetValid)
        #expect(try await result(nbf: 0).failure == nil)
        #expect(try await result(exp: 1e20).failure?.kind == .malformed)
    }

    @Test("without a prefix a header holds the token as it is; a query parameter is taken as decoded")
    func rawLocations() async throws {
        let rule = inlineRule(try jwksJSON([alpha.jwk]), more: "fromHeaders: [{name: x-jwt}], fromParams: [token]")
        let good = try await token(alpha, requestIssuer)
        #expect(try await run(["x-jwt": good], rules: [rule]).failure == nil)
        #expect(try await run(["x-jwt": "\(good), junk"], rules: [rule]).failure?.kind == .malformed)
        #expect(try await run([:], rules: [rule], path: "/items?token=\(good)").failure == nil)
        #expect(try await run([:], rules: [rule], path: "/items?token=%20\(good)").failure?.kind == .malformed)
    }

    @Test("an EC key without crv is read as P-256, an Ed25519 key without alg verifies EdDSA")
    func lenientKeys() async throws {
        var curveless = alpha.jwk
        curveless["crv"] = nil
        curveless["alg"] = nil
        let token = try await token(alpha, requestIssuer)
        #expect(try await run(["authorization": "Bearer \(token)"], rules: [inlineRule(try jwksJSON([curveless]))]).failure == nil)

        let edwards = Curve25519.Signing.PrivateKey()
        let jwk = ["kty": "OKP", "crv": "Ed25519", "x": base64URL(edwards.publicKey.rawRepresentation), "kid": "e1"]
        let keys = JWTKeyCollection()
        await keys.add(eddsa: EdDSA.PrivateKey(backing: edwards), kid: JWKIdentifier(string: "e1"))
        let signed = try await keys.sign(requestClaims(now: clock.now), kid: JWKIdentifier(string: "e1"))
        #expect(try await run(["authorization": "Bearer \(signed)"], rules: [inlineRule(try jwksJSON([jwk]))]).failure == nil)
    }

    @Test("refusals say what is wrong: an unsigned token, a kid that is not a string, a payload that is not JSON, another algorithm")
    func refusalReasons() async throws {
        let rules = [inlineRule(try jwksJSON([alpha.jwk]))]
        func part(_ json: String) -> String { base64URL(Array(json.utf8)) }
        let payload = part(#"{"iss":"\#(requestIssuer)","sub":"alice","aud":"shop"}"#)
        let cases: [(String, String)] = [
            ("\(part(#"{"alg":"none"}"#)).\(payload).", "unsigned"),
            ("\(part(#"{"alg":"ES256","kid":7}"#)).\(payload).\(part("sig"))", "kid that is not a string"),
            ("\(part(#"{"alg":"ES256"}"#)).\(part(String(repeating: "[", count: 600) + String(repeating: "]", count: 600))).\(part("sig"))", "payload is not JSON"),
            ("\(part(#"{"alg":"HS256","kid":"a1"}"#)).\(payload).\(part("sig"))", "can verify only ES256"),
        ]
        for (token, words) in cases {
            let reason = try await run(["authorization": "Bearer \(token)"], rules: rules).failure?.reason ?? "accepted"
            #expect(reason.contains(words), "\(words): \(reason)")
            #expect(!reason.contains("DecodingError") && !reason.contains("JWTError"), "\(reason)")
        }
    }

    @Test("a malformed token's refusal carries the status text Envoy's JWT library gives that fault")
    func envoyStatusTexts() async throws {
        let rules = [inlineRule(try jwksJSON([alpha.jwk]))]
        func part(_ json: String) -> String { base64URL(Array(json.utf8)) }
        let payload = part(#"{"iss":"\#(requestIssuer)","sub":"alice","aud":"shop"}"#)
        let cases: [(String, String)] = [
            ("a.b", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
            ("a.\(payload).\(part("sig"))", "Jwt header is an invalid Base64url encoded"),
            ("\(part("not json")).\(payload).\(part("sig"))", "Jwt header is an invalid JSON"),
            ("\(part("{}")).\(payload).\(part("sig"))", "Jwt header [alg] field is required and must be a string"),
            ("\(part(#"{"alg":"none"}"#)).\(payload).", "Jwt header [alg] is not supported"),
            ("\(part(#"{"alg":"ES256","kid":7}"#)).\(payload).\(part("sig"))", "Jwt header [kid] field is not a string"),
            ("\(part(#"{"alg":"ES256"}"#)).\(part("[1]")).\(part("sig"))", "Jwt payload is an invalid JSON"),
            ("\(part(#"{"alg":"ES256"}"#)).\(payload).!!", "Jwt signature is an invalid Base64url encoded"),
            ("\(part(#"{"alg":"ES256"}"#)).\(part(#"{"iss":5}"#)).\(part("sig"))", "Jwt payload [iss] field is not a string"),
            ("\(part(#"{"alg":"ES256"}"#)).\(part(#"{"iss":"\#(requestIssuer)","exp":"soon"}"#)).\(part("sig"))", "Jwt payload [exp] field is not an integer"),
        ]
        for (token, text) in cases {
            let failure = try await run(["authorization": "Bearer \(token)"], rules: rules).failure
            #expect(failure?.kind == .malformed && failure?.envoyText == text, "\(token): \(failure?.envoyText ?? "none") / \(failure?.reason ?? "accepted")")
        }
        // A well-formed token refused for another reason carries none.
        let signed = try await token(alpha, requestIssuer)
        #expect(try await run(["authorization": "Bearer \(signed)x"], rules: rules).failure?.envoyText == nil)
    }

    @Test("a claim that is empty, or holds CR, LF or NUL, writes no header")
    func claimHeaders() async throws {
        let rule = inlineRule(try jwksJSON([alpha.jwk]), more: "outputClaimToHeaders: [{header: x-e, claim: e}, {header: x-n, claim: crlf}, {header: x-s, claim: sub}]")
        var claims = requestClaims(now: clock.now)
        claims.members["e"] = .string("")
        claims.members["crlf"] = .string("a\r\nx-injected: 1")
        let result = try await run(["authorization": "Bearer \(try await alpha.sign(any: claims))"], rules: [rule])
        let set = result.headerEdits.compactMap { edit -> String? in
            if case .set(let name, _) = edit { return name }
            return nil
        }
        #expect(set == ["x-s"])
    }
}
