import Foundation
import JWTKit
import RampartAuthn
import RampartIdentity
import Testing

@Suite("RSA issuer keys")
struct RSAKeyTests {
    @Test("an RS256 token verifies against an RSA JWKS key, with or without alg", arguments: [true, false])
    func rs256Accepted(includeAlg: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = try RSAIssuerKey(kid: "r1", in: directory)
        let path = try writeJWKS([try key.jwk(includeAlg: includeAlg)], to: directory)
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        let id = try await authenticator.authenticate(try await key.sign(validClaims(now: now)), now: now)
        #expect(id.string == "spiffe://cluster.local/ns/shop/sa/cart")
        // A different RSA key under the same kid is refused.
        let impostor = try RSAIssuerKey(kid: "r1", in: directory)
        await expectAuthnError(.invalidCredential) {
            _ = try await authenticator.authenticate(try await impostor.sign(validClaims(now: now)), now: now)
        }
    }

    @Test("an unsigned token naming another algorithm cannot lock out a JWKS key that has no alg")
    func algorithmPoisoning() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = try RSAIssuerKey(kid: "r1", in: directory)
        let path = try writeJWKS([try key.jwk(includeAlg: false)], to: directory)
        let authenticator = JWTAuthenticator(issuers: [TrustedIssuer(issuer: trustedIssuer, keys: .file(path))], trustDomain: .clusterLocal)
        let now = Date()
        let legitimate = try await key.sign(validClaims(now: now))

        // Anyone can send this: a header naming RS512 for kid r1, a copied payload, and no valid signature.
        let header = base64URL(Array(#"{"alg":"RS512","kid":"r1","typ":"JWT"}"#.utf8))
        let payload = legitimate.split(separator: ".").map(String.init)[1]
        let poison = "\(header).\(payload).\(base64URL([UInt8](repeating: 7, count: 256)))"
        await expectAuthnError(.invalidCredential) { _ = try await authenticator.authenticate(poison, now: now) }

        let id = try await authenticator.authenticate(legitimate, now: now)
        #expect(id.string == "spiffe://cluster.local/ns/shop/sa/cart")
    }
}
