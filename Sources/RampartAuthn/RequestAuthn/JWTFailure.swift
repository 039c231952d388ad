import RampartPolicy

/// Why a token was refused: a value with the HTTP status Envoy answers and a reason for people.
public struct JWTFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure, after Envoy's jwt_authn statuses.
    public enum Kind: String, Sendable, Hashable {
        /// Not three base64url parts of JSON.
        case malformed
        /// The rule reading the token's location is for another `iss`.
        case unknownIssuer
        /// The issuer's JWKS could not be loaded.
        case keysUnavailable
        /// The issuer's JWKS holds no key at all.
        case noKeys
        /// The header names a `kid` the issuer's JWKS lacks.
        case unknownKid
        /// No key of the JWKS has the header's algorithm.
        case algorithmMismatch
        /// The signature does not verify with the issuer's key.
        case badSignature
        /// `exp` has passed.
        case expired
        /// `nbf` has not come yet.
        case notYetValid
        /// `aud` shares no value with the rule's `audiences`.
        case audienceNotAllowed
    }

    /// The kind of failure.
    public let kind: Kind
    /// What was wrong, where the token was, and what was expected.
    public let reason: String
    /// For a malformed token, the status text Envoy's JWT library gives that fault ("Jwt header
    /// is an invalid JSON" …), which the proxy's 401 carries.
    public let envoyText: String?

    /// Creates a failure.
    public init(_ kind: Kind, _ reason: String, envoyText: String? = nil) {
        self.kind = kind
        self.reason = reason
        self.envoyText = envoyText
    }

    /// 403 for an audience the rule does not accept (Envoy's JwtAudienceNotAllowed), 401 otherwise.
    public var status: Int { kind == .audienceNotAllowed ? 403 : 401 }

    /// The reason.
    public var description: String { reason }
}
