import Foundation
import RampartIdentity
import RampartPKI
import Testing
import X509

@Suite("CA material: creating, writing and loading")
struct CAMaterialTests {
    static let allFiles = [CAMaterial.FileName.caCert, CAMaterial.FileName.caKey, CAMaterial.FileName.certChain, CAMaterial.FileName.rootCert]

    @Test("a new root is a self-signed CA for the trust domain", arguments: [KeyAlgorithm.ecP256, .rsa2048])
    func rootShape(algorithm: KeyAlgorithm) throws {
        // Most of a second past a whole one: certificates hold whole seconds.
        let now = wholeSecondNow().addingTimeInterval(0.7)
        let trustDomain = try TrustDomain("example.org")
        let root = try CAMaterial.createRoot(trustDomain: trustDomain, keyAlgorithm: algorithm, now: now)
        let cert = root.certificate
        #expect(cert.subject == cert.issuer)
        #expect(cert.publicKey.isValidSignature(cert.signature, for: cert))
        #expect(cert.publicKey == root.privateKey.publicKey)
        #expect(try KeyAlgorithm.classify(cert.publicKey).get() == algorithm)
        guard case .isCertificateAuthority = try cert.extensions.basicConstraints else {
            Issue.record("root is not a CA")
            return
        }
        #expect(try cert.extensions.keyUsage?.keyCertSign == true)
        let sans = try #require(try cert.extensions.subjectAlternativeNames)
        #expect(Array(sans) == [.uniformResourceIdentifier("spiffe://example.org")])
        #expect(cert.notValidBefore < now)
        // Ten calendar years from the whole second the root was made in, never later than `now` + 10 years.
        #expect(cert.notValidAfter == CAMaterial.rootExpiry(createdAt: Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))))
        #expect(cert.notValidAfter <= CAMaterial.rootExpiry(createdAt: now))
        let years = Calendar(identifier: .gregorian).dateComponents(
            in: TimeZone(identifier: "UTC")!, from: cert.notValidAfter).year! - Calendar(identifier: .gregorian)
            .dateComponents(in: TimeZone(identifier: "UTC")!, from: now).year!
        #expect(years == 10)
        #expect(root.chain == [cert])
        #expect(root.roots == [cert])
        #expect(root.latestNotAfter == cert.notValidAfter)
        #expect(try root.chainPEM().map { try Certificate(pemEncoded: $0) } == [cert])
    }

    @Test("writing a root creates the plug-in files with a 0600 key, refuses to overwrite, and loads back")
    func writeThenLoad() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        try CAMaterial.write(root, to: directory.path)

        for name in Self.allFiles {
            #expect(FileManager.default.fileExists(atPath: directory.file(name)), "\(name) is missing")
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.file(CAMaterial.FileName.caKey))
        let mode = try #require(attributes[.posixPermissions] as? NSNumber).intValue
        #expect(mode & 0o777 == 0o600, "ca-key.pem has mode \(String(mode, radix: 8))")
        for name in Self.allFiles where name != CAMaterial.FileName.caKey {
            let publicMode = try #require(try FileManager.default.attributesOfItem(atPath: directory.file(name))[.posixPermissions] as? NSNumber)
            #expect(publicMode.intValue & 0o077 != 0o077, "\(name) must not be world-writable")
        }
        let keyBefore = try Data(contentsOf: URL(fileURLWithPath: directory.file(CAMaterial.FileName.caKey)))
        #expect(try Certificate.PrivateKey(pemEncoded: String(decoding: keyBefore, as: UTF8.self)).publicKey == root.certificate.publicKey)

        // A second write, even of another CA, must not replace anything.
        let another = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        #expect(throws: (any Error).self) { try CAMaterial.write(another, to: directory.path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.file(CAMaterial.FileName.caKey))) == keyBefore)
        #expect(try Certificate(pemEncoded: directory.read(CAMaterial.FileName.caCert)) == root.certificate)

        let loaded = try await CAMaterial.load(directory: directory.path, now: now)
        #expect(loaded.certificate == root.certificate)
        #expect(loaded.privateKey.publicKey == root.privateKey.publicKey)
        #expect(loaded.chain == [root.certificate])
        #expect(loaded.roots == [root.certificate])
    }

    @Test("a refused write leaves the directory as it was")
    func refusedWriteChangesNothing() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        try CAMaterial.write(root, to: directory.path)
        // Only the key is gone; writing another CA must fail on the certificates and leave no new key.
        try FileManager.default.removeItem(atPath: directory.file(CAMaterial.FileName.caKey))
        let another = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        #expect(throws: (any Error).self) { try CAMaterial.write(another, to: directory.path) }
        #expect(try Certificate(pemEncoded: directory.read(CAMaterial.FileName.caCert)) == root.certificate)
        #expect(!FileManager.default.fileExists(atPath: directory.file(CAMaterial.FileName.caKey)))
    }

    @Test("openssl reads the written files: the key matches the certificate")
    func opensslReadsWrittenFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .rsa2048, now: Date())
        try CAMaterial.write(root, to: directory.path)
        let fromKey = try requireOpenSSL(["pkey", "-in", directory.file(CAMaterial.FileName.caKey), "-pubout"])
        let fromCert = try requireOpenSSL(["x509", "-in", directory.file(CAMaterial.FileName.caCert), "-noout", "-pubkey"])
        #expect(fromKey == fromCert)
        try requireOpenSSL(["verify", "-x509_strict", "-CAfile", directory.file(CAMaterial.FileName.rootCert), directory.file(CAMaterial.FileName.caCert)])
    }

    @Test("an intermediate in the plug-in layout loads, and its SVIDs verify with openssl through it")
    func intermediateLayout() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
        )

        let authority = try await CAMaterial.load(directory: directory.path, now: now)
        #expect(authority.certificate == intermediate.certificate)
        #expect(authority.chain == [intermediate.certificate, root.certificate])
        #expect(authority.roots == [root.certificate])
        #expect(authority.latestNotAfter == intermediate.certificate.notValidAfter)

        let issued = try await SVIDIssuer(authority: authority)
            .issue(publicKey: try KeyAlgorithm.ecP256.generate().publicKey, spiffeID: try cartID(), ttl: 3600, now: now)
        #expect(issued.certificate.issuer == intermediate.certificate.subject)
        #expect(try issued.chainPEM.map { try Certificate(pemEncoded: $0) } == [issued.certificate, intermediate.certificate, root.certificate])

        let rootFile = directory.file(CAMaterial.FileName.rootCert)
        let intermediateFile = directory.file(CAMaterial.FileName.caCert)
        let leafFile = try directory.write(issued.chainPEM[0] + "\n", to: "leaf.pem")
        let verified = try openssl(["verify", "-x509_strict", "-CAfile", rootFile, "-untrusted", intermediateFile, leafFile])
        #expect(verified.status == 0, "openssl verify failed: \(verified.output)")
        // Without the intermediate the leaf does not chain, so the check above is meaningful.
        #expect(try openssl(["verify", "-CAfile", rootFile, leafFile]).status != 0)
    }

    @Test("a cert-chain.pem holding only the intermediate still yields a chain ending at the root")
    func chainCompletedWithRoot() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate], roots: [root.certificate]
        )
        let authority = try await CAMaterial.load(directory: directory.path, now: now)
        #expect(authority.chain == [intermediate.certificate, root.certificate])
    }

    // MARK: - Refusals

    @Test("a key that does not match ca-cert.pem is refused")
    func mismatchedKey() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: try KeyAlgorithm.ecP256.generate(),
            chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
        )
        await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
    }

    @Test("a ca-cert.pem that is not a CA is refused")
    func notACA() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, _) = try makeRootAndIntermediate(now: now)
        let leaf = try makeSubordinate(
            issuer: root, commonName: "not a CA", notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(86400), isCA: false
        )
        try writePlugInLayout(
            in: directory, caCert: [leaf.certificate], caKey: leaf.key, chain: [leaf.certificate, root.certificate], roots: [root.certificate]
        )
        let error = await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
        #expect(error?.reason.contains("not a CA") == true)
    }

    @Test("a ca-cert.pem that does not chain to root-cert.pem is refused")
    func wrongRoot() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        let otherRoot = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [otherRoot.certificate]
        )
        await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
    }

    @Test("a cert-chain.pem that is not ca-cert's own path to the root is refused, naming the break")
    func chainNotMatching() async throws {
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        let (otherRoot, otherIntermediate) = try makeRootAndIntermediate(now: now)
        let cases: [(chain: [Certificate], says: String)] = [
            // Another CA's intermediate and root.
            ([otherIntermediate.certificate, otherRoot.certificate], "did not issue"),
            // Only another intermediate.
            ([otherIntermediate.certificate], "did not issue"),
            // Only another root.
            ([otherRoot.certificate], "did not issue"),
            // The right path with another root after it.
            ([intermediate.certificate, root.certificate, otherRoot.certificate], "did not issue"),
        ]
        for (chain, says) in cases {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try writePlugInLayout(in: directory, caCert: [intermediate.certificate], caKey: intermediate.key, chain: chain, roots: [root.certificate])
            let error = await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
            #expect(error?.reason.contains(says) == true && error?.reason.contains("cert-chain.pem") == true, "\(error?.reason ?? "")")
        }
        // The path itself, with or without ca-cert and the root, loads.
        for chain in [[intermediate.certificate, root.certificate], [intermediate.certificate], [root.certificate], []] {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try writePlugInLayout(in: directory, caCert: [intermediate.certificate], caKey: intermediate.key, chain: chain, roots: [root.certificate])
            #expect(try await CAMaterial.load(directory: directory.path, now: now).chain == [intermediate.certificate, root.certificate])
        }
    }

    @Test("a root-cert.pem holding a certificate that is not a CA's, beside the real root, is refused")
    func leafAmongRoots() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        let leaf = try makeSubordinate(
            issuer: intermediate, commonName: "a workload", notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(86400),
            isCA: false)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [leaf.certificate, root.certificate]
        )
        let error = await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
        #expect(error?.reason.contains("certificate 1 of 2") == true && error?.reason.contains("not a CA certificate") == true, "\(error?.reason ?? "")")
        // The real root alone loads.
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
        )
        _ = try await CAMaterial.load(directory: directory.path, now: now)
    }

    @Test("a missing plug-in file is refused", arguments: allFiles)
    func missingFile(name: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
        )
        _ = try await CAMaterial.load(directory: directory.path, now: now)
        try FileManager.default.removeItem(atPath: directory.file(name))
        await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
    }

    @Test("unparsable, empty or overfull files are refused")
    func badFileContents() async throws {
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        let cases: [(String, String)] = [
            (CAMaterial.FileName.rootCert, ""),
            (CAMaterial.FileName.rootCert, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"),
            (CAMaterial.FileName.caKey, "not a key"),
            (CAMaterial.FileName.caCert, try pem(intermediate.certificate) + pem(root.certificate)),
        ]
        for (name, contents) in cases {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try writePlugInLayout(
                in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
                chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
            )
            try directory.write(contents, to: name)
            await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
        }
    }

    @Test("a CA key that is missing, encrypted or not a key says which, without the library's internals")
    func keyProblemsNamed() async throws {
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
        )
        let keyFile = directory.file(CAMaterial.FileName.caKey)
        let plain = "\(directory.path)/plain.pem"
        try FileManager.default.copyItem(atPath: keyFile, toPath: plain)
        let encrypted = try openssl(["pkey", "-in", plain, "-aes256", "-passout", "pass:secret", "-out", keyFile])
        #expect(encrypted.status == 0, "\(encrypted.output)")
        let cases: [(prepare: () throws -> Void, words: String)] = [
            ({}, "encrypted with a passphrase"),
            ({ try directory.write("not a key", to: CAMaterial.FileName.caKey) }, "is not a PEM private key rampart reads"),
            ({ try FileManager.default.removeItem(atPath: keyFile) }, "is missing"),
        ]
        for (prepare, words) in cases {
            try prepare()
            let error = await expectPKIError(.badCAMaterial) { _ = try await CAMaterial.load(directory: directory.path, now: now) }
            #expect(error?.reason.contains(words) == true, "\(error?.reason ?? "")")
            #expect(error?.reason.contains(".swift") == false, "\(error?.reason ?? "")")
        }
    }

    @Test("an expired ca-cert.pem is refused, though it loads while still valid")
    func expiredIntermediate() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let (root, intermediate) = try makeRootAndIntermediate(now: now, intermediateLifetime: 86400)
        try writePlugInLayout(
            in: directory, caCert: [intermediate.certificate], caKey: intermediate.key,
            chain: [intermediate.certificate, root.certificate], roots: [root.certificate]
        )
        _ = try await CAMaterial.load(directory: directory.path, now: now.addingTimeInterval(86400 - 60))
        let error = await expectPKIError(.badCAMaterial) {
            _ = try await CAMaterial.load(directory: directory.path, now: now.addingTimeInterval(86400 + 60))
        }
        #expect(error?.reason.contains("expired") == true)
    }

    // MARK: - Helpers

    private func makeRootAndIntermediate(now: Date, intermediateLifetime: TimeInterval = 30 * 86400) throws -> (root: TestCA, intermediate: TestCA) {
        let rootAuthority = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let root = TestCA(certificate: rootAuthority.certificate, key: rootAuthority.privateKey)
        let intermediate = try makeSubordinate(
            issuer: root, notBefore: now.addingTimeInterval(-120), notAfter: now.addingTimeInterval(intermediateLifetime)
        )
        return (root, intermediate)
    }
}
