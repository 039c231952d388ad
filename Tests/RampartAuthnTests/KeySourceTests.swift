import Foundation
import JWTKit
import RampartAuthn
import RampartIdentity
import Testing

@Suite("JWKS key sources and several issuers")
struct KeySourceTests {
    @Test("a missing JWKS file makes the key source unavailable")
    func missingFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = IssuerKey(kid: "k1")
        let path = directory.file("absent.json")
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        let token = try await key.sign(validClaims(now: now))
        await expectAuthnError(.keySourceUnavailable) { _ = try await authenticator.authenticate(token, now: now) }
        await expectAuthnError(.keySourceUnavailable) { try await authenticator.preload(now: now) }

        // Once the file appears, the same token is accepted: the failure was the missing file.
        try writeJWKS([key.jwk], to: directory, name: "absent.json")
        #expect(try await authenticator.authenticate(token, now: now).string == "spiffe://cluster.local/ns/shop/sa/cart")
    }

    @Test("a JWKS file that does not parse makes the key source unavailable", arguments: [
        "not json", "{}", #"{"keys":"#, #"{"keys":[{"kid":"k1"}]}"#,
    ])
    func unusableJWKS(contents: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = IssuerKey(kid: "k1")
        let path = try directory.write(contents, to: "jwks.json")
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        let token = try await key.sign(validClaims(now: now))
        await expectAuthnError(.keySourceUnavailable) { _ = try await authenticator.authenticate(token, now: now) }
    }

    @Test("a JWKS key with unusable coordinates makes the key source unavailable", arguments: [true, false])
    func unusableCoordinates(withAlg: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = IssuerKey(kid: "k1")
        var jwk = key.jwk
        jwk["x"] = "!!"
        jwk["y"] = "!!"
        if !withAlg { jwk["alg"] = nil }
        let path = try writeJWKS([jwk], to: directory)
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        let token = try await key.sign(validClaims(now: now))
        await expectAuthnError(.keySourceUnavailable) { try await authenticator.preload(now: now) }
        await expectAuthnError(.keySourceUnavailable) { _ = try await authenticator.authenticate(token, now: now) }
    }

    @Test("a JWKS key without alg (optional in RFC 7517) still verifies tokens")
    func keyWithoutAlg() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = IssuerKey(kid: "k1")
        var jwk = key.jwk
        jwk["alg"] = nil
        let path = try writeJWKS([jwk], to: directory)
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        let token = try await key.sign(validClaims(now: now))
        let id = try await authenticator.authenticate(token, now: now)
        #expect(id.string == "spiffe://cluster.local/ns/shop/sa/cart")
    }

    @Test("a JWKS key without a kid makes the key source unavailable")
    func keyWithoutKid() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = IssuerKey(kid: "k1")
        var jwk = key.jwk
        jwk["kid"] = nil
        let path = try writeJWKS([jwk], to: directory)
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        await expectAuthnError(.keySourceUnavailable) { try await authenticator.preload(now: Date()) }
    }

    @Test("each issuer's tokens verify only with that issuer's keys")
    func issuersAreSeparate() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let clusterA = IssuerKey(kid: "k1")
        let clusterB = IssuerKey(kid: "k1")  // the same kid, a different key
        let issuerA = "https://a.example"
        let issuerB = "https://b.example"
        let authenticator = JWTAuthenticator(
            issuers: [
                TrustedIssuer(issuer: issuerA, keys: .file(try writeJWKS([clusterA.jwk], to: directory, name: "a.json"))),
                TrustedIssuer(issuer: issuerB, keys: .file(try writeJWKS([clusterB.jwk], to: directory, name: "b.json"))),
            ],
            trustDomain: .clusterLocal
        )
        let now = Date()
        try await authenticator.preload(now: now)
        let fromA = try await clusterA.sign(validClaims(now: now, issuer: issuerA, subject: "system:serviceaccount:a:one"))
        let fromB = try await clusterB.sign(validClaims(now: now, issuer: issuerB, subject: "system:serviceaccount:b:two"))
        #expect(try await authenticator.authenticate(fromA, now: now).string == "spiffe://cluster.local/ns/a/sa/one")
        #expect(try await authenticator.authenticate(fromB, now: now).string == "spiffe://cluster.local/ns/b/sa/two")

        // Cluster A's key claiming to be issuer B.
        let impostor = try await clusterA.sign(validClaims(now: now, issuer: issuerB))
        await expectAuthnError(.invalidCredential) { _ = try await authenticator.authenticate(impostor, now: now) }
    }

    @Test("an authenticator with no issuers is disabled and trusts nobody")
    func noIssuers() async throws {
        let authenticator = JWTAuthenticator(issuers: [], trustDomain: .clusterLocal)
        #expect(!authenticator.isEnabled)
        let now = Date()
        let token = try await IssuerKey(kid: "k1").sign(validClaims(now: now))
        await expectAuthnError(.notPermitted) { _ = try await authenticator.authenticate(token, now: now) }
    }

    @Test("key sources are read as files or URLs")
    func keySourceParsing() {
        #expect(TrustedIssuer.KeySource("https://issuer.example/jwks") == .url("https://issuer.example/jwks"))
        #expect(TrustedIssuer.KeySource("http://localhost:8080/jwks") == .url("http://localhost:8080/jwks"))
        #expect(TrustedIssuer.KeySource("/etc/rampart/jwks.json") == .file("/etc/rampart/jwks.json"))
        #expect(TrustedIssuer.KeySource("jwks.json").description == "jwks.json")
    }

    @Test("tokens and JWKS made by Python's joserfc are accepted (ES256 and RS256)", .enabled(if: joserfcAvailable, "python3 with joserfc is needed"))
    func joserfcInterop() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let script = """
            import json, sys
            from joserfc import jwt, jwk
            out, iss, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
            ec = jwk.ECKey.generate_key("P-256", parameters={"kid": "py-ec", "alg": "ES256", "use": "sig"})
            rsa = jwk.RSAKey.generate_key(2048, parameters={"kid": "py-rsa", "alg": "RS256", "use": "sig"})
            other = jwk.ECKey.generate_key("P-256", parameters={"kid": "py-ec"})
            with open(out + "/jwks.json", "w") as f:
                json.dump({"keys": [ec.as_dict(private=False), rsa.as_dict(private=False)]}, f)
            claims = {"iss": iss, "aud": ["istio-ca"], "sub": "system:serviceaccount:shop:cart", "exp": now + 600, "iat": now}
            tokens = {
                "es256": jwt.encode({"alg": "ES256", "kid": "py-ec"}, claims, ec),
                "rs256": jwt.encode({"alg": "RS256", "kid": "py-rsa"}, claims, rsa),
                "expired": jwt.encode({"alg": "ES256", "kid": "py-ec"}, dict(claims, exp=now - 60), ec),
                "wrongkey": jwt.encode({"alg": "ES256", "kid": "py-ec"}, claims, other),
            }
            with open(out + "/tokens.json", "w") as f:
                json.dump(tokens, f)
            """
        let result = try runOnPath("python3", ["-c", script, directory.path, trustedIssuer, String(Int(now.timeIntervalSince1970))])
        try #require(result.status == 0, "python failed: \(result.output)")
        let tokens = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: directory.file("tokens.json"))))

        let authenticator = JWTAuthenticator(
            issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(directory.file("jwks.json")))], trustDomain: .clusterLocal
        )
        for name in ["es256", "rs256"] {
            let token = try #require(tokens[name])
            #expect(try await authenticator.authenticate(token, now: now).string == "spiffe://cluster.local/ns/shop/sa/cart", "\(name)")
        }
        let expired = try #require(tokens["expired"])
        await expectAuthnError(.notPermitted) { _ = try await authenticator.authenticate(expired, now: now) }
        let wrongKey = try #require(tokens["wrongkey"])
        await expectAuthnError(.invalidCredential) { _ = try await authenticator.authenticate(wrongKey, now: now) }
    }
}
