import Crypto
import Foundation
import JWTKit
import RampartIdentity

/// Signs JWT-SVIDs with the CA's JWT key (ES256), following SPIFFE's JWT-SVID rules: `sub` is the
/// SPIFFE ID, `aud` holds at least one audience, `exp` is always set, and the header names the
/// key with `kid` and the type as `JWT`.
public struct JWTSVIDSigner: Sendable {
    /// The key's identifier in the bundle and in token headers.
    public let keyID: String
    /// The bundle entry for the public key.
    public let bundleKey: JWTBundle.Key
    private let keys: JWTKeyCollection

    /// The default lifetime of a JWT-SVID: 5 minutes, as SPIRE.
    public static let defaultTTL: TimeInterval = 300
    /// The longest lifetime a caller may ask for.
    public static let maximumTTL: TimeInterval = 24 * 3600

    /// Loads an ES256 signing key from PEM (PKCS#8 or SEC1).
    public init(privateKeyPEM: String) async throws(AuthnError) {
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        } catch {
            throw AuthnError(.keySourceUnavailable, "the JWT signing key is not a PEM EC P-256 private key (\(error)): JWT-SVIDs are signed with ES256")
        }
        let publicDER = key.publicKey.derRepresentation
        // A stable key ID: the unpadded base64url SHA-256 of the public key, so it survives restarts.
        keyID = String(Self.base64URL(Data(SHA256.hash(data: publicDER))).prefix(32))
        let signing: ES256PrivateKey
        do {
            signing = try ES256PrivateKey(backing: key)
        } catch {
            throw AuthnError(.keySourceUnavailable, "the JWT signing key cannot be used for ES256: \(error)")
        }
        guard let parameters = signing.parameters else {
            throw AuthnError(.keySourceUnavailable, "the JWT signing key's public coordinates cannot be read")
        }
        bundleKey = JWTBundle.Key(kty: "EC", crv: "P-256", x: parameters.x, y: parameters.y, kid: keyID, use: "jwt-svid")
        keys = JWTKeyCollection()
        await keys.add(ecdsa: signing, kid: JWKIdentifier(string: keyID))
    }

    /// A fresh ES256 key as PKCS#8 PEM, for writing into the CA's state directory.
    public static func generateKeyPEM() -> String {
        P256.Signing.PrivateKey().pemRepresentation
    }

    /// Signs a JWT-SVID for `subject`.
    ///
    /// - Returns: the compact token and its expiry (whole seconds).
    public func sign(subject: SPIFFEID, audience: [String], ttl: TimeInterval, now: Date) async throws(AuthnError) -> (token: String, expiresAt: Date) {
        let audiences = audience.filter { !$0.isEmpty }
        guard !audiences.isEmpty else {
            throw AuthnError(.notPermitted, "a JWT-SVID needs at least one audience: name the service that will receive the token")
        }
        guard ttl > 0, ttl <= Self.maximumTTL else {
            throw AuthnError(.notPermitted, "JWT-SVID lifetime \(Int(ttl)) s is out of range: ask for 1 s to \(Int(Self.maximumTTL)) s (0 means the 5-minute default)")
        }
        let issuedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let expiresAt = issuedAt.addingTimeInterval(ttl.rounded(.up))
        let claims = JWTSVIDClaims(sub: SubjectClaim(value: subject.string), aud: AudienceClaim(value: audiences), exp: ExpirationClaim(value: expiresAt), iat: IssuedAtClaim(value: issuedAt))
        var header = JWTHeader()
        header.typ = "JWT"
        do {
            let token = try await keys.sign(claims, kid: JWKIdentifier(string: keyID), header: header)
            return (token, expiresAt)
        } catch {
            throw AuthnError(.keySourceUnavailable, "signing the JWT-SVID failed: \(error)")
        }
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
