import Crypto
import Foundation
import RampartIdentity
import SwiftASN1
import X509

/// A workload certificate just signed, with everything the store and the response need.
public struct IssuedSVID: Sendable {
    /// The leaf certificate.
    public let certificate: Certificate
    /// The leaf followed by the CA chain, root last, each as PEM.
    public let chainPEM: [String]
    /// The serial number as lowercase hex.
    public let serialHex: String
    /// SHA-256 of the leaf's SubjectPublicKeyInfo, as lowercase hex.
    public let publicKeySHA256: String
    /// The identity in the URI SAN.
    public let spiffeID: SPIFFEID
    /// Start of validity (backdated).
    public let notBefore: Date
    /// End of validity.
    public let notAfter: Date
}

/// Signs X.509-SVIDs by the SPIFFE rules and validates each one right after signing.
///
/// The issuer is a value; `now` is always passed in.
public struct SVIDIssuer: Sendable {
    /// The CA that signs.
    public let authority: CertificateAuthority
    /// Lifetimes and skew.
    public let policy: IssuancePolicy
    private let chainPEMAboveLeaf: [String]
    private let authorityKeyID: ArraySlice<UInt8>
    private let validator: SVIDValidator

    /// Creates an issuer for a CA.
    public init(authority: CertificateAuthority, policy: IssuancePolicy = IssuancePolicy()) throws {
        self.authority = authority
        self.policy = policy
        self.chainPEMAboveLeaf = try authority.chainPEM()
        if let ski = try? authority.certificate.extensions.subjectKeyIdentifier {
            self.authorityKeyID = ski.keyIdentifier
        } else {
            self.authorityKeyID = SubjectKeyIdentifier(hash: authority.certificate.publicKey).keyIdentifier
        }
        self.validator = SVIDValidator(roots: authority.roots, intermediates: Array(authority.chain.dropLast()))
    }

    /// Signs a certificate for `publicKey` naming `spiffeID`, valid for `ttl` from `now`.
    ///
    /// NotBefore is backdated by the policy's skew allowance; NotAfter is clamped to the CA's own.
    /// The result has been validated against the trust bundle before it is returned.
    public func issue(
        publicKey: Certificate.PublicKey,
        spiffeID: SPIFFEID,
        ttl: TimeInterval,
        now: Date,
        extraSANs: [GeneralName] = []
    ) async throws(PKIError) -> IssuedSVID {
        guard spiffeID.isWorkloadIdentity else {
            throw PKIError(.badIdentity, "\(spiffeID) has no path: an X.509-SVID names a workload, such as spiffe://\(spiffeID.trustDomain)/ns/default/sa/default")
        }
        let algorithm: KeyAlgorithm
        switch KeyAlgorithm.classify(publicKey) {
        case .success(let value): algorithm = value
        case .failure(let error): throw error
        }
        // Whole seconds, as X.509 writes them, so the store records exactly the certificate's validity.
        let notBefore = Date(timeIntervalSince1970: (now.timeIntervalSince1970 - policy.backdate).rounded(.down))
        let notAfter = Date(
            timeIntervalSince1970: min(now.addingTimeInterval(ttl), authority.latestNotAfter).timeIntervalSince1970.rounded(.down))
        guard notAfter > now else {
            throw PKIError(.badCAMaterial, "the CA certificate expires at \(authority.latestNotAfter): rotate the CA before issuing")
        }
        let serial = Self.randomSerial()
        // The key's SubjectPublicKeyInfo is encoded once, for both its SHA-256 and the key
        // identifier: each encoding of an EC key converts its point to affine coordinates.
        let digests: PublicKeyDigests
        do {
            digests = try PublicKeyDigests(publicKey)
        } catch {
            throw PKIError(.validationFailed, "could not encode the public key: \(error)")
        }
        let certificate: Certificate
        do {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: algorithm.isRSA))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectKeyIdentifier(keyIdentifier: digests.keyIdentifier)
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
                Critical(SubjectAlternativeNames([.uniformResourceIdentifier(spiffeID.string)] + extraSANs))
            }
            certificate = try Certificate(
                version: .v3,
                serialNumber: serial,
                publicKey: publicKey,
                notValidBefore: notBefore,
                notValidAfter: notAfter,
                issuer: authority.certificate.subject,
                subject: DistinguishedName(),
                signatureAlgorithm: authority.privateKey.rampartSignatureAlgorithm,
                extensions: extensions,
                issuerPrivateKey: authority.privateKey
            )
        } catch {
            throw PKIError(.validationFailed, "signing failed: \(error)")
        }
        try await validator.validate(certificate, expecting: spiffeID, at: now)
        let leafPEM: String
        do {
            leafPEM = try certificate.pemText()
        } catch {
            throw PKIError(.validationFailed, "could not encode the signed certificate: \(error)")
        }
        return IssuedSVID(
            certificate: certificate,
            chainPEM: [leafPEM] + chainPEMAboveLeaf,
            serialHex: serial.hexString,
            publicKeySHA256: digests.sha256Hex,
            spiffeID: spiffeID,
            notBefore: notBefore,
            notAfter: notAfter
        )
    }

    /// A random, positive serial number of 16 octets: 126 random bits under a fixed leading `01`,
    /// so that it is positive (RFC 5280 section 4.1.2.2) and always 16 octets long in DER.
    ///
    /// The system generator is asked for two 64-bit words (one `getrandom` call each) rather than
    /// for every byte.
    static func randomSerial() -> Certificate.SerialNumber {
        var rng = SystemRandomNumberGenerator()
        let words = (rng.next() as UInt64, rng.next() as UInt64)
        var bytes = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: words) { source in bytes.withUnsafeMutableBytes { $0.copyMemory(from: source) } }
        bytes[0] = (bytes[0] & 0x7F) | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }
}

extension Certificate.SerialNumber {
    /// The serial as lowercase hex, without separators.
    public var hexString: String { bytes.hexString }
}

/// What is derived from a public key's DER SubjectPublicKeyInfo, from one encoding of it.
struct PublicKeyDigests {
    /// SHA-256 of the whole SubjectPublicKeyInfo, lowercase hex.
    let sha256Hex: String
    /// SHA-1 of the subjectPublicKey BIT STRING's value: RFC 5280's first method, as
    /// `SubjectKeyIdentifier(hash:)` computes it.
    let keyIdentifier: ArraySlice<UInt8>

    init(_ publicKey: Certificate.PublicKey) throws {
        var serializer = DER.Serializer()
        try serializer.serialize(publicKey)
        let spki = serializer.serializedBytes
        sha256Hex = Array(SHA256.hash(data: spki)).hexString
        let key = try DER.sequence(try DER.parse(spki), identifier: .sequence) { nodes in
            _ = nodes.next()  // the AlgorithmIdentifier
            return try ASN1BitString(derEncoded: &nodes)
        }
        keyIdentifier = ArraySlice(Insecure.SHA1.hash(data: key.bytes))
    }
}

extension Certificate.PublicKey {
    /// SHA-256 of the SubjectPublicKeyInfo, as lowercase hex (empty if the key does not encode).
    public var sha256Hex: String {
        (try? PublicKeyDigests(self))?.sha256Hex ?? ""
    }
}

extension Sequence<UInt8> {
    /// Lowercase hex of the bytes.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
