import Crypto
import Foundation
import JWTKit
import RampartAuthn
import RampartIdentity
import Testing

@Suite("JWT-SVIDs: signing, bundles and validation")
struct JWTSVIDTests {
    let web = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/demo/sa/web")
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func validator(_ signer: JWTSVIDSigner, trustDomain: String = "cluster.local") async throws -> JWTSVIDValidator {
        try await JWTSVIDValidator(bundles: [try TrustDomain(trustDomain): JWTBundle(keys: [signer.bundleKey])])
    }

    @Test("a signed JWT-SVID carries sub, aud, exp and a kid, and validates for its audience")
    func roundTrip() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let (token, expiresAt) = try await signer.sign(subject: web, audience: ["reviews", "ratings"], ttl: 300, now: now)
        #expect(expiresAt == now.addingTimeInterval(300))
        let validated = try await validator(signer).validate(token, audience: "ratings", now: now.addingTimeInterval(10))
        #expect(validated.spiffeID == web)
        #expect(validated.claims["sub"] == .string(web.string))
        #expect(validated.claims["exp"] == .number(now.timeIntervalSince1970 + 300))
        #expect(validated.claims["aud"] == .array([.string("reviews"), .string("ratings")]))

        let header = try DefaultJWTParser().parse(Array(token.utf8), as: TestClaims.self).header
        #expect(header.alg == "ES256")
        #expect(header.kid == signer.keyID)
        #expect(header.typ == "JWT")
    }

    @Test("a JWT-SVID whose crit header names an extension is invalid, as RFC 7515 and go-jose have it")
    func criticalHeader() async throws {
        let pem = JWTSVIDSigner.generateKeyPEM()
        let signer = try await JWTSVIDSigner(privateKeyPEM: pem)
        let keys = JWTKeyCollection()
        let kid = JWKIdentifier(string: signer.keyID)
        await keys.add(ecdsa: try ES256PrivateKey(pem: pem), kid: kid)
        let claims = TestClaims(sub: SubjectClaim(value: web.string), aud: AudienceClaim(value: ["reviews"]), exp: ExpirationClaim(value: now.addingTimeInterval(300)))
        let validator = try await validator(signer)
        let plain = try await keys.sign(claims, kid: kid, header: JWTHeader(fields: ["typ": .string("JWT")]))
        #expect(try await validator.validate(plain, audience: "reviews", now: now).spiffeID == web)
        let critical = try await keys.sign(claims, kid: kid, header: JWTHeader(fields: ["typ": .string("JWT"), "crit": .array([.string("foo")]), "foo": .int(1)]))
        do {
            _ = try await validator.validate(critical, audience: "reviews", now: now)
            Issue.record("a JWT-SVID with crit was accepted")
        } catch {
            #expect(error.code == .invalidCredential && error.reason.contains("crit"), "\(error)")
        }
    }

    @Test("the key ID is stable for a key and differs between keys")
    func stableKeyID() async throws {
        let pem = JWTSVIDSigner.generateKeyPEM()
        let first = try await JWTSVIDSigner(privateKeyPEM: pem)
        let again = try await JWTSVIDSigner(privateKeyPEM: pem)
        let other = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        #expect(first.keyID == again.keyID)
        #expect(first.keyID != other.keyID)
        #expect(!first.keyID.isEmpty)
    }

    @Test("the bundle is a SPIFFE JWKS: use jwt-svid, a kid, EC P-256 coordinates")
    func bundleDocument() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let json = JWTBundle(keys: [signer.bundleKey], sequence: 7, refreshHint: 300).json()
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let keys = try #require(object["keys"] as? [[String: Any]])
        #expect(keys.count == 1)
        #expect(keys[0]["use"] as? String == "jwt-svid")
        #expect(keys[0]["kid"] as? String == signer.keyID)
        #expect(keys[0]["kty"] as? String == "EC")
        #expect(keys[0]["crv"] as? String == "P-256")
        #expect(keys[0]["x"] is String && keys[0]["y"] is String)
        #expect(object["spiffe_sequence"] as? Int == 7)
        #expect(object["spiffe_refresh_hint"] as? Int == 300)
        // And it parses back to the same keys.
        #expect(try JWTBundle(json: json).keys == [signer.bundleKey])
    }

    @Test("a token for another audience is refused, naming both")
    func wrongAudience() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let (token, _) = try await signer.sign(subject: web, audience: ["reviews"], ttl: 300, now: now)
        let error = await #expect(throws: AuthnError.self) { try await validator(signer).validate(token, audience: "billing", now: now) }
        #expect(error?.code == .notPermitted)
        #expect(error?.reason.contains("reviews") == true && error?.reason.contains("billing") == true)
    }

    @Test("text that is not a JWT is refused saying what a JWT-SVID looks like, without the library's type names", arguments: ["garbage", "a.b.c", "e30.e30", ""])
    func notAJWT(text: String) async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let error = await #expect(throws: AuthnError.self) { try await validator(signer).validate(text, audience: "reviews", now: now) }
        #expect(error?.reason.contains("not a compact JWT") == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("JWTKitError") == false && error?.reason.contains("DecodingError") == false, "\(error?.reason ?? "")")
    }

    @Test("an expired token is refused")
    func expired() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let (token, _) = try await signer.sign(subject: web, audience: ["reviews"], ttl: 60, now: now)
        let error = await #expect(throws: AuthnError.self) { try await validator(signer).validate(token, audience: "reviews", now: now.addingTimeInterval(600)) }
        #expect(error?.reason.contains("expired") == true)
    }

    @Test("a token signed by a key outside the bundle is refused")
    func unknownKey() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let stranger = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let (token, _) = try await stranger.sign(subject: web, audience: ["reviews"], ttl: 300, now: now)
        let error = await #expect(throws: AuthnError.self) { try await validator(signer).validate(token, audience: "reviews", now: now) }
        #expect(error?.code == .invalidCredential)
        #expect(error?.reason.contains("kid") == true)
    }

    @Test("a token whose kid is known but whose signature is not the key's is refused")
    func forgedSignature() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let forger = JWTKeyCollection()
        await forger.add(ecdsa: ES256PrivateKey(), kid: JWKIdentifier(string: signer.keyID))
        let claims = TestClaims(iss: nil, sub: SubjectClaim(value: web.string), aud: AudienceClaim(value: ["reviews"]), exp: ExpirationClaim(value: now.addingTimeInterval(300)))
        let token = try await forger.sign(claims, kid: JWKIdentifier(string: signer.keyID))
        let error = await #expect(throws: AuthnError.self) { try await validator(signer).validate(token, audience: "reviews", now: now) }
        #expect(error?.code == .invalidCredential)
    }

    @Test("alg none, a non-SPIFFE subject and a missing audience are refused")
    func malformed() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let check = try await validator(signer)
        func segment(_ json: String) -> String { base64URL(Array(json.utf8)) }
        let none = segment(#"{"alg":"none","kid":"\#(signer.keyID)"}"#) + "." + segment(#"{"sub":"\#(web.string)","aud":"reviews","exp":1900000000}"#) + "."
        await #expect(throws: AuthnError.self) { try await check.validate(none, audience: "reviews", now: now) }

        let forger = JWTKeyCollection()
        await forger.add(ecdsa: ES256PrivateKey(), kid: JWKIdentifier(string: signer.keyID))
        let notSPIFFE = try await forger.sign(TestClaims(iss: nil, sub: SubjectClaim(value: "system:serviceaccount:demo:web"), aud: AudienceClaim(value: ["reviews"]), exp: ExpirationClaim(value: now.addingTimeInterval(60))))
        let error = await #expect(throws: AuthnError.self) { try await check.validate(notSPIFFE, audience: "reviews", now: now) }
        #expect(error?.reason.contains("SPIFFE ID") == true)

        await #expect(throws: AuthnError.self) { try await signer.sign(subject: web, audience: [], ttl: 60, now: now) }
        await #expect(throws: AuthnError.self) { try await signer.sign(subject: web, audience: ["a"], ttl: 0, now: now) }
        await #expect(throws: AuthnError.self) { try await check.validate("not-a-jwt", audience: "reviews", now: now) }
    }

    @Test("a token not valid yet (nbf past the skew), or whose exp or aud is missing or mistyped, is refused in words")
    func claimShapes() async throws {
        let pem = JWTSVIDSigner.generateKeyPEM()
        let signer = try await JWTSVIDSigner(privateKeyPEM: pem)
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: try ES256PrivateKey(pem: pem), kid: JWKIdentifier(string: signer.keyID))
        let check = try await validator(signer)
        func token(_ values: [String: JSONValue]) async throws -> String {
            try await keys.sign(RawClaims(values: values), kid: JWKIdentifier(string: signer.keyID))
        }
        let base: [String: JSONValue] = [
            "sub": .string(web.string), "aud": .string("reviews"), "exp": .number(now.timeIntervalSince1970 + 300),
        ]
        func refusal(_ values: [String: JSONValue]) async throws -> String {
            let text = try await token(values)
            do {
                _ = try await check.validate(text, audience: "reviews", now: now)
                return "accepted"
            } catch {
                return error.reason
            }
        }
        // nbf: 10 minutes ahead is refused; within the skew, or passed, is fine.
        #expect(try await refusal(base.merging(["nbf": .number(now.timeIntervalSince1970 + 600)]) { $1 }).contains("not valid before"))
        #expect(try await refusal(base.merging(["nbf": .number(now.timeIntervalSince1970 + 10)]) { $1 }) == "accepted")
        #expect(try await refusal(base.merging(["nbf": .number(now.timeIntervalSince1970 - 10)]) { $1 }) == "accepted")
        #expect(try await refusal(base.filter { $0.key != "exp" }).contains("no exp claim"))
        #expect(try await refusal(base.merging(["exp": .string("tomorrow")]) { $1 }).contains("exp claim is not a number"))
        #expect(try await refusal(base.filter { $0.key != "aud" }).contains("no aud claim"))
        #expect(try await refusal(base.merging(["aud": .number(1)]) { $1 }).contains("neither a string nor a list"))
        #expect(try await refusal(base.merging(["aud": .array([.string("ratings"), .string("reviews")])]) { $1 }) == "accepted")
        for reason in [try await refusal(base.filter { $0.key != "exp" }), try await refusal(base.merging(["aud": .number(1)]) { $1 })] {
            #expect(!reason.contains("DecodingError") && !reason.contains("CodingKeys"), "\(reason)")
        }
    }

    @Test("a token of another trust domain needs that domain's bundle")
    func otherTrustDomain() async throws {
        let signer = try await JWTSVIDSigner(privateKeyPEM: JWTSVIDSigner.generateKeyPEM())
        let foreign = try SPIFFEID(parsing: "spiffe://example.org/ns/a/sa/b")
        let (token, _) = try await signer.sign(subject: foreign, audience: ["reviews"], ttl: 300, now: now)
        let error = await #expect(throws: AuthnError.self) { try await validator(signer).validate(token, audience: "reviews", now: now) }
        #expect(error?.reason.contains("example.org") == true)
        let validated = try await validator(signer, trustDomain: "example.org").validate(token, audience: "reviews", now: now)
        #expect(validated.spiffeID == foreign)
    }

    @Test("a key that is not an EC P-256 PEM is refused with a reason")
    func badKey() async throws {
        await #expect(throws: AuthnError.self) { try await JWTSVIDSigner(privateKeyPEM: "not a key") }
    }
}

/// Any claims, as JSON values, for tokens of unusual shapes.
struct RawClaims: JWTPayload {
    var values: [String: JSONValue]

    init(values: [String: JSONValue]) {
        self.values = values
    }

    init(from decoder: any Decoder) throws {
        values = try [String: JSONValue](from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        try values.encode(to: encoder)
    }

    func verify(using algorithm: some JWTAlgorithm) throws {}
}
