import Foundation
import JWTKit

/// The claims Rampart reads from a workload's JWT (a Kubernetes-style service-account token).
struct ServiceAccountClaims: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var aud: AudienceClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?

    /// Signature checks happen in jwt-kit; claim checks happen in ``JWTAuthenticator`` so each
    /// failure gets its own message.
    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Just enough of a token to route it to its issuer before verifying.
struct IssuerOnlyClaims: JWTPayload {
    var iss: IssuerClaim?
    func verify(using algorithm: some JWTAlgorithm) throws {}
}
