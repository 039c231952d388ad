import Foundation

/// Issued certificates: written before they leave the CA, listed and revoked by operators.
public protocol IssuedCertificateStore: Sendable {
    /// Durably records certificates (and their audit events) before returning.
    func recordIssued(_ records: [CertificateRecord], audit: [AuditEntry]) async throws
    /// The certificate with this serial (hex, any case), if any.
    func certificate(serial: String) async throws -> CertificateRecord?
    /// Certificates matching the filter, newest first.
    func certificates(matching filter: CertificateFilter) async throws -> [CertificateRecord]
    /// Marks a certificate revoked; returns the updated record.
    func revoke(serial: String, reason: String?, at time: Date, actor: String) async throws -> CertificateRecord
    /// Revoked certificates whose `notAfter` is after `now`, ordered by serial: what proxies must refuse.
    func revokedCertificates(unexpiredAt now: Date) async throws -> [RevokedCertificate]
}

/// One-time bootstrap tokens.
public protocol BootstrapTokenStore: Sendable {
    /// Stores a new token hash.
    func createToken(_ record: BootstrapTokenRecord, actor: String) async throws
    /// Spends a token atomically, or says why it cannot be spent.
    func redeemToken(sha256: String, at time: Date, actor: String) async throws -> TokenRedemption
}

/// The hash-chained audit log.
public protocol AuditLog: Sendable {
    /// Appends events to the chain.
    func append(_ entries: [AuditEntry]) async throws
    /// Every event, oldest first.
    func events() async throws -> [AuditEvent]
    /// Recomputes the chain and reports the first break, if any.
    func verifyAuditChain() async throws -> AuditVerification
}

/// CA certificates and their slots.
public protocol AuthorityStore: Sendable {
    /// Records a CA certificate.
    func recordAuthority(_ record: AuthorityRecord) async throws
    /// Every CA certificate known.
    func authorities() async throws -> [AuthorityRecord]
}
