import Crypto
import Foundation
import JWTKit
import RampartAuthn
import RampartPolicy
import Testing

/// Where Envoy's JWT filter (and the jwt_verify_lib it uses) decides in ways a plain JWT library
/// does not: claim types, audience spelling, keys without `kid` or `alg`, mixed key sets, token
/// extraction, and the sanitizing of output headers. Keys and tokens are made by the tests.
@Suite("RequestAuthentication: Envoy's JWT rules")
struct EnvoyJWTParityTests {
    let clock = ManualClock()
    let key = IssuerKey(kid: "k1")

    func authenticate(
        _ token: String, rules: [String], header: String = "authorization", value: String? = nil, validated: Bool = true
    ) async throws -> RequestAuthnResult {
        let request = cartRequest(headers: [header: value ?? "Bearer \(token)"])
        return await RequestAuthenticator(fetcher: ScriptedFetcher(), clock: clock)
            .authenticate(request, providers: try providers(rules: rules, validated: validated))
    }

    @Test(
        "registered claims of the wrong type make the token invalid, whatever its signature",
        arguments: [
            ("exp", JSONValue.string("4102444800")), ("nbf", .bool(true)), ("iat", .number(-1)), ("sub", .number(7)),
            ("iss", .array([])), ("aud", .number(3)), ("aud", .array([.string("shop"), .number(1)])), ("jti", .number(1)),
        ])
    func claimTypes(name: String, value: JSONValue) async throws {
        var claims = requestClaims(now: clock.now)
        claims.members[name] = value
        let result = try await authenticate(try await key.sign(any: claims), rules: [inlineRule(try jwksJSON([key.jwk]))])
        #expect(result.failure?.kind == .malformed, "\(name): \(result.failure?.reason ?? "accepted")")
        #expect(result.status == 401)
    }

    /// A token whose header and payload are the given JSON texts, as written, signed with `key`.
    func signed(header: String, payload: String) throws -> String {
        func part(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let input = part(header) + "." + part(payload)
        let signature = try key.privateKey.signature(for: Data(input.utf8)).rawRepresentation
        return input + "." + signature.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test("JSON that protobuf's parser refuses makes the token malformed, as in Envoy: a member named twice, a trailing comma")
    func strictJSON() async throws {
        let header = #"{"alg":"ES256","kid":"k1","typ":"JWT"}"#
        let exp = Int(clock.now.timeIntervalSince1970) + 600
        let claims = #""iss":"\#(requestIssuer)","aud":"shop","exp":\#(exp)"#
        let rules = [inlineRule(try jwksJSON([key.jwk]))]
        // The same claims, written plainly, are accepted: the check is the JSON, not the token.
        let plain = try await authenticate(try signed(header: header, payload: "{\(claims),\"sub\":\"alice\"}"), rules: rules)
        #expect(plain.failure == nil, "\(plain.failure?.reason ?? "")")
        #expect(plain.verified.first?.requestPrincipal == "\(requestIssuer)/alice")
        for (what, header, payload) in [
            ("sub twice", header, "{\(claims),\"sub\":\"alice\",\"sub\":\"mallory\"}"),
            ("trailing comma in the payload", header, "{\(claims),\"sub\":\"alice\",}"),
            ("trailing comma in a claim's list", header, "{\(claims),\"sub\":\"alice\",\"groups\":[\"a\",]}"),
            ("trailing comma in the header", #"{"alg":"ES256","kid":"k1",}"#, "{\(claims),\"sub\":\"alice\"}"),
        ] {
            let result = try await authenticate(try signed(header: header, payload: payload), rules: rules)
            #expect(result.failure?.kind == .malformed && result.status == 401, "\(what): \(result.failure?.reason ?? "accepted")")
            #expect(result.failure?.reason.contains("not strict") == true, "\(what): \(result.failure?.reason ?? "")")
        }
    }

    @Test("audiences compare without http:// or https:// and without a trailing slash")
    func audienceSpelling() async throws {
        let jwks = try jwksJSON([key.jwk])
        for (accepted, audience) in [("https://shop.example/", "shop.example"), ("shop.example", "http://shop.example/")] {
            let token = try await key.sign(any: requestClaims(now: clock.now, audience: .string(audience)))
            let rule = "{issuer: '\(requestIssuer)', audiences: ['\(accepted)'], jwks: '\(jwks)'}"
            #expect(try await authenticate(token, rules: [rule]).failure == nil, "\(accepted) vs \(audience)")
        }
        let other = try await key.sign(any: requestClaims(now: clock.now, audience: .string("https://other.example/")))
        let rule = "{issuer: '\(requestIssuer)', audiences: ['https://shop.example/'], jwks: '\(jwks)'}"
        #expect(try await authenticate(other, rules: [rule]).failure?.kind == .audienceNotAllowed)
    }

    @Test("a key without kid verifies tokens that name any kid; a key with another kid does not")
    func keyWithoutKid() async throws {
        var anonymous = key.jwk
        anonymous["kid"] = nil
        let token = try await key.sign(any: requestClaims(now: clock.now), headerKid: "whatever")
        #expect(try await authenticate(token, rules: [inlineRule(try jwksJSON([anonymous]))]).failure == nil)
        let named = try await authenticate(token, rules: [inlineRule(try jwksJSON([key.jwk]))])
        #expect(named.failure?.kind == .unknownKid)
    }

    @Test("an empty kid, in the token or on a key, counts as none: every key is tried")
    func emptyKid() async throws {
        let blank = try await key.sign(any: requestClaims(now: clock.now), headerKid: "")
        #expect(try await authenticate(blank, rules: [inlineRule(try jwksJSON([key.jwk]))]).failure == nil)
        var unnamed = key.jwk
        unnamed["kid"] = ""
        let named = try await key.sign(any: requestClaims(now: clock.now), headerKid: "k9")
        #expect(try await authenticate(named, rules: [inlineRule(try jwksJSON([unnamed]))]).failure == nil)
        // Another key's kid still rules a key out.
        var other = key.jwk
        other["kid"] = "k2"
        #expect(try await authenticate(named, rules: [inlineRule(try jwksJSON([other]))]).failure?.kind == .unknownKid)
    }

    @Test("an RSA key without alg verifies RS and PS tokens")
    func rsaWithoutAlg() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let rsa = try RSAIssuerKey(kid: "r1", in: directory)
        let rules = [inlineRule(try jwksJSON([try rsa.jwk(includeAlg: false)]))]
        for pss in [false, true] {
            let token = try await rsa.sign(any: requestClaims(now: clock.now), pss: pss)
            #expect(try await authenticate(token, rules: rules).failure == nil, pss ? "PS256" : "RS256")
        }
    }

    @Test("a key Rampart cannot use is left out of the set; the others still verify")
    func mixedKeySet() async throws {
        // Istio's webhook refuses an inline set with an unknown kty; a fetched set may still hold
        // one, and Envoy leaves such keys out. The rules are built without validation to see that.
        let broken: [String: String] = ["kty": "RSA", "kid": "bad", "n": "%%%", "e": "AQAB"]
        let unknown: [String: String] = ["kty": "XYZ", "kid": "odd"]
        let token = try await key.sign(any: requestClaims(now: clock.now))
        #expect(try await authenticate(token, rules: [inlineRule(try jwksJSON([unknown, broken, key.jwk]))], validated: false).failure == nil)
        let none = try await authenticate(token, rules: [inlineRule(try jwksJSON([unknown, broken]))], validated: false)
        #expect(none.failure?.kind == .keysUnavailable)
        #expect(none.failure?.reason.contains("no usable key") == true, "\(none.failure?.reason ?? "")")
    }

    @Test("an oct key verifies HS256, HS384 and HS512 tokens; a token signed with another secret is refused")
    func hmac() async throws {
        let secret = Array("a shared secret long enough for HS512, so sixty-four bytes or more".utf8)
        let encoded = Data(secret).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let rules = [inlineRule(try jwksJSON([["kty": "oct", "kid": "h1", "k": encoded]]))]
        for digest in [DigestAlgorithm.sha256, .sha384, .sha512] {
            let keys = JWTKeyCollection()
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: digest, kid: JWKIdentifier(string: "h1"))
            let token = try await keys.sign(requestClaims(now: clock.now), kid: JWKIdentifier(string: "h1"))
            #expect(try await authenticate(token, rules: rules).failure == nil)
        }
        let forged = JWTKeyCollection()
        await forged.add(hmac: HMACKey(from: "another secret, also long enough for HS256"), digestAlgorithm: .sha256, kid: JWKIdentifier(string: "h1"))
        let token = try await forged.sign(requestClaims(now: clock.now), kid: JWKIdentifier(string: "h1"))
        let forgedResult = try await authenticate(token, rules: rules)
        #expect(forgedResult.failure?.kind == .badSignature, "\(forgedResult.failure?.reason ?? "accepted")")
    }

    @Test("an oct key of any length verifies, as in Envoy: a short secret too, checked against swift-crypto's HMAC")
    func shortSecret() async throws {
        func base64URL(_ data: some Sequence<UInt8>) -> String {
            Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let secret = Array("sixteen byte key".utf8)
        let header = base64URL(Data(#"{"alg":"HS256","kid":"h1","typ":"JWT"}"#.utf8))
        let now = Int(clock.now.timeIntervalSince1970)
        let payload = base64URL(Data(#"{"aud":"shop","iss":"\#(requestIssuer)","sub":"alice","exp":\#(now + 600)}"#.utf8))
        // Signed with the 16-byte secret itself, by swift-crypto, not by the verifier's library.
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(payload)".utf8), using: SymmetricKey(data: secret))
        let token = "\(header).\(payload).\(base64URL(mac))"
        let jwks = try jwksJSON([["kty": "oct", "kid": "h1", "k": base64URL(secret)]])
        let accepted = try await authenticate(token, rules: [inlineRule(jwks)])
        #expect(accepted.failure == nil, "\(String(describing: accepted.failure))")
        #expect(accepted.outcome.requestPrincipal == "\(requestIssuer)/alice")
        // Another short secret does not verify it.
        let other = try jwksJSON([["kty": "oct", "kid": "h1", "k": base64URL(Array("sixteen byte kez".utf8))]])
        #expect(try await authenticate(token, rules: [inlineRule(other)]).failure != nil)
    }

    @Test("a header's prefix may stand anywhere in its value, and the token is the rest of the value after it")
    func extraction() async throws {
        let token = try await key.sign(any: requestClaims(now: clock.now))
        let jwks = try jwksJSON([key.jwk])
        let custom = [inlineRule(jwks, more: "fromHeaders: [{name: x-jwt, prefix: 'Bearer '}]")]
        let prefixed = try await authenticate(token, rules: custom, header: "x-jwt", value: "Token Bearer \(token)")
        #expect(prefixed.outcome.requestPrincipal == "\(requestIssuer)/alice")
        // Envoy keeps what follows the token: `<jwt>, other` and `<jwt> .junk` do not parse.
        for value in ["Bearer \(token), other", "Bearer \(token) .jjjj", "Bearer \(token)!"] {
            let trailing = try await authenticate(token, rules: [inlineRule(jwks)], value: value)
            #expect(trailing.failure?.kind == .malformed, "\(value): \(String(describing: trailing.failure))")
        }
        // Characters that cannot start a token are skipped after the prefix (`Bearer  "<jwt>`).
        let quoted = try await authenticate(token, rules: [inlineRule(jwks)], value: "Bearer  \"\(token)")
        #expect(quoted.failure == nil && quoted.outcome.valid)
        let missing = try await authenticate(token, rules: custom, header: "x-jwt", value: "bearer \(token)")
        #expect(!missing.tokenPresent)
    }

    @Test("the headers rules write are removed from every request, with or without a token")
    func sanitizing() async throws {
        let rules = [
            inlineRule(
                try jwksJSON([key.jwk]),
                more: "outputPayloadToHeader: x-jwt-payload, outputClaimToHeaders: [{header: X-Sub, claim: sub}, {header: x-missing, claim: nope}]")
        ]
        let request = cartRequest(headers: ["x-jwt-payload": "forged", "x-sub": "admin", "x-missing": "forged"])
        let anonymous = await RequestAuthenticator(fetcher: ScriptedFetcher(), clock: clock)
            .authenticate(request, providers: try providers(rules: rules))
        #expect(!anonymous.tokenPresent)
        #expect(anonymous.headerEdits == [.remove("x-jwt-payload"), .remove("x-sub"), .remove("x-missing")])
        let token = try await key.sign(any: requestClaims(now: clock.now))
        let verified = try await authenticate(token, rules: rules)
        #expect(verified.headerEdits.contains(.remove("x-missing")))
        #expect(verified.headerEdits.contains(.set("x-sub", "alice")))
        #expect(!verified.headerEdits.contains { if case .set("x-missing", _) = $0 { return true } else { return false } })
    }

    @Test("numbers written to headers follow Envoy: whole non-negative numbers as integers, others with six decimals")
    func numericClaimHeaders() {
        #expect(ClaimValue.number(42).headerValue == "42")
        #expect(ClaimValue.number(1.5).headerValue == "1.500000")
        #expect(ClaimValue.number(-3).headerValue == "-3.000000")
        #expect(ClaimValue.number(1e30).headerValue == "1000000000000000019884624838656.000000")
        #expect(ClaimValue.bool(true).headerValue == "true")
    }

    @Test("a list or object claim is written as its compact JSON in base64, as Envoy writes non-primitive claims")
    func structuredClaimHeaders() {
        func decoded(_ value: ClaimValue) -> String? {
            value.headerValue.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(ClaimValue.array([.string("g1"), .string("g2")]).headerValue == "WyJnMSIsImcyIl0=")
        #expect(decoded(.array([.string("a/b"), .number(5), .number(1.5), .bool(true)])) == #"["a/b",5,1.5,true]"#)
        #expect(decoded(.object(["key": .string("v"), "deep": .object(["x": .string("y")])])) == #"{"deep":{"x":"y"},"key":"v"}"#)
        #expect(decoded(.array([])) == "[]")
        // As protobuf's JSON printer escapes them.
        #expect(decoded(.array([.string("<b>"), .string("a\u{2028}b")])) == #"["\u003cb\u003e","a\u2028b"]"#)
        #expect(ClaimValue.null.headerValue == nil)
    }
}
