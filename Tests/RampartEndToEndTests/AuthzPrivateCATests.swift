import Foundation
import Testing

/// `authz check --jwks-extra-root-ca`: a jwksUri on an https server whose certificate a private CA
/// signs, served by Python's TLS stack, with the CA made by openssl.
@Suite("authz check with keys from a private CA's server")
struct AuthzPrivateCATests {
    /// Makes a CA and a certificate it signs for 127.0.0.1 in `dir`; returns the CA certificate,
    /// the server's certificate and its key.
    static func privateCA(in dir: String) throws -> (ca: String, certificate: String, key: String) {
        let (caKey, ca, key, csr, certificate, ext) = (
            "\(dir)/ca.key", "\(dir)/ca.pem", "\(dir)/server.key", "\(dir)/server.csr", "\(dir)/server.pem", "\(dir)/server.ext"
        )
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(toFile: ext, atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKey, "-out", ca,
             "-subj", "/CN=keys CA", "-days", "1", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
            ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", certificate],
        ]
        for step in steps {
            let result = try run("openssl", step)
            try #require(result.succeeded, "openssl \(step[0]) failed: \(result.stderr)")
        }
        for file in [caKey, key] { chmod(file, 0o600) }
        return (ca, certificate, key)
    }

    @Test("the token's keys are fetched once the CA is given; without it the reason names the option; a bad file is refused")
    func privateCAKeys() throws {
        let dir = try Paths.temporaryDirectory("authz-private-ca")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (ca, certificate, key) = try Self.privateCA(in: dir)
        let issuer = AuthzRealTokenTests.Issuer()
        let site = "\(dir)/site"
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        try issuer.jwks.write(toFile: "\(site)/jwks.json", atomically: true, encoding: .utf8)
        let server = try ServiceProcess(
            "/usr/bin/python3", [Paths.interop.appendingPathComponent("tls_file_server.py").path, site, certificate, key],
            logFile: "\(dir)/server.log", marker: "listening")
        defer { server.stop() }
        let port = try #require(server.port(after: "listening "))
        let policies = "\(dir)/policies.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules:
              - issuer: \(AuthzRealTokenTests.issuer)
                jwksUri: https://127.0.0.1:\(port)/jwks.json
                timeout: 5s
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: alice-only, namespace: shop}
            spec:
              rules:
              - from: [{source: {requestPrincipals: ["\(AuthzRealTokenTests.issuer)/alice"]}}]
            """.write(toFile: policies, atomically: true, encoding: .utf8)
        let requestFile = "\(dir)/request.yaml"
        let token = try issuer.token(AuthzRealTokenTests.claims())
        try AuthzRealTokenTests.request(headers: "{authorization: \"Bearer \(token)\"}").write(toFile: requestFile, atomically: true, encoding: .utf8)

        func check(_ extra: String...) throws -> (CommandResult, [String: Any]?) {
            let result = try run(Paths.rampart, ["authz", "check", "--policies", policies, "--request", requestFile, "--json"] + extra)
            return (result, try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }

        let (_, refused) = try check()
        #expect(refused?["status"] as? Int == 401, "\(String(describing: refused))")
        let reason = refused?["reason"] as? String ?? ""
        #expect(reason.contains("does not verify") && reason.contains("--jwks-extra-root-ca"), "\(reason)")

        let (_, allowed) = try check("--jwks-extra-root-ca", ca)
        #expect(allowed?["decision"] as? String == "allow", "\(String(describing: allowed))")
        #expect(allowed?["policy"] as? String == "shop/alice-only")

        let (bad, _) = try check("--jwks-extra-root-ca", key)
        #expect(!bad.succeeded)
        #expect(bad.stderr.contains("--jwks-extra-root-ca") && bad.stderr.contains(key) && bad.stderr.contains("no certificate"), "\(bad.stderr)")
    }
}
