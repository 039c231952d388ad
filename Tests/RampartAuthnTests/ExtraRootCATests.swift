import Foundation
import RampartAuthn
import Testing

/// A private CA made by openssl for one test, and a certificate it signs for 127.0.0.1. Its
/// directory, keys included, goes when the test lets go of it.
final class PrivateCA {
    let directory: TemporaryDirectory
    let certificate: String
    let serverChain: String
    let serverKey: String

    init(name: String) throws {
        directory = try TemporaryDirectory()
        let caKey = directory.file("\(name)-ca.key")
        certificate = directory.file("\(name)-ca.pem")
        serverKey = directory.file("\(name)-server.key")
        serverChain = directory.file("\(name)-server.pem")
        let csr = directory.file("\(name)-server.csr")
        let extensions = try directory.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", to: "\(name)-server.ext")
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKey, "-out", certificate,
             "-subj", "/CN=\(name) keys CA", "-days", "1", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign"],
            ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", serverKey, "-out", csr,
             "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", certificate, "-CAkey", caKey, "-CAcreateserial", "-days", "1",
             "-extfile", extensions, "-out", serverChain],
        ]
        for step in steps {
            let result = try runOnPath("openssl", step)
            try #require(result.status == 0, "openssl \(step[0]) failed: \(result.output)")
        }
        for key in [caKey, serverKey] { chmod(key, 0o600) }
    }

    deinit { directory.remove() }
}

/// A JWKS on an https server whose certificate a private CA signs: fetched only when that CA is
/// given as an extra root, as istiod fetches with `jwksResolverExtraRootCA`.
@Suite("keys from a server of a private CA")
struct ExtraRootCATests {
    @Test("without the CA the fetch fails and says which option adds it; with it, the document comes back")
    func privateCAKeyServer() async throws {
        let ca = try PrivateCA(name: "keys")
        let server = try LocalHTTPServer(tls: (ca.serverChain, ca.serverKey))
        defer { server.stop() }
        let key = IssuerKey(kid: "private")
        let document = try jwksJSON([key.jwk])
        try server.serve(document, at: "jwks.json")
        let url = server.url("jwks.json")
        #expect(url.hasPrefix("https://"))

        do {
            _ = try await AsyncHTTPClientFetcher().get(url, timeout: .seconds(30))
            Issue.record("a certificate of a private CA was accepted without that CA")
        } catch {
            #expect(error.reason.contains("does not verify") && error.reason.contains("--jwks-extra-root-ca"), "\(error.reason)")
        }

        let trusted = AsyncHTTPClientFetcher(extraRoots: try ExtraRootCertificates(path: ca.certificate))
        #expect(try await trusted.get(url, timeout: .seconds(30)) == document)

        // The whole path: a token verified with keys from that server.
        let rules = try providers(rules: ["{issuer: '\(requestIssuer)', jwksUri: '\(url)', timeout: 30s}"])
        let token = try await key.sign(any: requestClaims(now: Date()))
        let result = await RequestAuthenticator(fetcher: trusted)
            .authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(result.failure == nil, "\(result.failure?.reason ?? "")")
        #expect(result.outcome.requestPrincipal == "\(requestIssuer)/alice")
    }

    @Test("the CA's trusted issuers: an https --jwks of a private CA's server works with that CA only")
    func bootstrapIssuerKeys() async throws {
        let ca = try PrivateCA(name: "issuer")
        let server = try LocalHTTPServer(tls: (ca.serverChain, ca.serverKey))
        defer { server.stop() }
        let key = IssuerKey(kid: "k1")
        try server.serve(try jwksJSON([key.jwk]), at: "openid/v1/jwks")
        let issuers = [TrustedIssuer(issuer: trustedIssuer, keys: .url(server.url("openid/v1/jwks")))]

        let untrusted = JWTAuthenticator(issuers: issuers, trustDomain: .clusterLocal)
        do {
            try await untrusted.preload()
            Issue.record("the issuer's keys loaded from a server no trusted root vouches for")
        } catch {
            #expect(error.reason.contains("--jwks-extra-root-ca"), "\(error.reason)")
        }

        let trusted = JWTAuthenticator(
            issuers: issuers, trustDomain: .clusterLocal,
            fetcher: AsyncHTTPClientFetcher(extraRoots: try ExtraRootCertificates(path: ca.certificate)))
        let now = Date()
        let id = try await trusted.authenticate(try await key.sign(validClaims(now: now)), now: now)
        #expect(id.string == "spiffe://cluster.local/ns/shop/sa/cart")
    }

    @Test("another CA as the extra root still refuses the server, naming the file trusted")
    func otherCA() async throws {
        let ca = try PrivateCA(name: "keys")
        let other = try PrivateCA(name: "other")
        let server = try LocalHTTPServer(tls: (ca.serverChain, ca.serverKey))
        defer { server.stop() }
        try server.serve(#"{"keys": []}"#, at: "jwks.json")
        let fetcher = AsyncHTTPClientFetcher(extraRoots: try ExtraRootCertificates(path: other.certificate))
        do {
            _ = try await fetcher.get(server.url("jwks.json"), timeout: .seconds(30))
            Issue.record("a certificate was accepted on another CA's word")
        } catch {
            #expect(error.reason.contains(other.certificate) && error.reason.contains("does not verify"), "\(error.reason)")
        }
    }

    @Test("an extra root file that is missing, not PEM, or holds no certificate is refused, saying what to give")
    func badFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try PrivateCA(name: "keys")
        let cases: [(path: String, says: String)] = [
            (directory.file("missing.pem"), "does not exist"),
            (try directory.write("not a certificate\n", to: "text.pem"), "no certificate"),
            (ca.serverKey, "no certificate"),
            (try directory.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", to: "broken.pem"), "does not parse"),
        ]
        for (path, says) in cases {
            do {
                _ = try ExtraRootCertificates(path: path)
                Issue.record("\(path) was accepted as extra roots")
            } catch {
                #expect(error.reason.contains(path) && error.reason.contains(says), "\(error.reason)")
            }
        }
        // Two certificates in one file are both kept.
        let other = try PrivateCA(name: "other")
        let bundle = try directory.write(
            try String(contentsOfFile: ca.certificate, encoding: .utf8) + String(contentsOfFile: other.certificate, encoding: .utf8),
            to: "bundle.pem")
        #expect(try ExtraRootCertificates(path: bundle).certificates.count == 2)
    }
}
