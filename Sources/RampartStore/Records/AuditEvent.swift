import Foundation

/// The kinds of audited events.
public enum AuditEventType: String, Sendable, Codable, Equatable, CaseIterable {
    case caInitialized = "ca.initialized"
    case certificateIssued = "certificate.issued"
    case issuanceRefused = "certificate.refused"
    case certificateRevoked = "certificate.revoked"
    case tokenCreated = "token.created"
    case tokenUsed = "token.used"
    case configApplied = "config.applied"
    case configDeleted = "config.deleted"
}

/// An event to append to the audit log.
public struct AuditEntry: Sendable, Equatable {
    /// When it happened.
    public var time: Date
    /// What happened.
    public var type: AuditEventType
    /// Who did it (caller identity, `admin`, or `ca`).
    public var actor: String
    /// What it happened to (a serial, a SPIFFE ID, a token hash prefix).
    public var subject: String
    /// Further facts, as a flat JSON object.
    public var details: [String: String]

    /// Creates an entry.
    public init(time: Date, type: AuditEventType, actor: String, subject: String, details: [String: String] = [:]) {
        self.time = time
        self.type = type
        self.actor = actor
        self.subject = subject
        self.details = details
    }
}

/// A stored audit event with its place in the hash chain.
public struct AuditEvent: Sendable, Codable, Equatable {
    /// Position in the log, from 1.
    public var sequence: Int64
    /// When it happened.
    public var time: Date
    /// What happened.
    public var eventType: String
    /// Who did it.
    public var actor: String
    /// What it happened to.
    public var subject: String
    /// Further facts, as JSON.
    public var details: String
    /// The previous row's hash (64 zeros for the first).
    public var previousHash: String
    /// SHA-256 over the previous hash and this row's fields.
    public var hash: String

    enum CodingKeys: String, CodingKey {
        case sequence = "seq"
        case time
        case eventType = "event_type"
        case actor
        case subject
        case details
        case previousHash = "prev_hash"
        case hash
    }
}

/// The result of checking the audit chain.
public enum AuditVerification: Sendable, Equatable {
    /// Every row's hash matches and links to the previous one.
    case intact(events: Int)
    /// The first row whose hash does not match, and why.
    case broken(sequence: Int64, reason: String)
}
