import Foundation

/// The state of a CA key slot, as SPIRE names them.
public enum AuthoritySlot: String, Sendable, Codable, Equatable {
    case prepared
    case active
    case retired
}

/// A CA certificate the store knows about.
public struct AuthorityRecord: Sendable, Codable, Equatable {
    /// Serial, lowercase hex.
    public var serial: String
    /// The certificate's subject.
    public var subject: String
    /// The certificate as PEM.
    public var certificatePEM: String
    /// The slot it occupies.
    public var slot: AuthoritySlot
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// When it was recorded.
    public var createdAt: Date

    /// Creates a record.
    public init(serial: String, subject: String, certificatePEM: String, slot: AuthoritySlot, notBefore: Date, notAfter: Date, createdAt: Date) {
        self.serial = serial
        self.subject = subject
        self.certificatePEM = certificatePEM
        self.slot = slot
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case serial
        case subject
        case certificatePEM = "certificate_pem"
        case slot
        case notBefore = "not_before"
        case notAfter = "not_after"
        case createdAt = "created_at"
    }
}
