import Foundation
import JWTKit

/// The registered claims of a JWT-SVID, as SPIFFE's JWT-SVID specification defines them:
/// `sub` (the SPIFFE ID), `aud` (one or more audiences) and `exp` are required.
struct JWTSVIDClaims: JWTPayload {
    var sub: SubjectClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim?

    /// jwt-kit checks only the signature; ``JWTSVIDValidator`` checks the claims so that each
    /// failure can say what was wrong.
    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Every claim of a token, whatever its shape, for `ValidateJWTSVID`'s answer.
struct AllClaims: JWTPayload {
    var values: [String: JSONValue]

    init(from decoder: any Decoder) throws {
        values = try [String: JSONValue](from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        try values.encode(to: encoder)
    }

    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Only the subject, to find the trust domain whose keys verify the token.
struct SubjectOnlyClaims: JWTPayload {
    var sub: SubjectClaim?
    func verify(using algorithm: some JWTAlgorithm) throws {}
}
