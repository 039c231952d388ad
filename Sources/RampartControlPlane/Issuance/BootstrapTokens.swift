import Crypto
import Foundation
import RampartIdentity
import RampartPKI
import RampartStore

/// One-time bootstrap tokens: 256 random bits, handed out once, stored only as SHA-256.
public enum BootstrapTokens {
    /// The prefix that marks a Rampart bootstrap token, so it is never mistaken for a JWT.
    public static let prefix = "rbt_"

    /// Creates a token granting `spiffeID` until `now + ttl`, stores its hash, and returns the secret.
    public static func create(
        store: some BootstrapTokenStore, spiffeID: SPIFFEID, ttl: TimeInterval, actor: String = "admin", now: Date = Date()
    ) async throws -> String {
        guard spiffeID.isWorkloadIdentity else {
            throw ControlPlaneError(.badArgument, "--spiffe-id \(spiffeID) has no path: give a workload identity such as spiffe://\(spiffeID.trustDomain)/ns/default/sa/default")
        }
        guard ttl > 0 else {
            throw ControlPlaneError(.badArgument, "--ttl must be positive, such as 10m or 1h")
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = rng.next() }
        let token = prefix + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        try await store.createToken(
            BootstrapTokenRecord(tokenSHA256: hash(token), spiffeID: spiffeID.string, createdAt: now, expiresAt: now.addingTimeInterval(ttl)),
            actor: actor
        )
        return token
    }

    /// SHA-256 of a token, lowercase hex: the only form the store keeps.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).hexString
    }
}
