import Crypto
import JWTKit

/// Errors from the JWT and crypto libraries as people read them: the library's own reason, without
/// the type names and codes their descriptions carry.
enum ErrorText {
    static func describe(_ error: any Error) -> String {
        if let jwt = error as? JWTError {
            if let reason = jwt.reason { return reason }
            if let underlying = jwt.underlying { return describe(underlying) }
            return "\(jwt.errorType)"
        }
        if error is CryptoKitError {
            return "the key material is not valid for its algorithm"
        }
        return String(describing: error)
    }
}
