import Crypto
import Foundation
import RampartIdentity
import SwiftASN1
import X509
import _CryptoExtras

/// The key types the agent makes for its workload. A new key is made on the host for every
/// certificate, and it never leaves the host.
public enum WorkloadKeyType: String, Sendable, CaseIterable {
    case ecP256 = "ec-p256"
    case rsa2048 = "rsa-2048"
}

/// A workload private key with the encodings the agent hands out.
public struct WorkloadKey: Sendable {
    /// The key, for signing the CSR and matching the certificate.
    public let privateKey: Certificate.PrivateKey
    /// PKCS#8 DER, as the Workload API sends it.
    public let pkcs8DER: [UInt8]

    /// Makes a fresh key.
    public static func generate(_ type: WorkloadKeyType) throws -> WorkloadKey {
        switch type {
        case .ecP256:
            let key = P256.Signing.PrivateKey()
            return WorkloadKey(privateKey: Certificate.PrivateKey(key), pkcs8DER: Array(key.derRepresentation))
        case .rsa2048:
            let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            return WorkloadKey(privateKey: Certificate.PrivateKey(key), pkcs8DER: Array(key.pkcs8DERRepresentation))
        }
    }

    /// Reads a PKCS#8 PEM key written by ``IdentityFiles``.
    public init(pkcs8PEM: String) throws {
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pkcs8PEM)
        } catch {
            throw AgentError(.output, "key is not a PEM document (-----BEGIN PRIVATE KEY----- ...)")
        }
        guard document.discriminator == "PRIVATE KEY" else {
            throw AgentError(.output, "key is a \(document.discriminator) PEM; the agent writes PKCS#8 (PRIVATE KEY)")
        }
        self.pkcs8DER = document.derBytes
        if let ec = try? P256.Signing.PrivateKey(derRepresentation: document.derBytes) {
            privateKey = Certificate.PrivateKey(ec)
        } else if let rsa = try? _RSA.Signing.PrivateKey(derRepresentation: document.derBytes) {
            privateKey = Certificate.PrivateKey(rsa)
        } else {
            throw AgentError(.output, "key is not a PKCS#8 EC P-256 or RSA private key")
        }
    }

    init(privateKey: Certificate.PrivateKey, pkcs8DER: [UInt8]) {
        self.privateKey = privateKey
        self.pkcs8DER = pkcs8DER
    }

    /// PKCS#8 PEM, for `key.pem`.
    public var pkcs8PEM: String {
        PEMDocument(type: "PRIVATE KEY", derBytes: pkcs8DER).pemString + "\n"
    }

    /// A PEM CSR with an empty subject, naming `identity` as its URI SAN when known (renewal).
    /// A bootstrapping agent does not know its identity yet: the CA names it from the credential.
    public func certificateSigningRequest(identity: SPIFFEID?) throws -> String {
        var attributes = CertificateSigningRequest.Attributes()
        if let identity {
            let extensions = try Certificate.Extensions {
                SubjectAlternativeNames([.uniformResourceIdentifier(identity.string)])
            }
            attributes = CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))])
        }
        let algorithm: Certificate.SignatureAlgorithm = P256.Signing.PublicKey(privateKey.publicKey) != nil ? .ecdsaWithSHA256 : .sha256WithRSAEncryption
        let csr = try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: privateKey, attributes: attributes, signatureAlgorithm: algorithm
        )
        return try csr.serializeAsPEM().pemString
    }
}
