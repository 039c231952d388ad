import Foundation
import Testing

/// `rampart ca init`: self-signed roots, Istio's plug-in CA files made by openssl, and refusals.
@Suite("ca init", .serialized)
struct CAInitTests {
    /// Makes Istio's plug-in layout with openssl: a root and an intermediate signed by it.
    static func makePluginCerts(in dir: String) throws {
        let ext = "\(dir)/intermediate.ext"
        try "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/root.key", "-out", "\(dir)/root-cert.pem",
             "-days", "3650", "-subj", "/O=cluster.local/CN=Plugin Root", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/ca-key.pem", "-out", "\(dir)/ca.csr",
             "-subj", "/O=cluster.local/CN=Plugin Intermediate"],
            ["x509", "-req", "-in", "\(dir)/ca.csr", "-CA", "\(dir)/root-cert.pem", "-CAkey", "\(dir)/root.key", "-CAcreateserial", "-days", "365",
             "-out", "\(dir)/ca-cert.pem", "-extfile", ext],
        ]
        for step in steps {
            let result = try run("openssl", step)
            #expect(result.succeeded, "openssl \(step[0]): \(result.stderr)")
        }
        let chain = try String(contentsOfFile: "\(dir)/ca-cert.pem", encoding: .utf8) + String(contentsOfFile: "\(dir)/root-cert.pem", encoding: .utf8)
        try chain.write(toFile: "\(dir)/cert-chain.pem", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: "\(dir)/root.key")
    }

    @Test("plug-in CA files made by openssl: issued chains are leaf, intermediate, root and verify")
    func pluginCerts() async throws {
        let ca = try CAProcess(label: "plugin", initialize: false)
        let plugin = "\(ca.directory)/cacerts"
        try FileManager.default.createDirectory(atPath: plugin, withIntermediateDirectories: true)
        try Self.makePluginCerts(in: plugin)
        let initialized = try rampart("ca", "init", "--state", ca.state, "--plugin-certs", plugin)
        #expect(initialized.succeeded, "\(initialized.stderr)")
        #expect(initialized.stdout.contains("plugin"))
        let mode = try FileManager.default.attributesOfItem(atPath: "\(ca.state)/ca-key.pem")[.posixPermissions] as? Int
        #expect(mode == 0o600)

        try ca.start()
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/p/sa/q").trimmedOutput
        let csr = try String(contentsOfFile: try OpenSSL.csr(in: ca.directory, name: "p").csr, encoding: .utf8)
        let chain = try await ca.client().withConnection { try await $0.createCertificate(csrPEM: csr, bearer: token) }
        #expect(chain.count == 3)
        let root = try String(contentsOfFile: "\(plugin)/root-cert.pem", encoding: .utf8)
        #expect(chain.last?.trimmingCharacters(in: .whitespacesAndNewlines) == root.trimmingCharacters(in: .whitespacesAndNewlines))
        let verified = try OpenSSL.verify(chainPEM: chain, root: "\(plugin)/root-cert.pem", in: ca.directory)
        #expect(verified.succeeded, "\(verified.stdout)\(verified.stderr)")
    }

    @Test("plug-in CAs on keys the CA cannot use are refused as such, and no state directory is left", arguments: [
        (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-224"], "key the CA cannot use"),
        (["-newkey", "rsa:1024"], "RSA key under 2048 bits"),
    ])
    func unusablePluginKeys(key: [String], says: String) throws {
        let dir = try Paths.temporaryDirectory("plugin-key")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plugin = "\(dir)/cacerts"
        try FileManager.default.createDirectory(atPath: plugin, withIntermediateDirectories: true)
        let made = try run("openssl", ["req", "-x509"] + key + ["-nodes", "-keyout", "\(plugin)/ca-key.pem", "-out", "\(plugin)/ca-cert.pem",
                                                            "-days", "30", "-subj", "/CN=Weak CA", "-addext", "basicConstraints=critical,CA:TRUE"])
        try #require(made.succeeded, "\(made.stderr)")
        for name in ["root-cert.pem", "cert-chain.pem"] {
            try FileManager.default.copyItem(atPath: "\(plugin)/ca-cert.pem", toPath: "\(plugin)/\(name)")
        }
        let result = try rampart("ca", "init", "--state", "\(dir)/state", "--plugin-certs", plugin)
        #expect(!result.succeeded && result.stderr.contains(says), "\(result.stderr)")
        #expect(!result.stderr.contains("Optional(") && !result.stderr.contains(".swift"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/state"), "a refused init left its state directory behind")
    }

    @Test("plug-in files that do not fit together are refused with the reason", arguments: ["mismatched-key", "not-a-ca", "wrong-root", "missing-file"])
    func badPluginCerts(defect: String) throws {
        let dir = try Paths.temporaryDirectory("badplugin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plugin = "\(dir)/cacerts"
        try FileManager.default.createDirectory(atPath: plugin, withIntermediateDirectories: true)
        try Self.makePluginCerts(in: plugin)
        let expected: String
        switch defect {
        case "mismatched-key":
            try FileManager.default.removeItem(atPath: "\(plugin)/ca-key.pem")
            _ = try run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "\(plugin)/ca-key.pem"])
            expected = "does not match"
        case "not-a-ca":
            let (csr, key) = try OpenSSL.csr(in: dir, name: "leaf")
            _ = try run("openssl", ["x509", "-req", "-in", csr, "-signkey", key, "-days", "30", "-out", "\(plugin)/ca-cert.pem"])
            try FileManager.default.removeItem(atPath: "\(plugin)/ca-key.pem")
            try FileManager.default.copyItem(atPath: key, toPath: "\(plugin)/ca-key.pem")
            expected = "not a CA certificate"
        case "wrong-root":
            _ = try run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/other.key",
                                    "-out", "\(plugin)/root-cert.pem", "-days", "30", "-subj", "/CN=Other Root", "-addext", "basicConstraints=critical,CA:TRUE"])
            expected = "does not chain"
        default:
            try FileManager.default.removeItem(atPath: "\(plugin)/cert-chain.pem")
            expected = "cert-chain.pem is missing"
        }
        let result = try rampart("ca", "init", "--state", "\(dir)/state", "--plugin-certs", plugin)
        #expect(!result.succeeded)
        #expect(result.stderr.contains(expected), "\(defect): \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/state/ca-key.pem"), "a refused init must not leave a key behind")
    }

    @Test("init refuses to overwrite existing state, and leaves it untouched")
    func refusesOverwrite() throws {
        let ca = try CAProcess(label: "overwrite")
        let keyBefore = try Data(contentsOf: URL(fileURLWithPath: "\(ca.state)/ca-key.pem"))
        let again = try rampart("ca", "init", "--state", ca.state)
        #expect(!again.succeeded)
        #expect(again.stderr.contains("refusing to overwrite"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(ca.state)/ca-key.pem")) == keyBefore)
        let badDomain = try rampart("ca", "init", "--state", "\(ca.directory)/other", "--trust-domain", "Bad_Domain!")
        #expect(!badDomain.succeeded)
        #expect(badDomain.stderr.contains("--trust-domain"))
        let longDomain = try rampart(
            "ca", "init", "--state", "\(ca.directory)/long", "--trust-domain", String(repeating: "a", count: 256))
        #expect(!longDomain.succeeded)
        #expect(longDomain.stderr.contains("256 bytes") && longDomain.stderr.contains("at most 255"), "\(longDomain.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(ca.directory)/long"), "a refused init must not create its state")
    }

    @Test("an init that fails part way takes back what it wrote, so that a second one after the fix succeeds; a path no folder can be made at is said so")
    func failedInitCleansUp() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-init-fail-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A folder where SQLite keeps its log: the store cannot be made after the keys are written.
        try FileManager.default.createDirectory(atPath: "\(dir)/rampart.sqlite-wal", withIntermediateDirectories: true)
        let failed = try rampart("ca", "init", "--state", dir)
        #expect(!failed.succeeded)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(left == ["rampart.sqlite-wal"], "a failed init left \(left)")
        try FileManager.default.removeItem(atPath: "\(dir)/rampart.sqlite-wal")
        #expect(try rampart("ca", "init", "--state", dir).succeeded)
        let proc = try rampart("ca", "init", "--state", "/proc/rampart-state")
        #expect(proc.status != 0 && proc.stderr.contains("no folder can be made there") && !proc.stderr.contains("The operation could not be completed"), "\(proc.stderr)")
    }

    @Test("init makes roots of each key type, and openssl accepts them as CAs", arguments: ["ec-p256", "ec-p384", "rsa-2048"])
    func keyTypes(keyType: String) throws {
        let ca = try CAProcess(label: "keytype", initArguments: ["--key-type", keyType])
        let text = try run("openssl", ["x509", "-noout", "-text", "-in", ca.rootPath]).stdout
        #expect(text.contains("CA:TRUE"))
        #expect(text.contains(keyType.hasPrefix("rsa") ? "rsaEncryption" : "id-ecPublicKey"))
        let selfVerify = try run("openssl", ["verify", "-x509_strict", "-CAfile", ca.rootPath, ca.rootPath])
        #expect(selfVerify.succeeded, "\(selfVerify.stderr)")
    }
}
