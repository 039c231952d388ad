import Foundation
import JWTKit

/// A JWKS document loaded into jwt-kit, one single-key collection per key and algorithm.
///
/// jwt-kit falls back to the first key of a collection when a token names an unknown `kid`, so a
/// collection holds exactly one key here and callers choose the key by `kid` themselves
/// (``candidates(kid:algorithm:)``). As in Envoy's JWT verifier:
/// - a key without `alg` (optional in RFC 7517) verifies the algorithms its type allows: an RSA
///   key RS256/384/512 and PS256/384/512, an EC key the ES algorithm of its curve (P-256 when it
///   names no curve), an Ed25519 key EdDSA;
/// - each key is read on its own: one the verifier cannot use (an unknown `kty`, a damaged
///   modulus) is left out, and the set fails only when none of its keys is usable.
public struct JWKSKeySet: Sendable {
    /// One key of the set, for one algorithm.
    public struct Key: Sendable {
        /// The key's `kid`, if the document gives one.
        public let kid: String?
        /// The algorithm this entry verifies (`ES256`, `RS256`, `PS256` …).
        public let algorithm: String
        /// A collection holding only this key, as its default.
        let collection: JWTKeyCollection
    }

    /// The keys, in document order (a key without `alg` once per algorithm it verifies).
    public let keys: [Key]
    /// Why keys of the document were left out, one line each.
    public let skipped: [String]

    /// The `kid`s of the keys that have one.
    public var kids: Set<String> { Set(keys.compactMap(\.kid)) }

    /// Parses a JWKS document; `origin` names it in errors (for example "the JWKS of ISS from URL").
    public static func load(json: String, origin: String) async throws(AuthnError) -> JWKSKeySet {
        if let certificates = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String],
            !certificates.isEmpty, certificates.values.allSatisfy({ $0.contains("-----BEGIN CERTIFICATE-----") })
        {
            return try await load(certificates: certificates, origin: origin)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let list = object["keys"] as? [Any]
        else {
            throw AuthnError(.keySourceUnavailable, "\(origin) does not parse as a JWKS document {\"keys\": [...]}")
        }
        var keys: [Key] = []
        var skipped: [String] = []
        for (index, element) in list.enumerated() {
            // An entry that is not a JSON object (a string, a number, null) is skipped, as Envoy
            // skips it, and the set's other keys still count.
            guard element is [String: Any] else {
                skipped.append("entry #\(index) of keys is \(Self.jsonTypeName(element)), not a JWK object")
                continue
            }
            let name = ((element as? [String: Any])?["kid"] as? String) ?? "#\(index)"
            if let members = element as? [String: Any], members["kty"] as? String == "oct" {
                switch await symmetricKeys(members, index: index) {
                case .success(let found): keys += found
                case .failure(let problem): skipped.append("key \(name) (kty oct) \(problem.text)")
                }
                continue
            }
            // An RSA key whose public exponent is not 3 or 65537 is dropped, as Envoy drops it.
            if let members = element as? [String: Any], members["kty"] as? String == "RSA",
                let exponent = (members["e"] as? String).flatMap(Base64URL.decode).map(Array.init),
                Array(exponent.drop { $0 == 0 }) != [3] && Array(exponent.drop { $0 == 0 }) != [1, 0, 1]
            {
                skipped.append("key \(name) (kty RSA) has a public exponent other than 3 or 65537")
                continue
            }
            let members = Self.withDefaultCurve(Self.withoutMistypedNames(element))
            guard JSONSerialization.isValidJSONObject(members), let data = try? JSONSerialization.data(withJSONObject: members),
                let jwk = try? JSONDecoder().decode(JWK.self, from: data)
            else {
                let type = ((element as? [String: Any])?["kty"] as? String) ?? "none"
                skipped.append("key \(name) (kty \(type)) is not an EC, RSA, OKP or oct JWK Rampart can read")
                continue
            }
            let kid = jwk.keyIdentifier?.string
            // A key whose alg its type cannot verify (an RSA key marked ES256) is left out, as
            // Envoy leaves it out when it reads the set.
            let verifiable = JWKAlgorithms.accepted(for: jwk)
            if let declared = jwk.algorithm, !verifiable.isEmpty, !verifiable.contains(declared) {
                let type = ((element as? [String: Any])?["kty"] as? String) ?? jwk.keyType.rawValue
                skipped.append(
                    "key \(name) (kty \(type)) declares alg \(declared.rawValue), which such a key cannot verify (it verifies \(verifiable.map(\.rawValue).joined(separator: ", ")))")
                continue
            }
            let algorithms = jwk.algorithm.map { [$0] } ?? verifiable
            guard !algorithms.isEmpty else {
                skipped.append("key \(name) has no alg and key type \(jwk.keyType.rawValue), whose algorithm cannot be inferred")
                continue
            }
            for algorithm in algorithms {
                var pinned = jwk
                pinned.algorithm = algorithm
                // The collection needs a kid to store the key; a key without one gets a private name.
                if kid == nil { pinned.keyIdentifier = JWKIdentifier(string: "rampart.unnamed.\(index)") }
                let collection = JWTKeyCollection()
                do {
                    try await collection.add(jwk: pinned, isDefault: true)
                } catch {
                    if let bits = Self.rsaModulusBits(element), bits < 2048 {
                        // jwt-kit verifies with RSA keys of 2048 bits or more; Envoy takes shorter ones.
                        skipped.append(
                            "key \(name) is an RSA key of \(bits) bits; Rampart verifies RSA signatures only with keys of 2048 bits or more: ask the issuer to sign with a longer key")
                    } else {
                        skipped.append("key \(name) is not a usable \(algorithm.rawValue) key: \(ErrorText.describe(error))")
                    }
                    break
                }
                keys.append(Key(kid: kid, algorithm: algorithm.rawValue, collection: collection))
            }
        }
        if keys.isEmpty && !list.isEmpty {
            throw AuthnError(
                .keySourceUnavailable,
                "\(origin) has no usable key: \(skipped.joined(separator: "; ")): publish EC (P-256, P-384, P-521), RSA, Ed25519 or oct (HMAC) keys")
        }
        return JWKSKeySet(keys: keys, skipped: skipped)
    }

    /// The keys of the X.509 form some issuers publish (Google's and Firebase's among them), read as
    /// Envoy reads it: an object mapping each `kid` to a PEM certificate whose RSA key, having no
    /// `alg`, verifies what any RSA key without one verifies: RS256/384/512 and PS256/384/512.
    private static func load(certificates: [String: String], origin: String) async throws(AuthnError) -> JWKSKeySet {
        var keys: [Key] = []
        var skipped: [String] = []
        for (kid, pem) in certificates.sorted(by: { $0.key < $1.key }) {
            guard let key = try? Insecure.RSA.PublicKey(certificatePEM: pem) else {
                skipped.append("certificate \(kid) does not hold an RSA key Rampart can read")
                continue
            }
            let digests: [(DigestAlgorithm, String)] = [(.sha256, "256"), (.sha384, "384"), (.sha512, "512")]
            for (digest, bits) in digests {
                let pkcs1 = JWTKeyCollection()
                await pkcs1.add(rsa: key, digestAlgorithm: digest, kid: JWKIdentifier(string: kid))
                keys.append(Key(kid: kid, algorithm: "RS" + bits, collection: pkcs1))
            }
            for (digest, bits) in digests {
                let pss = JWTKeyCollection()
                await pss.add(pss: key, digestAlgorithm: digest, kid: JWKIdentifier(string: kid))
                keys.append(Key(kid: kid, algorithm: "PS" + bits, collection: pss))
            }
        }
        if keys.isEmpty {
            throw AuthnError(.keySourceUnavailable, "\(origin) has no usable key: \(skipped.joined(separator: "; "))")
        }
        return JWKSKeySet(keys: keys, skipped: skipped)
    }

    /// The entries of a symmetric (`oct`) key: HS256, HS384 and HS512, or the one its `alg` names.
    private static func symmetricKeys(_ members: [String: Any], index: Int) async -> Result<[Key], KeyProblem> {
        guard let encoded = members["k"] as? String, let secret = Base64URL.decode(encoded).map(Array.init), !secret.isEmpty else {
            return .failure(KeyProblem("has no base64url k member"))
        }
        let all: [(String, DigestAlgorithm, Int)] = [("HS256", .sha256, 32), ("HS384", .sha384, 48), ("HS512", .sha512, 64)]
        let named = members["alg"] as? String
        let algorithms = named.map { alg in all.filter { $0.0 == alg } } ?? all
        guard !algorithms.isEmpty else {
            return .failure(KeyProblem("names alg \(named ?? ""), which is not HS256, HS384 or HS512"))
        }
        let kid = members["kid"] as? String
        var keys: [Key] = []
        for (algorithm, digest, length) in algorithms {
            // jwt-kit asks for a secret at least as long as the hash (RFC 7518 §3.2); Envoy takes
            // shorter ones. HMAC pads a key shorter than its block with zero bytes, and the hash
            // length is within the block, so the secret padded to that length signs alike.
            let key = secret.count >= length ? secret : secret + [UInt8](repeating: 0, count: length - secret.count)
            let collection = JWTKeyCollection()
            await collection.add(
                hmac: HMACKey(from: key), digestAlgorithm: digest,
                kid: JWKIdentifier(string: kid ?? "rampart.unnamed.\(index)"))
            keys.append(Key(kid: kid, algorithm: algorithm, collection: collection))
        }
        return .success(keys)
    }

    /// The length in bits of an RSA key's modulus, if the entry is an RSA key whose `n` decodes.
    private static func rsaModulusBits(_ element: Any) -> Int? {
        guard let members = element as? [String: Any], members["kty"] as? String == "RSA",
            let modulus = (members["n"] as? String).flatMap(Base64URL.decode).map(Array.init)
        else { return nil }
        let significant = modulus.drop { $0 == 0 }
        guard let first = significant.first else { return 0 }
        return (significant.count - 1) * 8 + (8 - first.leadingZeroBitCount)
    }

    /// What a JSON value is, for messages.
    private static func jsonTypeName(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "a list"
        case is NSNumber: return "a number or boolean"
        default: return "not an object"
        }
    }

    /// A `kid` or `alg` that is not a string counts as absent, as Envoy's JWKS reader ignores it.
    private static func withoutMistypedNames(_ element: Any) -> Any {
        guard var members = element as? [String: Any] else { return element }
        for name in ["kid", "alg"] where members[name] != nil && !(members[name] is String) {
            members[name] = nil
        }
        return members
    }

    /// An EC key without `crv` gets the curve of its `alg`, or P-256 when it names none, as
    /// Envoy's JWKS reader assumes.
    private static func withDefaultCurve(_ element: Any) -> Any {
        guard var members = element as? [String: Any], members["kty"] as? String == "EC", members["crv"] == nil else {
            return element
        }
        switch members["alg"] as? String {
        case "ES384": members["crv"] = "P-384"
        case "ES512": members["crv"] = "P-521"
        default: members["crv"] = "P-256"
        }
        return members
    }

    private struct KeyProblem: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    /// The entry of the key with this `kid` for the token's algorithm (the key's only entry when
    /// it names its `alg`).
    public func key(kid: String, algorithm: String?) -> Key? {
        let named = keys.filter { $0.kid == kid }
        return named.first { $0.algorithm == algorithm } ?? named.first
    }

    /// The keys a token may be verified with, as Envoy chooses them: when the token names a `kid`,
    /// the keys with that `kid` and the keys without one; when it names none (or an empty one),
    /// every key. A key whose `kid` is empty counts as one without. The caller then keeps those
    /// whose algorithm is the token's.
    public func candidates(kid: String?, algorithm: String?) -> [Key] {
        guard let kid, !kid.isEmpty else { return keys }
        return keys.filter { ($0.kid ?? "").isEmpty || $0.kid == kid }
    }
}

extension JWKSKeySet {
    /// The algorithms some of `keys` verify, for messages: `ES256, RS256`.
    static func algorithmNames(of keys: [Key]) -> String {
        Set(keys.map(\.algorithm)).sorted().joined(separator: ", ")
    }
}

extension JWKSKeySet.Key {
    /// Verifies the token's signature with this key alone and decodes its payload.
    func verify<Payload: JWTPayload>(_ token: String, as payload: Payload.Type) async throws -> Payload {
        try await collection.verify(token, as: Payload.self)
    }
}
