import Foundation
import JWTKit
import RampartAuthn
import Testing

/// Where Envoy's JWKS reader and istiod's fetching decide what Rampart reads: key fields of the
/// wrong type, RSA exponents, empty key sets, and the URLs keys may come from.
@Suite("JWKS reading and fetching as Envoy and istiod do")
struct JWKSReadingTests {
    @Test("a kid or alg that is not a string counts as absent: the key stays usable")
    func mistypedNames() async throws {
        let key = IssuerKey(kid: "k1")
        var members: [String: Any] = key.jwk
        members["kid"] = 5
        members["alg"] = 7
        let json = String(decoding: try JSONSerialization.data(withJSONObject: ["keys": [members]]), as: UTF8.self)
        let set = try await JWKSKeySet.load(json: json, origin: "test")
        #expect(!set.keys.isEmpty && set.keys.allSatisfy { $0.kid == nil }, "\(set.keys.map(\.kid))")
    }

    @Test("an entry of keys that is not a JSON object is skipped, and the set's other keys still verify")
    func nonObjectEntries() async throws {
        let key = IssuerKey(kid: "k1")
        let json = String(decoding: try JSONSerialization.data(withJSONObject: ["keys": ["a string", 5, NSNull(), [1, 2], key.jwk] as [Any]]), as: UTF8.self)
        let set = try await JWKSKeySet.load(json: json, origin: "test")
        #expect(set.keys.map(\.kid) == ["k1"], "\(set.keys.map(\.kid))")
        #expect(set.skipped.count == 4, "\(set.skipped)")
        #expect(set.skipped[0].contains("entry #0 of keys is a string"), "\(set.skipped)")
        #expect(set.skipped[2].contains("entry #2 of keys is null"), "\(set.skipped)")
        do {
            _ = try await JWKSKeySet.load(json: #"{"keys": ["only a string"]}"#, origin: "test")
            Issue.record("a set without one usable key was accepted")
        } catch {
            #expect(error.reason.contains("entry #0 of keys is a string, not a JWK object"), "\(error.reason)")
        }
    }

    @Test("an RSA key shorter than 2048 bits is left out with its length named")
    func shortRSAKey() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("short.key")
        let generated = try runOnPath("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", path])
        try #require(generated.status == 0, "\(generated.output)")
        let printed = try runOnPath("openssl", ["rsa", "-in", path, "-noout", "-modulus"])
        let hex = try #require(printed.output.split(separator: "=").last?.trimmingCharacters(in: .whitespacesAndNewlines))
        var modulus: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            modulus.append(try #require(UInt8(hex[index..<next], radix: 16)))
            index = next
        }
        let json = try jwksJSON([["kty": "RSA", "kid": "short", "n": base64URL(modulus), "e": "AQAB"]])
        do {
            _ = try await JWKSKeySet.load(json: json, origin: "test")
            Issue.record("a 1024-bit key was kept")
        } catch {
            #expect(error.reason.contains("key short is an RSA key of 1024 bits"), "\(error.reason)")
        }
    }

    @Test("an RSA key whose public exponent is not 3 or 65537 is dropped, and says why")
    func rsaExponent() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var jwk = try RSAIssuerKey(kid: "r1", in: directory).jwk()
        #expect(jwk["e"] == "AQAB")
        let usable = try await JWKSKeySet.load(json: try jwksJSON([jwk]), origin: "test")
        #expect(usable.keys.count == 1)
        jwk["e"] = "EQ"  // 17
        let seventeen = try jwksJSON([jwk])
        do {
            _ = try await JWKSKeySet.load(json: seventeen, origin: "test")
            Issue.record("a key with exponent 17 was kept")
        } catch {
            #expect(error.reason.contains("public exponent other than 3 or 65537"), "\(error.reason)")
        }
    }

    @Test("a key marked with an alg its type cannot verify (an RSA key marked ES256) is left out, and says why")
    func algForAnotherKeyType() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var jwk = try RSAIssuerKey(kid: "r1", in: directory).jwk()
        jwk["alg"] = "ES256"
        let marked = try jwksJSON([jwk])
        do {
            _ = try await JWKSKeySet.load(json: marked, origin: "test")
            Issue.record("an RSA key marked ES256 was kept")
        } catch {
            #expect(error.reason.contains("key r1 (kty RSA) declares alg ES256, which such a key cannot verify"), "\(error.reason)")
        }
        jwk["alg"] = "PS256"
        #expect(try await JWKSKeySet.load(json: try jwksJSON([jwk]), origin: "test").keys.map(\.algorithm) == ["PS256"])
    }

    @Test("the X.509 form some issuers publish (kid → PEM certificate) is read as RSA keys without alg, as Envoy reads it: RS and PS")
    func x509Form() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyPath = directory.file("issuer.key")
        let certificatePath = directory.file("issuer.pem")
        #expect(try runOnPath("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keyPath]).status == 0)
        #expect(try runOnPath("openssl", ["req", "-x509", "-key", keyPath, "-subj", "/CN=issuer", "-days", "1", "-out", certificatePath]).status == 0)
        let json = String(
            decoding: try JSONSerialization.data(withJSONObject: ["x1": try String(contentsOfFile: certificatePath, encoding: .utf8)]),
            as: UTF8.self)
        let set = try await JWKSKeySet.load(json: json, origin: "test")
        #expect(Set(set.keys.map(\.kid)) == ["x1"])
        #expect(set.keys.map(\.algorithm) == ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])

        let privateKey = try Insecure.RSA.PrivateKey(pem: try String(contentsOfFile: keyPath, encoding: .utf8))
        let clock = ManualClock()
        let rules = try providers(rules: [inlineRule(json)], validated: false)
        for pss in [false, true] {
            let signer = JWTKeyCollection()
            if pss {
                await signer.add(pss: privateKey, digestAlgorithm: .sha256, kid: JWKIdentifier(string: "x1"))
            } else {
                await signer.add(rsa: privateKey, digestAlgorithm: .sha256, kid: JWKIdentifier(string: "x1"))
            }
            let token = try await signer.sign(requestClaims(now: clock.now), kid: JWKIdentifier(string: "x1"))
            let result = await RequestAuthenticator(fetcher: ScriptedFetcher(), clock: clock)
                .authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
            #expect(result.failure == nil, "\(pss ? "PS256" : "RS256"): \(result.failure?.reason ?? "")")
        }
    }

    @Test("a JWKS with no key at all refuses every token with its own failure")
    func noKeys() async throws {
        let key = IssuerKey(kid: "k1")
        let token = try await key.sign(any: requestClaims(now: Date()))
        let result = await RequestAuthenticator(fetcher: ScriptedFetcher(), clock: ManualClock())
            .authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: try providers(rules: [inlineRule(#"{"keys": []}"#)]))
        #expect(result.failure?.kind == .noKeys && result.status == 401, "\(String(describing: result.failure))")
    }

    @Test("redirects are followed as istiod's Go client follows them: nine, not ten")
    func redirectLimit() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        try server.serve(#"{"keys": []}"#, at: "keys.json")
        let fetcher = AsyncHTTPClientFetcher()
        // The count is under test, not the time: ten round trips to a Python server get a deadline
        // a machine running the whole suite on two cores still meets.
        #expect(try await fetcher.get(server.url("hops/9/keys.json"), timeout: .seconds(60)) == #"{"keys": []}"#)
        do {
            _ = try await fetcher.get(server.url("hops/10/keys.json"), timeout: .seconds(60))
            Issue.record("followed ten redirects")
        } catch {
            #expect(error.reason.contains("redirects 10 times or more"), "\(error.reason)")
        }
    }

    @Test(
        "keys are fetched over http and https only, as istiod fetches them",
        arguments: ["http+unix://%2Ftmp%2Fs.sock/keys", "file:///etc/passwd", "ftp://127.0.0.1/keys", "/relative/keys", "unix:///tmp/s"])
    func schemes(url: String) async throws {
        do {
            _ = try await AsyncHTTPClientFetcher().get(url, timeout: .seconds(1))
            Issue.record("fetched \(url)")
        } catch {
            #expect(error.code == .keySourceUnavailable && error.reason.contains("http:// or https://"), "\(error.reason)")
        }
    }
}
