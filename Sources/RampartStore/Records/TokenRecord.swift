import Foundation

/// A one-time bootstrap token, stored only as the SHA-256 of its secret.
public struct BootstrapTokenRecord: Sendable, Codable, Equatable {
    /// SHA-256 of the token, lowercase hex.
    public var tokenSHA256: String
    /// The SPIFFE ID the token grants.
    public var spiffeID: String
    /// When it was made.
    public var createdAt: Date
    /// When it stops working.
    public var expiresAt: Date
    /// When it was used, if it was.
    public var usedAt: Date?

    /// Creates a record.
    public init(tokenSHA256: String, spiffeID: String, createdAt: Date, expiresAt: Date, usedAt: Date? = nil) {
        self.tokenSHA256 = tokenSHA256
        self.spiffeID = spiffeID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
    }

    enum CodingKeys: String, CodingKey {
        case tokenSHA256 = "token_sha256"
        case spiffeID = "spiffe_id"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case usedAt = "used_at"
    }
}

/// What happened when a token was presented.
public enum TokenRedemption: Sendable, Equatable {
    /// The token was valid; it is now spent and grants this SPIFFE ID.
    case redeemed(spiffeID: String)
    /// No such token was ever created.
    case unknown
    /// The token was already used at this time.
    case alreadyUsed(at: Date)
    /// The token expired at this time.
    case expired(at: Date)
}
