import Foundation
import RampartAuthn
import RampartIdentity
import RampartPKI
import SwiftASN1
import X509

/// The workload's current X.509-SVID: its chain (leaf first, then intermediates) and its key.
public struct X509SVID: Sendable {
    /// The SPIFFE ID in the leaf's URI SAN.
    public let spiffeID: SPIFFEID
    /// The leaf, then intermediates. Self-signed roots are not included: they belong to the bundle.
    public let chain: [Certificate]
    /// The key matching the leaf.
    public let key: WorkloadKey
    /// When the agent received it. The CA backdates `notBefore` to absorb clock skew, so the
    /// lifetime the renewal schedule divides runs from here (never before `notBefore`).
    public let receivedAt: Date

    /// The leaf certificate.
    public var leaf: Certificate { chain[0] }
    /// The leaf's serial, hex.
    public var serialHex: String { leaf.serialNumber.hexString }
    public var notBefore: Date { leaf.notValidBefore }
    public var notAfter: Date { leaf.notValidAfter }
    /// The start of the lifetime the renewal schedule divides: receipt, within the validity window.
    public var lifetimeStart: Date { min(max(notBefore, receivedAt), notAfter) }

    /// Where a chain came from, for the words of a refusal.
    public enum Source: Sendable {
        /// The CA's answer to this agent's CSR.
        case ca
        /// Files an earlier run left in a directory.
        case files(String)

        var chain: String {
            switch self {
            case .ca: "the CA's answer"
            case .files(let path): path
            }
        }

        var certificate: String {
            switch self {
            case .ca: "the certificate the CA returned"
            case .files(let path): "the certificate in \(path)"
            }
        }

        var key: String {
            switch self {
            case .ca: "the key this agent generated"
            case .files(let path): "the key in \(((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(IdentityFiles.key))"
            }
        }

        var code: AgentError.Code {
            switch self {
            case .ca: .badResponse
            case .files: .output
            }
        }
    }

    /// Builds an SVID from a chain as the CA sent it (leaf first, root last) and the key the CSR
    /// was signed with. Checks that the key matches the leaf and that the leaf is a valid SVID
    /// chaining to `roots`.
    public init(chainPEM: [String], key: WorkloadKey, roots: [Certificate], now: Date, receivedAt: Date? = nil, source: Source = .ca) async throws {
        guard !chainPEM.isEmpty else {
            throw AgentError(source.code, "\(source.chain) holds no certificate chain")
        }
        var certificates: [Certificate] = []
        for (index, pem) in chainPEM.enumerated() {
            do {
                certificates.append(contentsOf: try Certificate.allFromPEM(pem))
            } catch {
                throw AgentError(source.code, "certificate \(index) of \(source.chain): \(PEMFault.describe(error, expected: "a CERTIFICATE"))")
            }
        }
        guard let leaf = certificates.first else {
            throw AgentError(source.code, "\(source.chain) holds no PEM certificate")
        }
        guard leaf.publicKey == key.privateKey.publicKey else {
            throw AgentError(source.code, "\(source.certificate) (serial \(leaf.serialNumber.hexString)) does not match \(source.key)")
        }
        let intermediates = certificates.dropFirst().filter { $0.subject != $0.issuer }
        let validator = SVIDValidator(roots: roots, intermediates: Array(intermediates))
        let id: SPIFFEID
        do {
            id = try await validator.validate(leaf, at: now)
        } catch {
            throw AgentError(source.code, "\(source.certificate) is not a valid X.509-SVID for this trust bundle: \(error.reason)")
        }
        self.spiffeID = id
        self.chain = [leaf] + intermediates
        self.key = key
        self.receivedAt = receivedAt ?? now
    }

    /// The chain as PEM, leaf first.
    public var chainPEM: String {
        chain.compactMap { try? $0.serializeAsPEM().pemString }.map { $0 + "\n" }.joined()
    }

    /// The chain as concatenated DER, as the Workload API sends it.
    public var chainDER: [UInt8] {
        chain.flatMap { certificate -> [UInt8] in
            var serializer = DER.Serializer()
            try? serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }

    /// Seconds left until expiry (negative once expired).
    public func remaining(at now: Date) -> TimeInterval { notAfter.timeIntervalSince(now) }
}

/// The trust domain's bundle as the agent holds it: X.509 roots and JWT keys.
public struct TrustBundle: Sendable {
    /// The trust domain.
    public let trustDomain: TrustDomain
    /// Every root to trust.
    public let roots: [Certificate]
    /// The JWT-SVID keys, when the CA published them.
    public let jwt: JWTBundle?

    /// Creates a bundle.
    public init(trustDomain: TrustDomain, roots: [Certificate], jwt: JWTBundle?) {
        self.trustDomain = trustDomain
        self.roots = roots
        self.jwt = jwt
    }

    /// The roots as PEM, one after the other.
    public var rootsPEM: String {
        roots.compactMap { try? $0.serializeAsPEM().pemString }.map { $0 + "\n" }.joined()
    }

    /// The roots as concatenated DER.
    public var rootsDER: [UInt8] {
        roots.flatMap { certificate -> [UInt8] in
            var serializer = DER.Serializer()
            try? serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }

    /// Whether two bundles hold the same roots and JWT keys.
    public func sameContent(as other: TrustBundle) -> Bool {
        trustDomain == other.trustDomain && roots == other.roots && jwt?.keys == other.jwt?.keys
    }
}

extension Certificate {
    /// Every certificate in a PEM text.
    static func allFromPEM(_ pem: String) throws -> [Certificate] {
        try PEMDocument.parseMultiple(pemString: pem).map { try Certificate(pemDocument: $0) }
    }
}
