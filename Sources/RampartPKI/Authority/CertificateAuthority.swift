import Foundation
import X509

/// A signing CA: its key, its certificate, the chain above it and the trust bundle.
///
/// For a self-signed root the chain is just the root. For Istio's plug-in layout the signing
/// certificate is `ca-cert.pem` and the chain runs from it to the root (`cert-chain.pem`).
public struct CertificateAuthority: Sendable {
    /// The certificate whose key signs workload certificates.
    public let certificate: Certificate
    /// The private key of ``certificate``. Kept in memory only; never logged or stored in the database.
    public let privateKey: Certificate.PrivateKey
    /// Certificates sent after the leaf in a response: the signing certificate up to the root, root last.
    public let chain: [Certificate]
    /// The trust bundle: every root a workload should trust (old and new during rotation).
    public let roots: [Certificate]

    /// Creates a CA from already-checked material. Use ``CAMaterial`` to load and check files.
    public init(certificate: Certificate, privateKey: Certificate.PrivateKey, chain: [Certificate], roots: [Certificate]) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.chain = chain
        self.roots = roots
    }

    /// The PEM of each certificate in ``chain``, in order.
    public func chainPEM() throws -> [String] {
        try chain.map { try $0.serializeAsPEM().pemString }
    }

    /// The trust bundle as concatenated PEM.
    public func rootsPEM() throws -> String {
        try roots.map { try $0.serializeAsPEM().pemString + "\n" }.joined()
    }

    /// The latest instant a certificate issued by this CA may be valid until: the earliest `notAfter` in the chain.
    public var latestNotAfter: Date {
        chain.map(\.notValidAfter).min() ?? certificate.notValidAfter
    }
}
