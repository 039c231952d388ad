import Crypto
import Foundation
import RampartIdentity
import RampartPKI
import Testing
import X509

@Suite("SVID issuance from a self-signed root")
struct SVIDIssuanceTests {
    static let rootAlgorithms: [KeyAlgorithm] = [.ecP256, .ecP384, .rsa2048]
    static let leafAlgorithms: [KeyAlgorithm] = [.ecP256, .rsa2048]

    @Test("an issued SVID has the X.509-SVID shape", arguments: rootAlgorithms, leafAlgorithms)
    func svidShape(rootAlgorithm: KeyAlgorithm, leafAlgorithm: KeyAlgorithm) async throws {
        let now = wholeSecondNow()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: rootAlgorithm, now: now)
        let issuer = try SVIDIssuer(authority: root)
        let leafKey = try leafAlgorithm.generate()
        let id = try cartID()
        let ttl: TimeInterval = 3600

        let issued = try await issuer.issue(publicKey: leafKey.publicKey, spiffeID: id, ttl: ttl, now: now)
        let cert = issued.certificate

        // Exactly one SAN, a URI equal to the identity, in a critical extension.
        let sans = try #require(try cert.extensions.subjectAlternativeNames)
        #expect(Array(sans) == [.uniformResourceIdentifier(id.string)])
        let sanExtension = try #require(cert.extensions[oid: .X509ExtensionID.subjectAlternativeName])
        #expect(sanExtension.critical)
        #expect(issued.spiffeID == id)

        // Empty subject, issued by the root, for the leaf's key, signed as the root's key demands.
        #expect(cert.subject.isEmpty)
        #expect(cert.issuer == root.certificate.subject)
        #expect(cert.publicKey == leafKey.publicKey)
        #expect(cert.signatureAlgorithm == signatureAlgorithm(for: root.privateKey))
        #expect(root.certificate.publicKey.isValidSignature(cert.signature, for: cert))

        // Not a CA; digitalSignature (and keyEncipherment for RSA keys only), critical; server and client auth.
        #expect(try cert.extensions.basicConstraints == .notCertificateAuthority)
        let keyUsage = try #require(try cert.extensions.keyUsage)
        #expect(keyUsage == KeyUsage(digitalSignature: true, keyEncipherment: leafAlgorithm.isRSA))
        #expect(keyUsage.digitalSignature)
        #expect(keyUsage.keyEncipherment == leafAlgorithm.isRSA)
        #expect(!keyUsage.keyCertSign && !keyUsage.cRLSign)
        #expect(try #require(cert.extensions[oid: .X509ExtensionID.keyUsage]).critical)
        let eku = try #require(try cert.extensions.extendedKeyUsage)
        #expect(Set(eku) == [.serverAuth, .clientAuth])
        #expect(Array(eku).count == 2)

        // Key identifiers link the leaf to its issuer.
        let aki = try #require(try cert.extensions.authorityKeyIdentifier)
        let rootSKI = try #require(try root.certificate.extensions.subjectKeyIdentifier)
        #expect(aki.keyIdentifier == rootSKI.keyIdentifier)
        #expect(try cert.extensions.subjectKeyIdentifier != nil)

        // A 16-byte positive serial, reported in lowercase hex.
        let serial = Array(cert.serialNumber.bytes)
        #expect(serial.count == 16)
        #expect(serial[0] & 0x80 == 0, "serial must be positive")
        #expect(serial[0] != 0, "serial must use all 16 bytes")
        #expect(issued.serialHex == hex(serial))

        // Validity: backdated start, end exactly now + ttl.
        #expect(cert.notValidBefore < now)
        #expect(issued.notBefore == cert.notValidBefore)
        #expect(cert.notValidAfter == now.addingTimeInterval(ttl))
        #expect(issued.notAfter == cert.notValidAfter)

        // The chain is the leaf then the root.
        #expect(issued.chainPEM.count == 2)
        let chain = try issued.chainPEM.map { try Certificate(pemEncoded: $0) }
        #expect(chain == [cert, root.certificate])
    }

    @Test("openssl verifies an issued SVID against its root in strict mode", arguments: [KeyAlgorithm.ecP256, .rsa2048], [KeyAlgorithm.ecP256, .rsa2048])
    func opensslVerifies(rootAlgorithm: KeyAlgorithm, leafAlgorithm: KeyAlgorithm) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: rootAlgorithm, now: now)
        let issued = try await SVIDIssuer(authority: root)
            .issue(publicKey: try leafAlgorithm.generate().publicKey, spiffeID: try cartID(), ttl: 600, now: now)
        let rootFile = try directory.write(try pem(root.certificate), to: "root.pem")
        let leafFile = try directory.write(issued.chainPEM[0] + "\n", to: "leaf.pem")

        for purpose in ["sslclient", "sslserver"] {
            let result = try openssl(["verify", "-x509_strict", "-purpose", purpose, "-CAfile", rootFile, leafFile])
            #expect(result.status == 0, "openssl verify (\(purpose)) failed: \(result.output)")
        }
        let text = try requireOpenSSL(["x509", "-in", leafFile, "-noout", "-ext", "subjectAltName"])
        #expect(text.contains("critical"))
        #expect(text.contains("URI:\(cartIdentity)"))

        // The same leaf does not verify against an unrelated root.
        let other = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: rootAlgorithm, now: now)
        let otherFile = try directory.write(try pem(other.certificate), to: "other.pem")
        let refused = try openssl(["verify", "-x509_strict", "-CAfile", otherFile, leafFile])
        #expect(refused.status != 0)
    }

    @Test("serial numbers differ between issuances")
    func serialsAreUnique() async throws {
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now))
        let key = try KeyAlgorithm.ecP256.generate().publicKey
        var serials: Set<String> = []
        for _ in 0..<32 {
            let issued = try await issuer.issue(publicKey: key, spiffeID: try cartID(), ttl: 600, now: now)
            #expect(issued.certificate.serialNumber.bytes.count == 16)
            serials.insert(issued.serialHex)
        }
        #expect(serials.count == 32)
    }

    @Test("serials are positive, 16 bytes, and spread over their bits")
    func serialBits() async throws {
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now))
        let key = try KeyAlgorithm.ecP256.generate().publicKey
        var seen = [Int](repeating: 0, count: 128)
        for _ in 0..<256 {
            let bytes = try await issuer.issue(publicKey: key, spiffeID: try cartID(), ttl: 600, now: now).certificate.serialNumber.bytes
            #expect(bytes.count == 16)
            #expect(bytes[0] & 0xC0 == 0x40)
            for bit in 0..<128 where bytes[bit / 8] & (0x80 >> UInt8(bit % 8)) != 0 { seen[bit] += 1 }
        }
        // Bits 0 and 1 are fixed (positive, no leading zero byte); every other bit takes both values.
        #expect(seen[0] == 0 && seen[1] == 256)
        #expect(seen[2...].allSatisfy { (1..<256).contains($0) })
    }

    @Test("the leaf's PEM in the chain is exactly SwiftASN1's PEM of the certificate", arguments: rootAlgorithms, leafAlgorithms)
    func leafPEMText(rootAlgorithm: KeyAlgorithm, leafAlgorithm: KeyAlgorithm) async throws {
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: rootAlgorithm, now: now))
        let issued = try await issuer.issue(publicKey: try leafAlgorithm.generate().publicKey, spiffeID: try cartID(), ttl: 600, now: now)
        #expect(issued.chainPEM[0] == (try issued.certificate.serializeAsPEM().pemString))
        #expect(try Certificate(pemEncoded: issued.chainPEM[0]) == issued.certificate)
        for root in issuer.authority.roots {
            #expect(try root.pemText() == (try root.serializeAsPEM().pemString))
        }
    }

    @Test("the leaf's key identifier is RFC 5280's SHA-1 of its key, as swift-certificates computes it", arguments: [KeyAlgorithm.ecP256, .ecP384, .rsa2048])
    func leafKeyIdentifier(leafAlgorithm: KeyAlgorithm) async throws {
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now))
        let key = try leafAlgorithm.generate().publicKey
        let issued = try await issuer.issue(publicKey: key, spiffeID: try cartID(), ttl: 600, now: now)
        #expect(try issued.certificate.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: key))
        #expect(issued.publicKeySHA256 == key.sha256Hex)
    }

    @Test("the lifetime is clamped to the CA's notAfter when the ttl reaches past it")
    func clampedToCAExpiry() async throws {
        let now = wholeSecondNow()
        // A root created long ago that expires one hour from now.
        let root = try CAMaterial.createRoot(
            trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: CAMaterial.rootCreation(expiringAt: now.addingTimeInterval(3600))
        )
        // An hour from now (a day more or less when ten calendar years back and forth cross a 29 February).
        #expect(abs(root.certificate.notValidAfter.timeIntervalSince(now.addingTimeInterval(3600))) <= 86400)
        let issuer = try SVIDIssuer(authority: root)

        let long = try await issuer.issue(publicKey: try KeyAlgorithm.ecP256.generate().publicKey, spiffeID: try cartID(), ttl: 86400, now: now)
        #expect(long.certificate.notValidAfter == root.certificate.notValidAfter)
        #expect(long.notAfter == root.certificate.notValidAfter)

        let short = try await issuer.issue(publicKey: try KeyAlgorithm.ecP256.generate().publicKey, spiffeID: try cartID(), ttl: 60, now: now)
        #expect(short.certificate.notValidAfter == now.addingTimeInterval(60))
    }

    @Test("the backdate follows the policy")
    func backdateFollowsPolicy() async throws {
        let now = wholeSecondNow()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let policy = IssuancePolicy(backdate: 120)
        let issued = try await SVIDIssuer(authority: root, policy: policy)
            .issue(publicKey: try KeyAlgorithm.ecP256.generate().publicKey, spiffeID: try cartID(), ttl: 600, now: now)
        #expect(issued.certificate.notValidBefore == now.addingTimeInterval(-120))
    }

    @Test("issuing from an expired CA is refused")
    func expiredCARefused() async throws {
        let now = Date()
        let root = try CAMaterial.createRoot(
            trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: CAMaterial.rootCreation(expiringAt: now.addingTimeInterval(-60))
        )
        let issuer = try SVIDIssuer(authority: root)
        let key = try KeyAlgorithm.ecP256.generate().publicKey
        await expectPKIError(.badCAMaterial) {
            _ = try await issuer.issue(publicKey: key, spiffeID: try cartID(), ttl: 600, now: now)
        }
    }

    @Test("an identity without a path cannot be issued")
    func trustDomainIDRefused() async throws {
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now))
        let key = try KeyAlgorithm.ecP256.generate().publicKey
        let bare = try SPIFFEID(parsing: "spiffe://cluster.local")
        await expectPKIError(.badIdentity) {
            _ = try await issuer.issue(publicKey: key, spiffeID: bare, ttl: 600, now: now)
        }
    }

    @Test("a P-521 leaf key is refused")
    func p521LeafRefused() async throws {
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now))
        let key = Certificate.PrivateKey(P521.Signing.PrivateKey()).publicKey
        await expectPKIError(.unsupportedKey) {
            _ = try await issuer.issue(publicKey: key, spiffeID: try cartID(), ttl: 600, now: now)
        }
    }

    @Test("publicKeySHA256 is the SHA-256 of the leaf's DER SubjectPublicKeyInfo", arguments: [KeyAlgorithm.ecP256, .rsa2048])
    func publicKeyHashIsOverSPKI(leafAlgorithm: KeyAlgorithm) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let issuer = try SVIDIssuer(authority: try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now))
        let issued = try await issuer.issue(publicKey: try leafAlgorithm.generate().publicKey, spiffeID: try cartID(), ttl: 600, now: now)
        let leafFile = try directory.write(issued.chainPEM[0] + "\n", to: "leaf.pem")
        // openssl writes the DER SubjectPublicKeyInfo; hash it here.
        let spkiFile = directory.file("spki.der")
        try requireOpenSSL(["x509", "-in", leafFile, "-noout", "-pubkey", "-out", directory.file("pub.pem")])
        try requireOpenSSL(["pkey", "-pubin", "-in", directory.file("pub.pem"), "-outform", "DER", "-out", spkiFile])
        let spki = try Data(contentsOf: URL(fileURLWithPath: spkiFile))
        let expected = hex(SHA256.hash(data: spki))
        #expect(issued.publicKeySHA256 == expected)
        #expect(issued.publicKeySHA256.count == 64)
    }
}

@Suite("SVID validation")
struct SVIDValidatorTests {
    @Test("a fresh SVID validates and yields its identity; later, past notAfter, it does not")
    func validatesAndExpires() async throws {
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let issued = try await SVIDIssuer(authority: root)
            .issue(publicKey: try KeyAlgorithm.ecP256.generate().publicKey, spiffeID: try cartID(), ttl: 600, now: now)
        let validator = SVIDValidator(roots: [root.certificate])
        let id = try await validator.validate(issued.certificate, at: now)
        #expect(id == (try cartID()))
        #expect(try SVIDValidator.spiffeID(of: issued.certificate) == (try cartID()))

        await expectPKIError(.validationFailed) {
            try await validator.validate(issued.certificate, at: now.addingTimeInterval(601))
        }
        await expectPKIError(.validationFailed) {
            try await validator.validate(issued.certificate, at: now.addingTimeInterval(-3600))
        }
    }

    @Test("an SVID from another root, or for another identity, fails validation")
    func otherRootOrIdentityFails() async throws {
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let other = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let issued = try await SVIDIssuer(authority: root)
            .issue(publicKey: try KeyAlgorithm.ecP256.generate().publicKey, spiffeID: try cartID(), ttl: 600, now: now)
        await expectPKIError(.validationFailed) {
            try await SVIDValidator(roots: [other.certificate]).validate(issued.certificate, at: now)
        }
        let someoneElse = try SPIFFEID(parsing: "spiffe://cluster.local/ns/shop/sa/checkout")
        await expectPKIError(.validationFailed) {
            try await SVIDValidator(roots: [root.certificate]).validate(issued.certificate, expecting: someoneElse, at: now)
        }
    }

    @Test("a self-signed certificate with no URI SAN is named as not chaining to the CA, before its shape")
    func strangerNamedAsSuch() async throws {
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("stranger") }
        let stranger = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(3600), issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions {}, issuerPrivateKey: Certificate.PrivateKey(key))
        do {
            _ = try await SVIDValidator(roots: [root.certificate]).validate(stranger, at: now)
            Issue.record("a stranger's certificate was accepted")
        } catch {
            #expect(error.code == .validationFailed && error.reason.contains("does not chain to this CA's trust bundle"), "\(error.reason)")
            #expect(error.reason.contains("0 URI SANs"), "the shape is still mentioned: \(error.reason)")
        }
    }

    @Test("a CA certificate naming a workload is not accepted as an SVID leaf")
    func caIsNotALeaf() async throws {
        let now = Date()
        let root = try CAMaterial.createRoot(trustDomain: .clusterLocal, keyAlgorithm: .ecP256, now: now)
        let rootCA = TestCA(certificate: root.certificate, key: root.privateKey)
        let window = (now.addingTimeInterval(-60), now.addingTimeInterval(3600))
        let validator = SVIDValidator(roots: [root.certificate])

        let caNamingWorkload = try makeSubordinate(issuer: rootCA, notBefore: window.0, notAfter: window.1, uris: [cartIdentity])
        await expectPKIError(.validationFailed) {
            try await validator.validate(caNamingWorkload.certificate, at: now)
        }
        // The same shape without CA:true passes, so the refusal above is about CA:true.
        let leaf = try makeSubordinate(issuer: rootCA, notBefore: window.0, notAfter: window.1, isCA: false, uris: [cartIdentity])
        #expect(try await validator.validate(leaf.certificate, at: now) == (try cartID()))

        let noURI = try makeSubordinate(issuer: rootCA, notBefore: window.0, notAfter: window.1, isCA: false)
        await expectPKIError(.badIdentity) {
            try await validator.validate(noURI.certificate, at: now)
        }
        let twoURIs = try makeSubordinate(
            issuer: rootCA, notBefore: window.0, notAfter: window.1, isCA: false,
            uris: [cartIdentity, "spiffe://cluster.local/ns/shop/sa/checkout"]
        )
        await expectPKIError(.badIdentity) {
            try await validator.validate(twoURIs.certificate, at: now)
        }
    }
}
