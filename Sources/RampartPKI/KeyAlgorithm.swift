import Crypto
import X509
import _CryptoExtras

/// The key algorithms Rampart generates and accepts.
public enum KeyAlgorithm: String, Sendable, CaseIterable, Codable {
    case ecP256 = "ec-p256"
    case ecP384 = "ec-p384"
    case rsa2048 = "rsa-2048"
    case rsa3072 = "rsa-3072"
    case rsa4096 = "rsa-4096"

    /// Generates a fresh private key of this algorithm.
    public func generate() throws -> Certificate.PrivateKey {
        switch self {
        case .ecP256: return Certificate.PrivateKey(P256.Signing.PrivateKey())
        case .ecP384: return Certificate.PrivateKey(P384.Signing.PrivateKey())
        case .rsa2048: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        case .rsa3072: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits3072))
        case .rsa4096: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits4096))
        }
    }

    /// Classifies a public key, or returns a reason it is not acceptable for a workload or CA.
    public static func classify(_ key: Certificate.PublicKey) -> Result<KeyAlgorithm, PKIError> {
        if P256.Signing.PublicKey(key) != nil { return .success(.ecP256) }
        if P384.Signing.PublicKey(key) != nil { return .success(.ecP384) }
        if let rsa = _RSA.Signing.PublicKey(key) {
            switch rsa.keySizeInBits {
            case 2048: return .success(.rsa2048)
            case 3072: return .success(.rsa3072)
            case 4096: return .success(.rsa4096)
            case let bits where bits > 2048: return .success(.rsa4096)
            default:
                return .failure(
                    PKIError(.unsupportedKey, "RSA key of \(rsa.keySizeInBits) bits is too small: use RSA of at least 2048 bits, or EC P-256")
                )
            }
        }
        if P521.Signing.PublicKey(key) != nil {
            return .failure(PKIError(.unsupportedKey, "EC P-521 keys are not accepted: use EC P-256 (the default), P-384, or RSA of at least 2048 bits"))
        }
        // The key's description names its type, e.g. `Ed25519.PublicKey`.
        let type = String(describing: key).replacingOccurrences(of: ".PublicKey", with: "")
        return .failure(PKIError(.unsupportedKey, "\(type) keys are not accepted: use EC P-256 (the default), P-384, or RSA of at least 2048 bits"))
    }

    /// Whether keys of this algorithm are RSA keys.
    public var isRSA: Bool {
        switch self {
        case .rsa2048, .rsa3072, .rsa4096: return true
        case .ecP256, .ecP384: return false
        }
    }
}

extension Certificate.PrivateKey {
    /// The signature algorithm Rampart signs with for this issuer key.
    var rampartSignatureAlgorithm: Certificate.SignatureAlgorithm {
        switch KeyAlgorithm.classify(publicKey) {
        case .success(.ecP384): return .ecdsaWithSHA384
        case .success(let algorithm) where algorithm.isRSA: return .sha256WithRSAEncryption
        default: return .ecdsaWithSHA256
        }
    }
}
