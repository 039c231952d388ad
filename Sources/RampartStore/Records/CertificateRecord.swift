import Foundation

/// Whether an issued certificate may still be used to renew.
public enum CertificateStatus: String, Sendable, Codable, Equatable {
    case active
    case revoked
}

/// How a caller proved its identity to the CA.
public enum AuthenticationMethod: String, Sendable, Codable, Equatable {
    case bootstrapToken = "bootstrap-token"
    case jwt
    case mtls
    case admin
    case caInternal = "ca-internal"
}

/// One certificate that left the CA. Rows are written before the certificate is returned.
public struct CertificateRecord: Sendable, Codable, Equatable {
    /// Serial number, lowercase hex.
    public var serial: String
    /// The SPIFFE ID in the URI SAN.
    public var spiffeID: String
    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex.
    public var publicKeySHA256: String
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// When the CA signed it.
    public var issuedAt: Date
    /// Who asked: the authenticated identity of the caller (token, JWT subject, or certificate).
    public var callerIdentity: String
    /// How the caller authenticated.
    public var authMethod: AuthenticationMethod
    /// The chain as returned: leaf first, root last, concatenated PEM.
    public var chainPEM: String
    /// Active or revoked.
    public var status: CertificateStatus
    /// When it was revoked.
    public var revokedAt: Date?
    /// Why it was revoked.
    public var revocationReason: String?

    /// Creates a record.
    public init(
        serial: String, spiffeID: String, publicKeySHA256: String, notBefore: Date, notAfter: Date, issuedAt: Date,
        callerIdentity: String, authMethod: AuthenticationMethod, chainPEM: String,
        status: CertificateStatus = .active, revokedAt: Date? = nil, revocationReason: String? = nil
    ) {
        self.serial = serial
        self.spiffeID = spiffeID
        self.publicKeySHA256 = publicKeySHA256
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.issuedAt = issuedAt
        self.callerIdentity = callerIdentity
        self.authMethod = authMethod
        self.chainPEM = chainPEM
        self.status = status
        self.revokedAt = revokedAt
        self.revocationReason = revocationReason
    }

    enum CodingKeys: String, CodingKey {
        case serial
        case spiffeID = "spiffe_id"
        case publicKeySHA256 = "public_key_sha256"
        case notBefore = "not_before"
        case notAfter = "not_after"
        case issuedAt = "issued_at"
        case callerIdentity = "caller_identity"
        case authMethod = "auth_method"
        case chainPEM = "chain_pem"
        case status
        case revokedAt = "revoked_at"
        case revocationReason = "revocation_reason"
    }

    /// The status a person should see at `now`: `expired` once past `notAfter` unless revoked.
    public func displayStatus(at now: Date) -> String {
        if status == .revoked { return "revoked" }
        return notAfter <= now ? "expired" : "active"
    }
}

/// The revocation state of one certificate.
public struct CertificateStatusRecord: Sendable, Equatable {
    /// Active or revoked.
    public var status: CertificateStatus
    /// When it was revoked.
    public var revokedAt: Date?
    /// Why it was revoked.
    public var revocationReason: String?
}

/// Why a certificate cannot be used to renew: the store's answer when issuance to a caller
/// authenticated by that certificate is refused inside the commit.
public struct RenewalRefusal: Error, Sendable, Equatable {
    /// What the store holds for the certificate.
    public enum Reason: Sendable, Equatable {
        /// No certificate with this serial was ever recorded.
        case unknown
        /// It was revoked, when and why as recorded.
        case revoked(at: Date?, reason: String?)
    }

    /// The serial, lowercase hex.
    public let serial: String
    /// What was found.
    public let reason: Reason

    /// Creates a refusal.
    public init(serial: String, reason: Reason) {
        self.serial = serial
        self.reason = reason
    }

    /// The same answer as a status record (`nil` for an unknown certificate), as
    /// ``SQLiteStore/status(serial:)`` gives it.
    public var statusRecord: CertificateStatusRecord? {
        switch reason {
        case .unknown: return nil
        case .revoked(let at, let reason): return CertificateStatusRecord(status: .revoked, revokedAt: at, revocationReason: reason)
        }
    }
}

/// A revoked certificate that has not yet expired: what a proxy needs to refuse it as a peer.
public struct RevokedCertificate: Sendable, Hashable {
    /// Serial number, lowercase hex.
    public var serial: String
    /// The SPIFFE ID in the URI SAN.
    public var spiffeID: String
    /// End of validity; after it the serial no longer needs to be remembered.
    public var notAfter: Date

    /// Creates a revoked-certificate entry.
    public init(serial: String, spiffeID: String, notAfter: Date) {
        self.serial = serial
        self.spiffeID = spiffeID
        self.notAfter = notAfter
    }
}

/// Which certificates to list.
public struct CertificateFilter: Sendable, Equatable {
    /// Only this SPIFFE ID.
    public var spiffeID: String?
    /// Only certificates whose `notAfter` is at or before this instant.
    public var notAfterBefore: Date?
    /// Only certificates whose `notAfter` is after this instant.
    public var notAfterAfter: Date?
    /// At most this many, newest first.
    public var limit: Int?

    /// Creates a filter; no field set means every certificate.
    public init(spiffeID: String? = nil, notAfterBefore: Date? = nil, notAfterAfter: Date? = nil, limit: Int? = nil) {
        self.spiffeID = spiffeID
        self.notAfterBefore = notAfterBefore
        self.notAfterAfter = notAfterAfter
        self.limit = limit
    }
}

extension CertificateRecord {
    /// What the audit event of this certificate's issuance records of it, so that `audit verify`
    /// can tell a row changed afterwards: the identity, the end of validity (whole seconds, as
    /// X.509 keeps it) and the hash of the public key.
    public var issuanceDetails: [String: String] {
        ["spiffe_id": spiffeID, "not_after": notAfter.formatted(.iso8601), "public_key_sha256": publicKeySHA256]
    }
}
