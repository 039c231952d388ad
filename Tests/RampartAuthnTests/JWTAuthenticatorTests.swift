import Crypto
import Foundation
import JWTKit
import RampartAuthn
import RampartIdentity
import Testing

@Suite("JWT authentication of service-account tokens")
struct JWTAuthenticatorTests {
    /// A trusted issuer with one key `k1` in a JWKS file, and an authenticator for it.
    struct Fixture {
        let directory: TemporaryDirectory
        let key: IssuerKey
        let authenticator: JWTAuthenticator
        let now: Date

        init(trustDomain: TrustDomain = .clusterLocal) throws {
            directory = try TemporaryDirectory()
            key = IssuerKey(kid: "k1")
            let path = try writeJWKS([key.jwk], to: directory)
            authenticator = JWTAuthenticator(
                issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], audience: "istio-ca", trustDomain: trustDomain
            )
            now = Date()
        }

        func authenticate(_ claims: TestClaims) async throws -> SPIFFEID {
            try await authenticator.authenticate(try await key.sign(claims), now: now)
        }
    }

    @Test("a JWKS file that is a folder, not text, or holds no key is refused at start with what is wrong")
    func unusableKeyFiles() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let empty = try directory.write(#"{"keys": []}"#, to: "empty.json")
        let binary = directory.file("binary.json")
        FileManager.default.createFile(atPath: binary, contents: Data([0xff, 0xfe, 0x00, 0x81]))
        for (path, says) in [(empty, "holds no key"), (binary, "not UTF-8 text"), (directory.path, "is a folder"), (directory.file("none.json"), "does not exist")] {
            let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
            do {
                try await authenticator.preload()
                Issue.record("\(path) was accepted as a key source")
            } catch {
                #expect(error.reason.contains(says), "\(error.reason)")
            }
        }
    }

    @Test("a valid service-account token maps to its SPIFFE ID")
    func validToken() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let id = try await fixture.authenticate(validClaims(now: fixture.now))
        #expect(id.string == "spiffe://cluster.local/ns/shop/sa/cart")
        #expect(id.istioWorkload?.namespace == "shop")
        #expect(id.istioWorkload?.serviceAccount == "cart")
        #expect(fixture.authenticator.isEnabled)
    }

    @Test("the subject maps into the configured trust domain", arguments: [
        ("system:serviceaccount:default:default", "spiffe://example.org/ns/default/sa/default"),
        ("system:serviceaccount:istio-system:istio-ingressgateway", "spiffe://example.org/ns/istio-system/sa/istio-ingressgateway"),
        ("system:serviceaccount:a.b:c_d", "spiffe://example.org/ns/a.b/sa/c_d"),
    ])
    func subjectMapping(subject: String, expected: String) async throws {
        let fixture = try Fixture(trustDomain: try TrustDomain("example.org"))
        defer { fixture.directory.remove() }
        let id = try await fixture.authenticate(validClaims(now: fixture.now, subject: subject))
        #expect(id.string == expected)
    }

    @Test("an audience given as a single string, or among others, is accepted")
    func audienceShapes() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        for audience in [AudienceClaim(value: "istio-ca"), AudienceClaim(value: ["https://kubernetes.default.svc", "istio-ca"])] {
            var claims = validClaims(now: fixture.now)
            claims.aud = audience
            #expect(try await fixture.authenticate(claims).string == "spiffe://cluster.local/ns/shop/sa/cart")
        }
    }

    @Test("a token signed by a key whose kid is not in the JWKS is an invalid credential")
    func unknownKid() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let stranger = IssuerKey(kid: "k2")
        let token = try await stranger.sign(validClaims(now: fixture.now))
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(token, now: fixture.now) }
    }

    @Test("a token naming an unknown kid is refused even when signed by the trusted key")
    func unknownKidWithTrustedKey() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        // jwt-kit would fall back to its only (default) key and accept this signature.
        let token = try await fixture.key.sign(validClaims(now: fixture.now), headerKid: "k2")
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(token, now: fixture.now) }
    }

    @Test("a token signed by one JWKS key but naming another's kid is an invalid credential")
    func kidOfAnotherKey() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = IssuerKey(kid: "k1")
        let second = IssuerKey(kid: "k2")
        let path = try writeJWKS([first.jwk, second.jwk], to: directory)
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        #expect(try await authenticator.authenticate(try await second.sign(validClaims(now: now)), now: now).string.hasSuffix("/sa/cart"))
        let token = try await first.sign(validClaims(now: now), headerKid: "k2")
        await expectAuthnError(.invalidCredential) { _ = try await authenticator.authenticate(token, now: now) }
    }

    @Test("a token without a kid is an invalid credential")
    func missingKid() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let token = try await fixture.key.signWithoutKid(validClaims(now: fixture.now))
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(token, now: fixture.now) }
    }

    @Test("a token from an untrusted issuer is not permitted")
    func wrongIssuer() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        await expectAuthnError(.notPermitted) {
            _ = try await fixture.authenticate(validClaims(now: fixture.now, issuer: "https://evil.example"))
        }
    }

    @Test("a token without an issuer is an invalid credential")
    func missingIssuer() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        var claims = validClaims(now: fixture.now)
        claims.iss = nil
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticate(claims) }
    }

    @Test("a token for another audience, or none, is not permitted", arguments: [["kubernetes"], ["istio-ca-other"], [], nil] as [[String]?])
    func wrongAudience(audience: [String]?) async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        var claims = validClaims(now: fixture.now)
        claims.aud = audience.map { AudienceClaim(value: $0) }
        await expectAuthnError(.notPermitted) { _ = try await fixture.authenticate(claims) }
    }

    @Test("an expired token is not permitted")
    func expired() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        var claims = validClaims(now: fixture.now)
        claims.exp = ExpirationClaim(value: fixture.now.addingTimeInterval(-5))
        await expectAuthnError(.notPermitted) { _ = try await fixture.authenticate(claims) }
        // The same token was fine before it expired.
        let token = try await fixture.key.sign(claims)
        #expect(try await fixture.authenticator.authenticate(token, now: fixture.now.addingTimeInterval(-10)).string.hasSuffix("/sa/cart"))
    }

    @Test("a token without an expiry is refused")
    func missingExpiry() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        var claims = validClaims(now: fixture.now)
        claims.exp = nil
        do {
            _ = try await fixture.authenticate(claims)
            Issue.record("a token without exp was accepted")
        } catch let error as AuthnError {
            #expect([AuthnError.Code.invalidCredential, .notPermitted].contains(error.code))
        }
    }

    @Test("a token not yet valid beyond the skew allowance is not permitted")
    func notYetValid() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        var claims = validClaims(now: fixture.now)
        claims.nbf = NotBeforeClaim(value: fixture.now.addingTimeInterval(300))
        await expectAuthnError(.notPermitted) { _ = try await fixture.authenticate(claims) }
        claims.nbf = NotBeforeClaim(value: fixture.now.addingTimeInterval(30))
        #expect(try await fixture.authenticate(claims).string.hasSuffix("/sa/cart"))
    }

    @Test("a subject that is not a service account is not permitted", arguments: [
        "alice", "system:serviceaccount:shop", "system:serviceaccount:shop:cart:extra", "system:serviceaccount::cart",
        "system:serviceaccount:shop:", "system:node:shop:cart", "system:serviceaccount:shop:ca rt", "",
    ])
    func notAServiceAccount(subject: String) async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        await expectAuthnError(.notPermitted) { _ = try await fixture.authenticate(validClaims(now: fixture.now, subject: subject)) }
    }

    @Test("a token with a tampered signature or payload is an invalid credential")
    func tampered() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let token = try await fixture.key.sign(validClaims(now: fixture.now))
        #expect(try await fixture.authenticator.authenticate(token, now: fixture.now).string.hasSuffix("/sa/cart"))
        let parts = token.split(separator: ".").map(String.init)
        try #require(parts.count == 3)

        var signature = try #require(base64URLDecode(parts[2]))
        signature[10] ^= 0x01
        let badSignature = [parts[0], parts[1], base64URL(signature)].joined(separator: ".")
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(badSignature, now: fixture.now) }

        // Swap the payload for one naming another service account, keeping the original signature.
        let forged = try await fixture.key.sign(validClaims(now: fixture.now, subject: "system:serviceaccount:kube-system:admin"))
        let forgedPayload = forged.split(separator: ".").map(String.init)[1]
        let swapped = [parts[0], forgedPayload, parts[2]].joined(separator: ".")
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(swapped, now: fixture.now) }
    }

    @Test("a token whose crit header names an extension is an invalid credential, as RFC 7515 requires")
    func criticalHeader() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        for crit: JWTHeaderField in [.array([.string("foo")]), .string("foo")] {
            let token = try await fixture.key.sign(validClaims(now: fixture.now), header: ["crit": crit, "foo": .int(1)])
            do {
                _ = try await fixture.authenticator.authenticate(token, now: fixture.now)
                Issue.record("a token with crit \(crit) was accepted")
            } catch {
                #expect(error.code == .invalidCredential && error.reason.contains("crit"), "\(error)")
            }
        }
        // The same token without crit is accepted.
        #expect(try await fixture.authenticator.authenticate(try await fixture.key.sign(validClaims(now: fixture.now), header: [:]), now: fixture.now).string == "spiffe://cluster.local/ns/shop/sa/cart")
    }

    @Test("an unsigned token (alg none) is an invalid credential")
    func algNone() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let header = base64URL(Array(#"{"alg":"none","typ":"JWT","kid":"k1"}"#.utf8))
        let payload = try await fixture.key.sign(validClaims(now: fixture.now)).split(separator: ".").map(String.init)[1]
        for token in ["\(header).\(payload).", "\(header).\(payload)"] {
            await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(token, now: fixture.now) }
        }
    }

    @Test("something that is not a JWT is an invalid credential", arguments: ["", "not a token", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"])
    func notAJWT(token: String) async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        await expectAuthnError(.invalidCredential) { _ = try await fixture.authenticator.authenticate(token, now: fixture.now) }
    }
}
