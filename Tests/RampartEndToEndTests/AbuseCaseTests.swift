import Foundation
import GRPCCore
import RampartControlPlane
import Testing

/// Requests the CA must refuse, each with the status Istio's agents and operators expect,
/// and none of which may leave a certificate behind.
@Suite("CA refuses abusive requests", .serialized)
struct AbuseCaseTests {
    struct Attempt {
        var csr: String
        var validity: Int64 = 0
        var bearer: String?
        var chain: String?
        var key: String?
        var fields: [String: String] = [:]
    }

    struct Case {
        let name: String
        let expected: RPCError.Code
        let mentions: String
        let attempt: Attempt
    }

    @Test("every abuse case is refused with its status and nothing is issued")
    func abuseTable() async throws {
        let ca = try CAProcess(label: "abuse")
        try ca.start()
        let dir = ca.directory
        let id = "spiffe://cluster.local/ns/shop/sa/cart"
        func token(_ identity: String = id, ttl: String = "10m") throws -> String {
            let result = try rampart("token", "create", "--state", ca.state, "--spiffe-id", identity, "--ttl", ttl)
            #expect(result.succeeded, "\(result.stderr)")
            return result.trimmedOutput
        }
        func csr(_ name: String, key: String = "ec", _ extra: [String] = []) throws -> String {
            try String(contentsOfFile: try OpenSSL.csr(in: dir, name: name, key: key, extraArguments: extra).csr, encoding: .utf8)
        }
        let good = try csr("good")
        let goodKey = try String(contentsOfFile: "\(dir)/good.key", encoding: .utf8)

        // Credentials prepared before counting.
        let usedToken = try token()
        _ = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: good, bearer: usedToken) }
        let shortToken = try token(ttl: "1s")
        let sparedToken = try token()
        let validChain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: good, bearer: try token()) }
        let revokedChain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: good, bearer: try token()) }
        #expect(try rampart("cert", "revoke", "--state", ca.state, try serial(of: revokedChain[0], in: dir)).succeeded)
        // Each PEM of the chain ends with a newline, as istiod sends them: joined, openssl reads them.
        #expect(validChain.count == 2 && validChain.allSatisfy { $0.hasSuffix("-----END CERTIFICATE-----\n") }, "\(validChain)")
        let expiring = try rampart("cert", "sign", "--state", ca.state, "--csr", "\(dir)/good.csr", "--spiffe-id", id, "--ttl", "10s")
        #expect(expiring.succeeded, "\(expiring.stderr)")
        let expiringSignedAt = Date()
        let foreign = try CAProcess(label: "foreign")
        let foreignSigned = try rampart("cert", "sign", "--state", foreign.state, "--csr", "\(dir)/good.csr", "--spiffe-id", id)
        #expect(foreignSigned.succeeded)

        // Signed with this CA's own key by openssl, outside the CA: it chains, but no record of it
        // exists, so it cannot renew.
        let unrecordedExtensions = "\(dir)/unrecorded.ext"
        try "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:\(id)\n"
            .write(toFile: unrecordedExtensions, atomically: true, encoding: .utf8)
        let unrecordedSigned = try run(
            "openssl",
            [
                "x509", "-req", "-in", "\(dir)/good.csr", "-CA", "\(ca.state)/ca-cert.pem", "-CAkey", "\(ca.state)/ca-key.pem",
                "-set_serial", "0x5eed0000000000000000000000000001", "-days", "1", "-sha256", "-extfile", unrecordedExtensions,
            ])
        #expect(unrecordedSigned.succeeded, "openssl x509 -req failed: \(unrecordedSigned.stderr)")

        var tampered = Array(Data(base64Encoded: good.components(separatedBy: "\n").filter { !$0.hasPrefix("-----") }.joined())!)
        tampered[tampered.count - 5] ^= 0x01
        let badSignature = "-----BEGIN CERTIFICATE REQUEST-----\n\(Data(tampered).base64EncodedString(options: .lineLength64Characters))\n-----END CERTIFICATE REQUEST-----\n"

        let cases: [Case] = [
            Case(name: "no credential at all", expected: .unauthenticated, mentions: "no credential", attempt: Attempt(csr: good)),
            Case(name: "unknown bootstrap token", expected: .unauthenticated, mentions: "unknown", attempt: Attempt(csr: good, bearer: "rbt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            Case(name: "bootstrap token used twice", expected: .permissionDenied, mentions: "already used", attempt: Attempt(csr: good, bearer: usedToken)),
            Case(name: "expired bootstrap token", expected: .permissionDenied, mentions: "expired", attempt: Attempt(csr: good, bearer: shortToken)),
            Case(name: "bearer credential that is neither token nor JWT", expected: .unauthenticated, mentions: "neither", attempt: Attempt(csr: good, bearer: "hunter2")),
            Case(name: "JWT while no issuer is trusted", expected: .unauthenticated, mentions: "not configured", attempt: Attempt(csr: good, bearer: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")),
            Case(name: "CSR that is not PEM", expected: .invalidArgument, mentions: "BEGIN CERTIFICATE REQUEST", attempt: Attempt(csr: "hello", bearer: sparedToken)),
            Case(name: "empty CSR", expected: .invalidArgument, mentions: "empty", attempt: Attempt(csr: "", bearer: sparedToken)),
            Case(name: "CSR with a bad signature", expected: .invalidArgument, mentions: "signature", attempt: Attempt(csr: badSignature, bearer: sparedToken)),
            Case(name: "RSA 1024 key", expected: .invalidArgument, mentions: "1024", attempt: Attempt(csr: try csr("rsa1024", key: "rsa:1024"), bearer: sparedToken)),
            Case(name: "P-521 key", expected: .invalidArgument, mentions: "P-521", attempt: Attempt(csr: try csr("p521", key: "p521"), bearer: sparedToken)),
            Case(name: "P-224 key", expected: .invalidArgument, mentions: "curve P-224", attempt: Attempt(csr: try csr("p224", key: "p224"), bearer: sparedToken)),
            Case(name: "secp256k1 key", expected: .invalidArgument, mentions: "curve secp256k1", attempt: Attempt(csr: try csr("k1", key: "secp256k1"), bearer: sparedToken)),
            Case(name: "RSA-PSS signed CSR", expected: .invalidArgument, mentions: "CSR", attempt: Attempt(csr: try csr("pss", key: "rsa:2048", ["-sigopt", "rsa_padding_mode:pss", "-sha256"]), bearer: sparedToken)),
            Case(name: "CSR asking for another identity", expected: .permissionDenied, mentions: "spiffe://cluster.local/ns/admin/sa/root", attempt: Attempt(csr: try csr("other", ["-addext", "subjectAltName=URI:spiffe://cluster.local/ns/admin/sa/root"]), bearer: sparedToken)),
            Case(name: "CSR asking for CA:true", expected: .invalidArgument, mentions: "CA:true", attempt: Attempt(csr: try csr("ca", ["-addext", "basicConstraints=critical,CA:TRUE"]), bearer: sparedToken)),
            Case(name: "validity above 90 days", expected: .invalidArgument, mentions: "maximum", attempt: Attempt(csr: good, validity: 90 * 86400 + 1, bearer: sparedToken)),
            Case(name: "validity below 10 seconds", expected: .invalidArgument, mentions: "minimum", attempt: Attempt(csr: good, validity: 5, bearer: sparedToken)),
            Case(name: "negative validity", expected: .invalidArgument, mentions: "negative", attempt: Attempt(csr: good, validity: -60, bearer: sparedToken)),
            Case(name: "renewal with a revoked certificate", expected: .permissionDenied, mentions: "revoked", attempt: Attempt(csr: good, chain: revokedChain.joined(separator: "\n"), key: goodKey)),
            Case(name: "renewal with a certificate this CA's key signed but never recorded", expected: .unauthenticated, mentions: "no record", attempt: Attempt(csr: good, chain: unrecordedSigned.stdout, key: goodKey)),
            Case(name: "renewal with another CA's certificate", expected: .unauthenticated, mentions: "does not chain", attempt: Attempt(csr: good, chain: foreignSigned.stdout, key: goodKey)),
            Case(name: "Istio's ImpersonatedIdentity metadata", expected: .unauthenticated, mentions: "ImpersonatedIdentity spiffe://cluster.local/ns/admin/sa/root", attempt: Attempt(csr: good, bearer: sparedToken, fields: ["ImpersonatedIdentity": "spiffe://cluster.local/ns/admin/sa/root"])),
            Case(name: "CSR for another identity while renewing", expected: .permissionDenied, mentions: "authenticated as", attempt: Attempt(csr: try csr("renew-other", ["-addext", "subjectAltName=URI:spiffe://cluster.local/ns/x/sa/y"]), chain: validChain.joined(separator: "\n"), key: goodKey)),
        ]
        #expect(cases.count >= 15)
        try await Task.sleep(for: .seconds(1.2))  // let the 1-second token expire

        let before = try issuedCount(ca)
        for item in cases {
            do {
                let chain = try await ca.client(chainPEM: item.attempt.chain, keyPEM: item.attempt.key).withConnection {
                    try await $0.createCertificate(
                        csrPEM: item.attempt.csr, validitySeconds: item.attempt.validity, bearer: item.attempt.bearer,
                        fields: item.attempt.fields)
                }
                Issue.record("\(item.name): issued a chain of \(chain.count) instead of refusing")
            } catch let error as RPCError {
                #expect(error.code == item.expected, "\(item.name): got \(error.code) \(error.message)")
                #expect(error.message.contains(item.mentions), "\(item.name): message \"\(error.message)\" should mention \(item.mentions)")
            }
        }

        // An expired client certificate cannot renew.
        let wait = 11.5 - Date().timeIntervalSince(expiringSignedAt)
        if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
        do {
            _ = try await ca.client(chainPEM: expiring.stdout, keyPEM: goodKey).withConnection { try await $0.createCertificate(csrPEM: good) }
            Issue.record("an expired certificate renewed")
        } catch let error as RPCError {
            #expect(error.code == .unauthenticated)
            #expect(error.message.contains("expired"), "\(error.message)")
        }
        #expect(try issuedCount(ca) == before, "a refused request left a certificate in the store")

        // Refusals for a bad CSR did not spend the token they came with.
        let spared = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: good, bearer: sparedToken) }
        #expect(spared.count == 2)
        #expect(try issuedCount(ca) == before + 1)
    }

    func issuedCount(_ ca: CAProcess) throws -> Int {
        let list = try rampart("cert", "list", "--state", ca.state, "--json")
        let array = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any]
        return array?.count ?? -1
    }
}
