import Foundation
import JWTKit

/// A trust domain's JWT authorities in the SPIFFE bundle format: a JWKS document whose keys carry
/// `"use": "jwt-svid"` and a `kid`, plus the optional `spiffe_sequence` and `spiffe_refresh_hint`.
public struct JWTBundle: Sendable, Equatable {
    /// One public key of the bundle.
    public struct Key: Sendable, Equatable, Codable {
        public var kty: String
        public var crv: String?
        public var x: String?
        public var y: String?
        public var n: String?
        public var e: String?
        public var kid: String?
        public var use: String?
        public var alg: String?

        /// Creates a key entry.
        public init(kty: String, crv: String? = nil, x: String? = nil, y: String? = nil, n: String? = nil, e: String? = nil, kid: String?, use: String? = "jwt-svid", alg: String? = nil) {
            self.kty = kty
            self.crv = crv
            self.x = x
            self.y = y
            self.n = n
            self.e = e
            self.kid = kid
            self.use = use
            self.alg = alg
        }
    }

    /// The keys.
    public var keys: [Key]
    /// Increases when the bundle changes.
    public var sequence: UInt64?
    /// How often, in seconds, holders should refresh the bundle.
    public var refreshHint: Int64?

    private struct Document: Codable {
        var keys: [Key]
        var spiffe_sequence: UInt64?
        var spiffe_refresh_hint: Int64?
    }

    /// Creates a bundle.
    public init(keys: [Key], sequence: UInt64? = nil, refreshHint: Int64? = nil) {
        self.keys = keys
        self.sequence = sequence
        self.refreshHint = refreshHint
    }

    /// Parses a bundle document. Keys meant for other uses (`x509-svid`) are kept but never used
    /// to verify JWT-SVIDs.
    public init(json: Data) throws(AuthnError) {
        do {
            let document = try JSONDecoder().decode(Document.self, from: json)
            self.init(keys: document.keys, sequence: document.spiffe_sequence, refreshHint: document.spiffe_refresh_hint)
        } catch {
            throw AuthnError(.keySourceUnavailable, "JWT bundle is not a SPIFFE bundle JWKS document (\(error)): it must be {\"keys\": [...]}")
        }
    }

    /// The bundle as a JSON document.
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding a value built of strings and integers cannot fail.
        return (try? encoder.encode(Document(keys: keys, spiffe_sequence: sequence, spiffe_refresh_hint: refreshHint))) ?? Data("{\"keys\":[]}".utf8)
    }

    /// The keys usable for JWT-SVIDs: `use` absent or `jwt-svid`, with a `kid`.
    public var jwtSVIDKeys: [Key] {
        keys.filter { ($0.use == nil || $0.use == "jwt-svid") && $0.kid != nil }
    }

    /// A jwt-kit key collection of the JWT-SVID keys, each pinned to one algorithm, and their kids.
    func keyCollection() async throws(AuthnError) -> (JWTKeyCollection, Set<String>) {
        let collection = JWTKeyCollection()
        var kids: Set<String> = []
        for key in jwtSVIDKeys {
            guard let kid = key.kid else { continue }
            do {
                let data = try JSONEncoder().encode(key)
                var jwk = try JSONDecoder().decode(JWK.self, from: data)
                if jwk.algorithm == nil { jwk.algorithm = JWKAlgorithms.pinned(for: jwk) }
                guard jwk.algorithm != nil else {
                    throw AuthnError(.keySourceUnavailable, "JWT bundle key \(kid) has key type \(key.kty) \(key.crv ?? ""), which Rampart cannot verify: use EC P-256/P-384 or RSA")
                }
                try await collection.add(jwk: jwk)
                kids.insert(kid)
            } catch let error as AuthnError {
                throw error
            } catch {
                throw AuthnError(.keySourceUnavailable, "JWT bundle key \(kid) is not a usable JWK: \(ErrorText.describe(error))")
            }
        }
        return (collection, kids)
    }
}

/// The algorithms a JWK without `alg` may verify.
enum JWKAlgorithms {
    /// For tokens of a RequestAuthentication, as Envoy's verifier allows: an RSA key verifies the
    /// RS and PS algorithms, an EC key the ES algorithm of its curve, an Ed25519 key EdDSA.
    static func accepted(for key: JWK) -> [JWK.Algorithm] {
        if key.keyType == .rsa { return [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512] }
        if key.keyType == .octetKeyPair, key.curve?.rawValue == "Ed25519" { return [.eddsa] }
        return pinned(for: key).map { [$0] } ?? []
    }

    /// For JWT-SVIDs: one algorithm per key, so no token header can choose it.
    static func pinned(for key: JWK) -> JWK.Algorithm? {
        switch (key.keyType, key.curve?.rawValue) {
        case (.rsa, _): return .rs256
        case (.ecdsa, "P-256"?): return .es256
        case (.ecdsa, "P-384"?): return .es384
        case (.ecdsa, "P-521"?): return .es512
        default: return nil
        }
    }
}
