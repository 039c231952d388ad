import Foundation
import RampartAuthn
import RampartIdentity
import RampartPKI
import RampartStore
import X509

/// Who a caller is, and how they proved it.
public struct AuthenticatedCaller: Sendable, Equatable {
    /// The identity the certificate will name.
    public let identity: SPIFFEID
    /// How it was proven.
    public let method: AuthenticationMethod
    /// A bootstrap token still to be spent once the request is known to be acceptable.
    let pendingTokenHash: String?
    /// The serial of the client certificate whose record (on file, not revoked) is still to be
    /// checked, in the transaction that records what is issued to this caller.
    var pendingRecordCheck: String? = nil
    /// A short description of the credential for the audit log (never the secret).
    public let credential: String
}

/// A refusal, mapped to a gRPC status by the service.
public struct Refusal: Error, Sendable, Equatable {
    /// The status category.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case unauthenticated
        case permissionDenied = "permission_denied"
        case invalidArgument = "invalid_argument"
        case internalError = "internal"
        case unavailable
    }

    /// The status category.
    public let kind: Kind
    /// What was wrong and what to do.
    public let message: String

    /// Creates a refusal.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// Establishes a caller's identity from a bearer credential or the TLS client certificate.
///
/// A bearer credential, when sent, decides: a Rampart bootstrap token or a JWT from a trusted
/// issuer. Otherwise the client certificate is used, which must be one this CA issued, still
/// valid and not revoked.
public struct CallerAuthenticator: Sendable {
    let trustDomain: TrustDomain
    let store: SQLiteStore
    let jwt: JWTAuthenticator?
    let validator: SVIDValidator
    let validated = ValidatedCertificateCache()

    /// Creates an authenticator.
    public init(trustDomain: TrustDomain, store: SQLiteStore, jwt: JWTAuthenticator?, authority: CertificateAuthority) {
        self.trustDomain = trustDomain
        self.store = store
        self.jwt = jwt
        self.validator = SVIDValidator(roots: authority.roots, intermediates: Array(authority.chain.dropLast()))
    }

    /// Authenticates from the `authorization` metadata value and the peer certificate.
    ///
    /// With `deferringRecordCheck`, a caller authenticated by its certificate is returned before
    /// the store is asked whether that certificate is on record and not revoked: the caller then
    /// carries ``AuthenticatedCaller/pendingRecordCheck``, and whoever records the issuance must
    /// make that check in the same transaction (``SQLiteStore/recordIssued(_:audit:renewing:)``).
    public func authenticate(
        authorization: String?, peerCertificate: Certificate?, now: Date, deferringRecordCheck: Bool = false
    ) async throws(Refusal) -> AuthenticatedCaller {
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw Refusal(.unauthenticated, "authorization metadata must be 'Bearer <token>'")
            }
            let credential = String(parts[1]).trimmingCharacters(in: .whitespaces)
            if credential.hasPrefix(BootstrapTokens.prefix) {
                return try await bootstrapToken(credential, now: now)
            }
            // Three parts, the last of which may be empty (an unsigned token, refused as a JWT).
            if credential.split(separator: ".", omittingEmptySubsequences: false).count == 3 {
                return try await jwtToken(credential, now: now)
            }
            throw Refusal(.unauthenticated, "bearer credential is neither a bootstrap token (rbt_…) nor a JWT: create a token with 'rampart token create'")
        }
        if let peerCertificate {
            return try await certificate(peerCertificate, now: now, deferringRecordCheck: deferringRecordCheck)
        }
        throw Refusal(
            .unauthenticated,
            "no credential: send 'authorization: Bearer <token>' metadata (a bootstrap token or a trusted JWT), or present your current certificate over mTLS to renew"
        )
    }

    private func bootstrapToken(_ token: String, now: Date) async throws(Refusal) -> AuthenticatedCaller {
        let hash = BootstrapTokens.hash(token)
        let record: BootstrapTokenRecord?
        do {
            record = try await store.token(sha256: hash)
        } catch {
            throw Refusal(.unavailable, "the CA's store is unavailable: \(error)")
        }
        guard let record else {
            throw Refusal(.unauthenticated, "bootstrap token is unknown: it was never issued by this CA; create one with 'rampart token create'")
        }
        if let used = record.usedAt {
            throw Refusal(.permissionDenied, "bootstrap token was already used at \(Self.format(used)): tokens work once; create a new one")
        }
        if record.expiresAt <= now {
            throw Refusal(.permissionDenied, "bootstrap token expired at \(Self.format(record.expiresAt)): create a new one with a longer --ttl")
        }
        guard let id = try? SPIFFEID(parsing: record.spiffeID) else {
            throw Refusal(.internalError, "bootstrap token grants an unparseable identity \(record.spiffeID)")
        }
        return AuthenticatedCaller(identity: id, method: .bootstrapToken, pendingTokenHash: hash, credential: "token:\(hash.prefix(16))")
    }

    /// Spends a token found acceptable by ``authenticate(authorization:peerCertificate:now:)``.
    func redeem(_ caller: AuthenticatedCaller, now: Date) async throws(Refusal) {
        guard let hash = caller.pendingTokenHash else { return }
        let outcome: TokenRedemption
        do {
            outcome = try await store.redeemToken(sha256: hash, at: now, actor: caller.identity.string)
        } catch {
            throw Refusal(.unavailable, "the CA's store is unavailable: \(error)")
        }
        switch outcome {
        case .redeemed: return
        case .unknown: throw Refusal(.unauthenticated, "bootstrap token is unknown: it was never issued by this CA; create one with 'rampart token create'")
        case .alreadyUsed(let at): throw Refusal(.permissionDenied, "bootstrap token was already used at \(Self.format(at)): tokens work once; create a new one")
        case .expired(let at): throw Refusal(.permissionDenied, "bootstrap token expired at \(Self.format(at)): create a new one")
        }
    }

    private func jwtToken(_ token: String, now: Date) async throws(Refusal) -> AuthenticatedCaller {
        guard let jwt, jwt.isEnabled else {
            throw Refusal(.unauthenticated, "JWT authentication is not configured on this CA: start it with --jwt-issuer ISS --jwks FILE|URL, or use a bootstrap token")
        }
        do {
            let id = try await jwt.authenticate(token, now: now)
            return AuthenticatedCaller(identity: id, method: .jwt, pendingTokenHash: nil, credential: "jwt:\(id)")
        } catch {
            switch error.code {
            case .invalidCredential: throw Refusal(.unauthenticated, error.reason)
            case .notPermitted: throw Refusal(.permissionDenied, error.reason)
            case .keySourceUnavailable: throw Refusal(.unavailable, error.reason)
            }
        }
    }

    private func certificate(_ certificate: Certificate, now: Date, deferringRecordCheck: Bool) async throws(Refusal) -> AuthenticatedCaller {
        let serial = certificate.serialNumber.hexString
        let id: SPIFFEID
        if let known = validated.identity(of: certificate, at: now) {
            id = known
        } else {
            do {
                id = try await validator.validate(certificate, at: now)
            } catch {
                throw Refusal(.unauthenticated, "client certificate \(serial) is not usable for renewal: \(error.reason)")
            }
            validated.remember(certificate, as: id)
        }
        var caller = AuthenticatedCaller(identity: id, method: .mtls, pendingTokenHash: nil, credential: "cert:\(serial)")
        if deferringRecordCheck {
            caller.pendingRecordCheck = serial
            return caller
        }
        let record: CertificateStatusRecord?
        do {
            record = try store.status(serial: serial)
        } catch {
            throw Refusal(.unavailable, "the CA's store is unavailable: \(error)")
        }
        try Self.check(record, serial: serial, identity: id)
        return caller
    }

    /// Refuses a client certificate the store has no record of, or has revoked.
    static func check(_ record: CertificateStatusRecord?, serial: String, identity: SPIFFEID) throws(Refusal) {
        guard let record else {
            throw Refusal(.unauthenticated, "client certificate \(serial) was not issued by this CA (no record of it): bootstrap again with a token")
        }
        if record.status == .revoked {
            throw Refusal(
                .permissionDenied,
                "client certificate \(serial) for \(identity) was revoked at \(record.revokedAt.map(Self.format) ?? "?")\(record.revocationReason.map { " (\($0))" } ?? ""): it cannot renew; bootstrap again with a new token"
            )
        }
    }

    static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
