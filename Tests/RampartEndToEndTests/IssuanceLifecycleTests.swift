import Foundation
import GRPCCore
import RampartControlPlane
import Testing

/// Drives a real `rampart ca serve` process through the whole life of a workload certificate.
@Suite("CA end to end: bootstrap, renew, revoke", .serialized)
struct IssuanceLifecycleTests {
    @Test("a workload bootstraps with a token, renews over mTLS, and is refused after revocation", arguments: ["ec", "rsa:2048", "p384"])
    func lifecycle(keyType: String) async throws {
        let ca = try CAProcess(label: "lifecycle")
        try ca.start()
        let id = "spiffe://cluster.local/ns/shop/sa/cart"
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", id, "--ttl", "5m")
        #expect(token.succeeded, "\(token.stderr)")
        let (csrPath, keyPath) = try OpenSSL.csr(in: ca.directory, name: "cart", key: keyType)
        let csr = try String(contentsOfFile: csrPath, encoding: .utf8)

        let chain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, bearer: token.trimmedOutput) }
        #expect(chain.count == 2, "leaf then root")
        #expect(chain.last?.trimmingCharacters(in: .whitespacesAndNewlines) == ca.rootPEM.trimmingCharacters(in: .whitespacesAndNewlines))
        let verified = try OpenSSL.verify(chainPEM: chain, root: ca.rootPath, in: ca.directory)
        #expect(verified.succeeded, "openssl verify: \(verified.stdout) \(verified.stderr)")
        let text = try OpenSSL.text(of: chain[0], in: ca.directory)
        #expect(text.contains("URI:\(id)"))
        #expect(text.contains("CA:FALSE"))
        #expect(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
        if keyType.hasPrefix("rsa") { #expect(text.contains("Digital Signature, Key Encipherment")) }

        // Renew over mTLS with the certificate just received.
        let key = try String(contentsOfFile: keyPath, encoding: .utf8)
        let renewed = try await ca.client(chainPEM: chain.joined(separator: "\n"), keyPEM: key).withConnection {
            try await $0.createCertificate(csrPEM: csr, validitySeconds: 3600)
        }
        #expect(try OpenSSL.verify(chainPEM: renewed, root: ca.rootPath, in: ca.directory).succeeded)
        #expect(try OpenSSL.text(of: renewed[0], in: ca.directory).contains("URI:\(id)"))

        // Revoke the renewed certificate while the CA runs; renewing with it is then refused.
        let list = try rampart("cert", "list", "--state", ca.state, "--spiffe-id", id, "--json")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(entries.count == 2)
        let renewedSerial = try serial(of: renewed[0], in: ca.directory)
        #expect(entries.contains { ($0["serial"] as? String) == renewedSerial })
        let revoke = try rampart("cert", "revoke", "--state", ca.state, renewedSerial, "--reason", "keyCompromise")
        #expect(revoke.succeeded, "\(revoke.stderr)")
        do {
            _ = try await ca.client(chainPEM: renewed.joined(separator: "\n"), keyPEM: key).withConnection {
                try await $0.createCertificate(csrPEM: csr)
            }
            Issue.record("renewal with a revoked certificate succeeded")
        } catch let error as RPCError {
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("revoked"))
        }
        let after = try rampart("cert", "show", "--state", ca.state, renewedSerial, "--json")
        #expect(after.stdout.contains("\"status\" : \"revoked\""))
        #expect(after.stdout.contains("keyCompromise"))
    }

    @Test("cert list filters by identity and expiry, and cert show and audit verify work on a live store")
    func operatorCommands() async throws {
        let ca = try CAProcess(label: "operator")
        try ca.start()
        for (name, ttl) in [("a", "20m"), ("b", "10h")] {
            let id = "spiffe://cluster.local/ns/ops/sa/\(name)"
            let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", id).trimmedOutput
            let csr = try String(contentsOfFile: try OpenSSL.csr(in: ca.directory, name: name).csr, encoding: .utf8)
            let seconds: Int64 = ttl == "20m" ? 1200 : 36000
            _ = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, validitySeconds: seconds, bearer: token) }
        }
        let all = try JSONSerialization.jsonObject(with: Data(try rampart("cert", "list", "--state", ca.state, "--json").stdout.utf8)) as? [[String: Any]]
        // Two workloads plus the CA's own serving certificate.
        #expect(all?.count == 3)
        for entry in all ?? [] {
            for field in ["serial", "spiffe_id", "not_before", "not_after", "status"] { #expect(entry[field] != nil, "missing \(field)") }
        }
        let soon = try JSONSerialization.jsonObject(with: Data(try rampart("cert", "list", "--state", ca.state, "--expiring-within", "1h", "--json").stdout.utf8)) as? [[String: Any]]
        #expect(soon?.count == 1)
        #expect(soon?.first?["spiffe_id"] as? String == "spiffe://cluster.local/ns/ops/sa/a")
        let missing = try rampart("cert", "show", "--state", ca.state, "deadbeef")
        // Not found is a failure (1), as 'get' reports it, not a usage error (64).
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no certificate with serial deadbeef"))
        let unknown = try rampart("cert", "revoke", "--state", ca.state, "deadbeef")
        #expect(unknown.status == 1 && !unknown.stderr.contains("Usage:"), "\(unknown.stderr)")
        let audit = try rampart("audit", "verify", "--state", ca.state)
        #expect(audit.succeeded, "\(audit.stdout)")
        #expect(audit.stdout.contains("intact"))
    }

    @Test("cert sign issues offline for an admin and records it")
    func offlineSign() throws {
        let ca = try CAProcess(label: "sign")
        let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "batch")
        let signed = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", "spiffe://cluster.local/ns/batch/sa/job", "--ttl", "2h")
        #expect(signed.succeeded, "\(signed.stderr)")
        let chain = signed.stdout.components(separatedBy: "-----END CERTIFICATE-----").filter { $0.contains("BEGIN") }.map { $0 + "-----END CERTIFICATE-----\n" }
        #expect(chain.count == 2)
        #expect(try OpenSSL.verify(chainPEM: chain, root: ca.rootPath, in: ca.directory).succeeded)
        let list = try rampart("cert", "list", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/batch/sa/job", "--json")
        #expect(list.stdout.contains("\"auth_method\" : \"admin\""))
        let wrongDomain = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", "spiffe://other.org/ns/a/sa/b")
        #expect(!wrongDomain.succeeded)
        // A lifetime out of the CA's bounds is refused in the terms it was given in, and nothing is issued.
        for (ttl, bound) in [("91d", "longest certificate lifetime, 90d"), ("5s", "shortest certificate lifetime, 10s")] {
            let refused = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", "spiffe://cluster.local/ns/batch/sa/job", "--ttl", ttl)
            #expect(refused.status == 64 && refused.stderr.contains("--ttl \(ttl) is") && refused.stderr.contains(bound), "\(refused.stderr)")
        }
        let after = try rampart("cert", "list", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/batch/sa/job", "--json")
        #expect(after.stdout == list.stdout)
        #expect(wrongDomain.stderr.contains("trust domain"))
        // The CA makes no SPIFFE ID longer than the specification's 2048 bytes.
        let long = "spiffe://cluster.local/ns/batch/sa/" + String(repeating: "j", count: 2100)
        let tooLong = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", long)
        #expect(!tooLong.succeeded)
        #expect(tooLong.stderr.contains("2048 bytes"), "\(tooLong.stderr)")
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", long)
        #expect(!token.succeeded && token.stderr.contains("2048 bytes"), "\(token.stderr)")
    }
}

/// The serial of a PEM certificate as lowercase hex, read by openssl.
func serial(of pem: String, in directory: String) throws -> String {
    let file = "\(directory)/serial-\(UUID().uuidString.prefix(6)).pem"
    try pem.write(toFile: file, atomically: true, encoding: .utf8)
    let output = try run("openssl", ["x509", "-noout", "-serial", "-in", file]).trimmedOutput
    var hex = output.replacingOccurrences(of: "serial=", with: "").lowercased()
    while hex.hasPrefix("0") && hex.count > 1 { hex.removeFirst() }
    return hex
}
