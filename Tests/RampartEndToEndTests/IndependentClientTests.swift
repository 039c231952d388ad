import Foundation
import Testing

/// Clients that share no code with Rampart: Python's grpcio built from its own copy of Istio's
/// CA proto, tokens signed by Python's joserfc, and curl against the admin port.
@Suite("Independent clients interoperate with the CA", .serialized)
struct IndependentClientTests {
    static let client = Paths.interop.appendingPathComponent("istio_ca_client.py").path

    func python(_ arguments: [String]) throws -> CommandResult {
        try run("python3", [Self.client] + arguments)
    }

    @Test("a Python grpcio client bootstraps with a token, renews over mTLS, and is refused after revoke")
    func pythonLifecycle() throws {
        let ca = try CAProcess(label: "python")
        try ca.start()
        let dir = ca.directory
        let addr = "127.0.0.1:\(ca.grpcPort)"
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/py/sa/app").trimmedOutput
        let (csr, key) = try OpenSSL.csr(in: dir, name: "py")

        let bootstrap = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--token", token, "--out", "\(dir)/py.pem"])
        #expect(bootstrap.succeeded, "\(bootstrap.stdout) \(bootstrap.stderr)")
        let verify = try run("openssl", ["verify", "-x509_strict", "-CAfile", ca.rootPath, "\(dir)/py.pem"])
        #expect(verify.succeeded, "\(verify.stdout)\(verify.stderr)")

        let renew = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--cert", "\(dir)/py.pem", "--key", key, "--ttl", "3600", "--out", "\(dir)/py2.pem"])
        #expect(renew.succeeded, "\(renew.stdout) \(renew.stderr)")
        let renewedPEM = try String(contentsOfFile: "\(dir)/py2.pem", encoding: .utf8)
        #expect(try OpenSSL.verify(chainPEM: [renewedPEM.components(separatedBy: "-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"], root: ca.rootPath, in: dir).succeeded)

        let renewedSerial = try serial(of: renewedPEM, in: dir)
        #expect(try rampart("cert", "revoke", "--state", ca.state, renewedSerial).succeeded)
        let refused = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--cert", "\(dir)/py2.pem", "--key", key, "--out", "\(dir)/py3.pem"])
        #expect(refused.status == 3)
        #expect(refused.stdout.hasPrefix("PERMISSION_DENIED"), "\(refused.stdout)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/py3.pem"))

        let none = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--out", "\(dir)/py4.pem"])
        #expect(none.stdout.hasPrefix("UNAUTHENTICATED"), "\(none.stdout)")
    }

    @Test("JWTs signed by joserfc map system:serviceaccount subjects to SPIFFE IDs; bad ones are refused")
    func jwtBootstrap() throws {
        let ca = try CAProcess(label: "jwt")
        let dir = ca.directory
        let tokens = try ca.startTrustingJoserfcTokens()
        let addr = "127.0.0.1:\(ca.grpcPort)"
        let (csr, _) = try OpenSSL.csr(in: dir, name: "jwt")

        let ok = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--token", tokens[0], "--out", "\(dir)/jwt.pem"])
        #expect(ok.succeeded, "\(ok.stdout) \(ok.stderr)")
        let text = try run("openssl", ["x509", "-noout", "-ext", "subjectAltName", "-in", "\(dir)/jwt.pem"]).stdout
        #expect(text.contains("URI:spiffe://cluster.local/ns/shop/sa/cart"), "\(text)")

        let expectations: [(Int, String, String)] = [
            (1, "PERMISSION_DENIED", "audience"),
            (2, "UNAUTHENTICATED", "kid k2"),
            (3, "PERMISSION_DENIED", "expired"),
            (4, "PERMISSION_DENIED", "system:serviceaccount"),
        ]
        for (index, status, mention) in expectations {
            let refused = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--token", tokens[index], "--out", "\(dir)/jwt\(index).pem"])
            #expect(refused.stdout.hasPrefix(status), "token \(index): \(refused.stdout)")
            #expect(refused.stdout.contains(mention), "token \(index): \(refused.stdout)")
        }
        // An unsigned token (alg none, an empty signature) is refused as the JWT it is.
        let unsigned = [#"{"alg":"none","typ":"JWT"}"#, #"{"iss":"x","sub":"y","exp":4102444800}"#].map {
            Data($0.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_")
        }.joined(separator: ".") + "."
        let none = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--token", unsigned, "--out", "\(dir)/none.pem"])
        #expect(!none.succeeded || !FileManager.default.fileExists(atPath: "\(dir)/none.pem"), "\(none.stdout)")
        #expect(!none.stdout.contains("neither a bootstrap token") && none.stdout.contains("JWT"), "\(none.stdout)")
        let list = try rampart("cert", "list", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/cart", "--json")
        #expect(list.stdout.contains("\"auth_method\" : \"jwt\""))
    }

    @Test("a JWKS served over HTTP on loopback is fetched by URL")
    func jwksURL() throws {
        let ca = try CAProcess(label: "jwks-url")
        let dir = ca.directory
        let issuer = "https://issuer.rampart.test"
        let made = try run("python3", [Paths.interop.appendingPathComponent("make_jwt.py").path, dir, issuer])
        let tokens = made.stdout.split(separator: "\n").map(String.init)
        try #require(tokens.count == 5)

        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-c", """
            import http.server, os, sys
            os.chdir(sys.argv[1])
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
            print(httpd.server_address[1], flush=True)
            httpd.serve_forever()
            """, dir]
        let out = Pipe()
        server.standardOutput = out
        server.standardError = FileHandle.nullDevice
        try server.run()
        // SIGKILL: a child of the test runner may inherit a mask that blocks SIGTERM.
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        var line = ""
        let deadline = Date().addingTimeInterval(20)
        while !line.contains("\n") && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { usleep(20_000) } else { line += String(decoding: chunk, as: UTF8.self) }
        }
        let port = try #require(Int(line.trimmingCharacters(in: .whitespacesAndNewlines)))

        try ca.start(extraArguments: ["--jwt-issuer", issuer, "--jwks", "http://127.0.0.1:\(port)/jwks.json"])
        let (csr, _) = try OpenSSL.csr(in: dir, name: "url")
        let addr = "127.0.0.1:\(ca.grpcPort)"
        let ok = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--token", tokens[0], "--out", "\(dir)/url.pem"])
        #expect(ok.succeeded, "\(ok.stdout) \(ok.stderr)")
        let unknownKid = try python(["--addr", addr, "--root", ca.rootPath, "--csr", csr, "--token", tokens[2], "--out", "\(dir)/url2.pem"])
        #expect(unknownKid.stdout.hasPrefix("UNAUTHENTICATED"), "\(unknownKid.stdout)")
    }

    @Test("bytes that are not an IstioCertificateRequest are refused with a reason in words, counted and audited")
    func undecodableRequests() async throws {
        let ca = try CAProcess(label: "raw")
        try ca.start()
        let addr = "127.0.0.1:\(ca.grpcPort)"
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b").trimmedOutput
        // csr (field 1) says 5 bytes and holds 1; then csr holding bytes that are not UTF-8.
        for (hex, says) in [("0a0541", "truncated"), ("0a02fffe", "UTF-8")] {
            let refused = try python(["--addr", addr, "--root", ca.rootPath, "--raw-hex", hex, "--token", token, "--out", "\(ca.directory)/raw.pem"])
            #expect(refused.status == 3, "\(refused.stdout) \(refused.stderr)")
            #expect(refused.stdout.hasPrefix("INVALID_ARGUMENT: ") && refused.stdout.contains(says), "\(refused.stdout)")
            #expect(refused.stdout.contains("IstioCertificateRequest") && !refused.stdout.contains("Istio_V1_Auth"), "\(refused.stdout)")
        }
        let metrics = try run("curl", ["-s", "http://127.0.0.1:\(ca.adminPort)/metrics"]).stdout
        #expect(metrics.contains("rampart_ca_issuances_total{result=\"invalid_argument\"} 2"), "\(metrics)")
        // Audited as refusals; the token was not spent by requests that said nothing.
        let query = """
            import sqlite3, sys
            c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
            print(c.execute("SELECT count(*) FROM audit_events WHERE details LIKE '%not an istio.v1.auth.IstioCertificateRequest%'").fetchone()[0])
            """
        var audited = ""
        for _ in 0..<50 where audited != "2" {
            audited = try run("python3", ["-c", query, "\(ca.state)/rampart.sqlite"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if audited != "2" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(audited == "2")
        let csr = try String(contentsOfFile: try OpenSSL.csr(in: ca.directory, name: "after").csr, encoding: .utf8)
        let chain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, bearer: token) }
        #expect(chain.count == 2)
    }

    @Test("curl reads readiness and Prometheus metrics from the admin port")
    func adminEndpoints() async throws {
        let ca = try CAProcess(label: "admin")
        try ca.start()
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b").trimmedOutput
        let csr = try String(contentsOfFile: try OpenSSL.csr(in: ca.directory, name: "m").csr, encoding: .utf8)
        _ = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, bearer: token) }
        _ = try? await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr) }

        let ready = try run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(ca.adminPort)/healthz/ready"])
        #expect(ready.stdout == "200")
        let metrics = try run("curl", ["-s", "-D", "-", "http://127.0.0.1:\(ca.adminPort)/metrics"]).stdout
        #expect(metrics.lowercased().contains("content-type: text/plain; version=0.0.4"))
        #expect(metrics.contains("rampart_ca_issuances_total{result=\"issued\"} 1"), "\(metrics)")
        #expect(metrics.contains("rampart_ca_issuances_total{result=\"unauthenticated\"} 1"))
        #expect(metrics.contains("rampart_ca_issuance_duration_seconds_bucket"))
        #expect(metrics.contains("rampart_ca_issuance_duration_seconds_count 2"))
        let expiry = metrics.split(separator: "\n").first { $0.hasPrefix("rampart_ca_cert_expiry_seconds ") }
        let seconds = expiry.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        // Ten calendar years (3652 or 3653 days with their leap days), less the moments since init.
        #expect(seconds > 3651 * 86400 && seconds <= 3653 * 86400, "\(String(describing: expiry))")
        // Every family has its HELP line, so Prometheus's own linter accepts the exposition.
        #expect(metrics.contains("# HELP rampart_ca_issuances_total "), "\(metrics)")
        let body = try run("curl", ["-s", "http://127.0.0.1:\(ca.adminPort)/metrics"]).stdout
        let lint = try run("promtool", ["check", "metrics"], input: body)
        #expect(lint.status == 0, "promtool check metrics: \(lint.stdout)\(lint.stderr)")
    }
}
