import Foundation
import JWTKit

/// A JWKS document loaded into jwt-kit, one single-key collection per key, each pinned to one algorithm.
///
/// jwt-kit falls back to the first key of a collection when a token names an unknown `kid`, so a
/// collection holds exactly one key here and callers choose the key by `kid` themselves
/// (``candidates(kid:algorithm:)``). A key without `alg` (optional in RFC 7517) is pinned to the
/// algorithm its type and curve imply, so no token header can choose it.
public struct JWKSKeySet: Sendable {
    /// One key of the set.
    public struct Key: Sendable {
        /// The key's `kid`, if the document gives one.
        public let kid: String?
        /// The algorithm the key is pinned to (`ES256`, `RS256`, `PS256` …).
        public let algorithm: String
        /// A collection holding only this key, as its default.
        let collection: JWTKeyCollection
    }

    /// The keys, in document order.
    public let keys: [Key]

    /// The `kid`s of the keys that have one.
    public var kids: Set<String> { Set(keys.compactMap(\.kid)) }

    /// Parses a JWKS document; `origin` names it in errors (for example "the JWKS of ISS from URL").
    public static func load(json: String, origin: String) async throws(AuthnError) -> JWKSKeySet {
        let document: JWKS
        do {
            document = try JSONDecoder().decode(JWKS.self, from: Data(json.utf8))
        } catch {
            throw AuthnError(.keySourceUnavailable, "\(origin) does not parse as a JWKS document {\"keys\": [...]}: \(error)")
        }
        var keys: [Key] = []
        for (index, original) in document.keys.enumerated() {
            var jwk = original
            let kid = jwk.keyIdentifier?.string
            if jwk.algorithm == nil { jwk.algorithm = JWKAlgorithms.pinned(for: jwk) }
            guard let algorithm = jwk.algorithm else {
                throw AuthnError(
                    .keySourceUnavailable,
                    "key \(kid ?? "#\(index)") in \(origin) has no alg and key type \(jwk.keyType.rawValue), whose algorithm cannot be inferred: give the key an alg (ES256, RS256, PS256 …)")
            }
            // The collection needs a kid to store the key; a key without one gets a private name,
            // and is found only by algorithm (tokens without a kid), never by a token's kid.
            if kid == nil { jwk.keyIdentifier = JWKIdentifier(string: "rampart.unnamed.\(index)") }
            let collection = JWTKeyCollection()
            do {
                try await collection.add(jwk: jwk, isDefault: true)
            } catch {
                throw AuthnError(.keySourceUnavailable, "key \(kid ?? "#\(index)") in \(origin) is not a usable \(algorithm.rawValue) key: \(error)")
            }
            keys.append(Key(kid: kid, algorithm: algorithm.rawValue, collection: collection))
        }
        return JWKSKeySet(keys: keys)
    }

    /// The key with this `kid`, if there is one.
    public func key(kid: String) -> Key? {
        keys.first { $0.kid == kid }
    }

    /// The keys a token may be verified with: the one its `kid` names, or, when it names none,
    /// every key of the header's algorithm (as Envoy does).
    public func candidates(kid: String?, algorithm: String?) -> [Key] {
        if let kid { return keys.filter { $0.kid == kid } }
        return keys.filter { $0.algorithm == algorithm }
    }
}

extension JWKSKeySet.Key {
    /// Verifies the token's signature with this key alone and decodes its payload.
    func verify<Payload: JWTPayload>(_ token: String, as payload: Payload.Type) async throws -> Payload {
        try await collection.verify(token, as: Payload.self)
    }
}
