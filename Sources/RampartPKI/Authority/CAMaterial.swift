import Crypto
import Foundation
import RampartIdentity
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// Creating, checking, writing and reading the CA's files.
///
/// The state directory holds Istio's plug-in layout, so an operator can read it with the tools
/// they know: `ca-cert.pem`, `ca-key.pem` (mode 0600), `cert-chain.pem` and `root-cert.pem`.
public enum CAMaterial {
    /// The file names of Istio's plug-in CA layout.
    public enum FileName {
        public static let caCert = "ca-cert.pem"
        public static let caKey = "ca-key.pem"
        public static let certChain = "cert-chain.pem"
        public static let rootCert = "root-cert.pem"
    }

    /// How long a self-signed root is valid: 10 calendar years (UTC).
    public static let rootLifetimeYears = 10

    /// When a root created at `date` expires: the same moment, 10 calendar years later.
    public static func rootExpiry(createdAt date: Date) -> Date {
        rootCalendar.date(byAdding: .year, value: rootLifetimeYears, to: date) ?? date.addingTimeInterval(3652 * 86400)
    }

    /// When a root must be created to expire at `date` (tests use it for roots near their end).
    public static func rootCreation(expiringAt date: Date) -> Date {
        rootCalendar.date(byAdding: .year, value: -rootLifetimeYears, to: date) ?? date.addingTimeInterval(-3652 * 86400)
    }

    private static var rootCalendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        return calendar
    }

    /// Creates a self-signed root CA for a trust domain.
    public static func createRoot(trustDomain: TrustDomain, keyAlgorithm: KeyAlgorithm, now: Date) throws -> CertificateAuthority {
        let key = try keyAlgorithm.generate()
        let name = try DistinguishedName {
            OrganizationName(trustDomain.name)
            CommonName("Rampart root CA")
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: key.publicKey)
            SubjectAlternativeNames([.uniformResourceIdentifier(trustDomain.idString)])
        }
        // Whole seconds, as certificates hold them: an expiry rounded up in encoding would put
        // it after the ten years.
        let start = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let root = try Certificate(
            version: .v3,
            serialNumber: SVIDIssuer.randomSerial(),
            publicKey: key.publicKey,
            notValidBefore: start.addingTimeInterval(-300),
            notValidAfter: rootExpiry(createdAt: start),
            issuer: name,
            subject: name,
            signatureAlgorithm: key.rampartSignatureAlgorithm,
            extensions: extensions,
            issuerPrivateKey: key
        )
        return CertificateAuthority(certificate: root, privateKey: key, chain: [root], roots: [root])
    }

    /// Reads the CA's private key, saying which of the usual mistakes was made when it cannot.
    static func readKey(_ keyPath: String) throws(PKIError) -> Certificate.PrivateKey {
        guard FileManager.default.fileExists(atPath: keyPath) else {
            throw PKIError(.badCAMaterial, "\(keyPath) is missing: put the CA's private key there, in PEM")
        }
        guard FileManager.default.isReadableFile(atPath: keyPath),
            let text = try? String(contentsOfFile: keyPath, encoding: .utf8)
        else {
            throw PKIError(
                .badCAMaterial,
                FileManager.default.isReadableFile(atPath: keyPath)
                    ? "\(keyPath) is not text: give the CA's private key in PEM (PKCS#8, SEC1 or PKCS#1)"
                    : "\(keyPath) cannot be read by this user (permission denied): run rampart as the user that owns the CA's files (the key stays mode 0600)")
        }
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED") {
            throw PKIError(
                .badCAMaterial,
                "\(keyPath) is encrypted with a passphrase, and rampart reads unencrypted keys: decrypt it (openssl pkey -in ca-key.pem -out ca-key.plain.pem), keep the result mode 0600, and use that")
        }
        do {
            return try Certificate.PrivateKey(pemEncoded: text)
        } catch {
            throw PKIError(
                .badCAMaterial,
                "\(keyPath) is not a PEM private key rampart reads: give the CA's P-256, P-384 or RSA key in PEM (PKCS#8 \"PRIVATE KEY\", SEC1 \"EC PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")")
        }
    }

    /// Loads and checks CA files in Istio's plug-in layout from `directory`.
    ///
    /// Checks that `ca-cert.pem` is a CA, that `ca-key.pem` matches it, and that it chains
    /// through `cert-chain.pem` to a root in `root-cert.pem`, valid at `now`.
    public static func load(directory: String, now: Date) async throws(PKIError) -> CertificateAuthority {
        let caCert = try readCertificates(directory, FileName.caCert)
        guard caCert.count == 1, let signing = caCert.first else {
            throw PKIError(.badCAMaterial, "\(path(directory, FileName.caCert)) holds \(caCert.count) certificates: it must hold exactly the signing CA certificate")
        }
        let keyPath = path(directory, FileName.caKey)
        let key = try readKey(keyPath)
        let chainFile = try readCertificates(directory, FileName.certChain)
        let roots = try readCertificates(directory, FileName.rootCert)
        guard !roots.isEmpty else {
            throw PKIError(.badCAMaterial, "\(path(directory, FileName.rootCert)) holds no certificate: put the root CA certificate there")
        }
        // Every certificate there becomes a trust anchor of the mesh: a workload's or a server's
        // certificate among them would be trusted to sign identities.
        for (index, root) in roots.enumerated() {
            guard case .isCertificateAuthority = try? root.extensions.basicConstraints else {
                let subject = root.subject.description
                throw PKIError(
                    .badCAMaterial,
                    "\(path(directory, FileName.rootCert)): certificate \(index + 1) of \(roots.count) (\(subject.isEmpty ? "no subject" : subject)) is not a CA certificate (basicConstraints CA:true is missing): keep only root CA certificates there")
            }
        }

        guard case .isCertificateAuthority = try? signing.extensions.basicConstraints else {
            throw PKIError(.badCAMaterial, "\(path(directory, FileName.caCert)) is not a CA certificate (basicConstraints CA:true is missing): give an intermediate or root CA certificate")
        }
        if let usage = try? signing.extensions.keyUsage, !usage.keyCertSign {
            throw PKIError(.badCAMaterial, "\(path(directory, FileName.caCert)) lacks the keyCertSign key usage: it cannot sign certificates")
        }
        guard key.publicKey == signing.publicKey else {
            throw PKIError(.badCAMaterial, "\(keyPath) does not match \(path(directory, FileName.caCert)): the private key belongs to another certificate")
        }
        if case .failure(let error) = KeyAlgorithm.classify(signing.publicKey) {
            throw PKIError(.badCAMaterial, "\(path(directory, FileName.caCert)): \(error.reason)")
        }

        // The chain sent after the leaf: ca-cert first, root last, no duplicates.
        var chain = chainFile
        if chain.first != signing { chain.removeAll { $0 == signing }; chain.insert(signing, at: 0) }
        if let last = chain.last, !roots.contains(last), let root = roots.first(where: { $0.subject == last.issuer }) {
            chain.append(root)
        }

        try checkOrder(chain, roots: roots, directory: directory)

        var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy(fixedExpiryValidationTime: now) }
        let result = await verifier.validate(leaf: signing, intermediates: CertificateStore(Array(chain.dropFirst())))
        guard case .validCertificate = result else {
            if signing.notValidAfter <= now {
                throw PKIError(.badCAMaterial, "\(path(directory, FileName.caCert)) expired at \(signing.notValidAfter)")
            }
            throw PKIError(
                .badCAMaterial,
                "\(path(directory, FileName.caCert)) does not chain to \(path(directory, FileName.rootCert)) through \(path(directory, FileName.certChain)): put every intermediate between them in cert-chain.pem"
            )
        }
        return CertificateAuthority(certificate: signing, privateKey: key, chain: chain, roots: roots)
    }

    /// Checks that the chain the CA will send after each leaf is ca-cert's own path: each
    /// certificate issued and signed by the next, ending at a root of `root-cert.pem`. A
    /// `cert-chain.pem` with another CA's certificates in it would otherwise be sent to every
    /// workload, whose last certificate a client may take for the root.
    static func checkOrder(_ chain: [Certificate], roots: [Certificate], directory: String) throws(PKIError) {
        let file = path(directory, FileName.certChain)
        func named(_ certificate: Certificate) -> String {
            let subject = certificate.subject.description
            return subject.isEmpty ? "a certificate with no subject" : "\"\(subject)\""
        }
        for (child, parent) in zip(chain, chain.dropFirst()) {
            guard child.issuer == parent.subject, parent.publicKey.isValidSignature(child.signature, for: child) else {
                let what = child == chain[0] ? "\(path(directory, FileName.caCert)) (\(named(child)))" : named(child)
                throw PKIError(
                    .badCAMaterial,
                    "\(file): \(named(parent)) did not issue \(what), which it follows: cert-chain.pem must hold ca-cert's chain in order, each certificate followed by its issuer, ending with the root, and nothing else")
            }
        }
        if let last = chain.last, chain.count > 1, !roots.contains(last) {
            throw PKIError(
                .badCAMaterial,
                "\(path(directory, FileName.caCert)) does not chain to \(path(directory, FileName.rootCert)): \(file) ends with \(named(last)), which is neither a root that root-cert.pem holds nor issued by one. End cert-chain.pem with a root root-cert.pem holds, or put this chain's root in root-cert.pem")
        }
    }

    /// Writes the CA's files into `directory` in the plug-in layout; the key gets mode 0600.
    ///
    /// Refuses to overwrite any existing file.
    public static func write(_ authority: CertificateAuthority, to directory: String) throws {
        let names = [FileName.caKey, FileName.caCert, FileName.certChain, FileName.rootCert]
        if let existing = names.first(where: { FileManager.default.fileExists(atPath: path(directory, $0)) }) {
            throw FileWriteError(path: path(directory, existing), reason: "already exists; refusing to overwrite CA files")
        }
        let pem: (Certificate) throws -> String = { try $0.serializeAsPEM().pemString + "\n" }
        try SecretFile.write(try authority.privateKey.serializeAsPEM().pemString + "\n", to: path(directory, FileName.caKey))
        try PublicFile.write(try pem(authority.certificate), to: path(directory, FileName.caCert))
        try PublicFile.write(try authority.chain.map(pem).joined(), to: path(directory, FileName.certChain))
        try PublicFile.write(try authority.roots.map(pem).joined(), to: path(directory, FileName.rootCert))
    }

    /// Reads every certificate in a PEM file.
    public static func readCertificates(_ directory: String, _ name: String) throws(PKIError) -> [Certificate] {
        let file = path(directory, name)
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isFolder) else {
                throw PKIError(.badCAMaterial, "\(file) is missing: Istio's plug-in layout needs ca-cert.pem, ca-key.pem, cert-chain.pem and root-cert.pem")
            }
            let problem =
                isFolder.boolValue ? "is a folder"
                : FileManager.default.isReadableFile(atPath: file) ? "is not text" : "cannot be read by this user (permission denied)"
            throw PKIError(.badCAMaterial, "\(file) \(problem): give the certificates there in PEM (-----BEGIN CERTIFICATE----- blocks)")
        }
        return try parseCertificates(pem: text, source: file)
    }

    /// Parses every certificate in a PEM text.
    public static func parseCertificates(pem text: String, source: String) throws(PKIError) -> [Certificate] {
        do {
            return try PEMDocument.parseMultiple(pemString: text)
                .filter { $0.discriminator == "CERTIFICATE" }
                .map { try Certificate(pemDocument: $0) }
        } catch {
            let text = String(describing: error)
            if text.contains("unsupportedPublicKeyAlgorithm") {
                throw PKIError(
                    .badCAMaterial,
                    "\(source) holds a certificate whose key the CA cannot use (an EC curve other than P-256 and P-384, or another key type): issue the CA with EC P-256, P-384 or RSA of at least 2048 bits")
            }
            if text.contains("incorrectParameterSize") {
                throw PKIError(
                    .badCAMaterial, "\(source) holds a certificate with an RSA key under 2048 bits: issue the CA with RSA of at least 2048 bits, or EC P-256")
            }
            let reason = text.contains("invalidPEMDocument") || text.contains("PEM") ? "its PEM does not parse" : "a certificate in it does not parse"
            throw PKIError(.badCAMaterial, "\(source) is not PEM certificates (\(reason)): give one or more -----BEGIN CERTIFICATE----- blocks")
        }
    }

    static func path(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }
}
