import Crypto
import Foundation
import NIOSSL
import RampartIdentity
import SwiftASN1
import X509

/// The workload identity the proxy presents and the roots it trusts, at one moment.
///
/// Built from the node agent's files (`cert-chain.pem`, `key.pem`, `root-cert.pem`) or from one
/// Workload API message; immutable, so a rotation swaps the whole value and connections that
/// already hold the old one keep working.
public struct ProxyIdentity: Sendable {
    /// The workload's SPIFFE ID, from the leaf's URI SAN.
    public let spiffeID: SPIFFEID
    /// The same ID as text, made once: requests name it in headers, logs and metrics.
    public let spiffeIDString: String
    /// The leaf certificate.
    public let leaf: Certificate
    /// The chain, leaf first, as NIOSSL certificates.
    public let chain: [NIOSSLCertificate]
    /// The private key.
    public let key: NIOSSLPrivateKey
    /// The trust bundle: every root the mesh trusts.
    public let roots: [Certificate]
    /// The same roots for NIOSSL.
    public let nioRoots: [NIOSSLCertificate]
    /// A digest of the material, so watchers can tell a rotation from a re-read.
    public let fingerprint: String
    /// The PEM texts, for transports that take PEM (the config stream's gRPC client).
    let chainPEM: String
    let keyPEM: String

    /// When the leaf expires.
    public var notAfter: Date { leaf.notValidAfter }
    /// The leaf's serial, lower-case hex without separators.
    public var serial: String { leaf.serialNumber.compactHex }

    /// Parses PEM text: the chain (leaf first), the key and the roots.
    public init(chainPEM: String, keyPEM: String, rootsPEM: String, source: String) throws(ProxyError) {
        do {
            let certificates = try PEMDocument.parseMultiple(pemString: chainPEM).map { try Certificate(pemDocument: $0) }
            guard let leaf = certificates.first else {
                throw ProxyError(.identity, "\(source): the certificate chain holds no certificate; is the node agent running and writing its files?")
            }
            let roots = try PEMDocument.parseMultiple(pemString: rootsPEM).map { try Certificate(pemDocument: $0) }
            guard !roots.isEmpty else {
                throw ProxyError(.identity, "\(source): the trust bundle holds no root certificate")
            }
            self.leaf = leaf
            self.roots = roots
            self.chainPEM = chainPEM
            self.keyPEM = keyPEM
            self.chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
            self.nioRoots = try NIOSSLCertificate.fromPEMBytes(Array(rootsPEM.utf8))
            do {
                self.key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
            } catch {
                throw ProxyError(.identity, "\(source): the private key does not parse as PEM; the node agent writes it as key.pem")
            }
            // The key must be the leaf's: a chain and key from two rotations cannot make a handshake.
            if let parsed = try? Certificate.PrivateKey(pemEncoded: keyPEM), parsed.publicKey != leaf.publicKey {
                throw ProxyError(.identity, "\(source): the private key is not the key of the leaf certificate (files from two rotations?); the proxy waits for the agent's next write")
            }
            guard let id = Self.uriSAN(of: leaf) else {
                throw ProxyError(.identity, "\(source): the leaf certificate carries no spiffe:// URI SAN; it is not an X.509-SVID")
            }
            self.spiffeID = id
            self.spiffeIDString = id.string
            var hasher = SHA256()
            hasher.update(data: Array(chainPEM.utf8))
            hasher.update(data: Array(keyPEM.utf8))
            hasher.update(data: Array(rootsPEM.utf8))
            self.fingerprint = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        } catch let error as ProxyError {
            throw error
        } catch {
            throw ProxyError(
                .identity,
                "\(source): cannot parse the workload identity (\(PEMFault.describe(error, expected: "a CERTIFICATE or PRIVATE KEY"))): check that cert-chain.pem, key.pem and root-cert.pem hold what their names say")
        }
    }

    /// Reads the node agent's output directory.
    public init(directory: String) throws(ProxyError) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder), isFolder.boolValue else {
            let what = FileManager.default.fileExists(atPath: directory) ? "is a file, not a folder" : "does not exist yet"
            throw ProxyError(.identity, "--identity-dir \(directory) \(what): point it at the node agent's --out directory")
        }
        func read(_ name: String) throws(ProxyError) -> String {
            let path = (directory as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path) else {
                throw ProxyError(.identity, "\(directory) has no \(name) yet: is the node agent running with --out \(directory)?")
            }
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw ProxyError(.identity, "\(path) cannot be read (permission denied, or not text): give the proxy's user read access to the agent's files")
            }
            return text
        }
        try self.init(chainPEM: try read("cert-chain.pem"), keyPEM: try read("key.pem"), rootsPEM: try read("root-cert.pem"), source: directory)
    }

    /// Reads one Workload API X509SVID: the chain and the roots as concatenated DER, the key as PKCS#8 DER.
    public init(chainDER: [UInt8], keyPKCS8: [UInt8], bundleDER: [UInt8], source: String) throws(ProxyError) {
        let chainPEM: String
        let rootsPEM: String
        do {
            chainPEM = try DERCertificates.pem(DERCertificates.parse(chainDER))
            rootsPEM = try DERCertificates.pem(DERCertificates.parse(bundleDER))
        } catch {
            throw ProxyError(.identity, "\(source): the X509SVID's certificates do not parse as DER: \(error)")
        }
        let keyPEM = PEMDocument(type: "PRIVATE KEY", derBytes: keyPKCS8).pemString
        try self.init(chainPEM: chainPEM, keyPEM: keyPEM, rootsPEM: rootsPEM, source: source)
    }

    /// The SPIFFE ID in a certificate's URI SAN, if it has exactly one.
    public static func uriSAN(of certificate: Certificate) -> SPIFFEID? {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        let uris = names.compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        guard uris.count == 1, let uri = uris.first else { return nil }
        return try? SPIFFEID(parsing: uri)
    }
}

extension Certificate.SerialNumber {
    /// Lower-case hex without separators or leading zeros, as the CA's store spells serials.
    var compactHex: String { RevocationList.normalize(bytes.map { String(format: "%02x", $0) }.joined()) }
}
