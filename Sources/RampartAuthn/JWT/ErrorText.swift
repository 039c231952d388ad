import Crypto
import Foundation
import JWTKit
import NIOCore

/// Errors from the JWT, crypto and network libraries as people read them: the library's own reason,
/// or the system's message for a system error, without the type names and codes their descriptions
/// carry.
enum ErrorText {
    static func describe(_ error: any Error) -> String {
        if let jwt = error as? JWTError {
            if let reason = jwt.reason { return reason }
            if let underlying = jwt.underlying { return describe(underlying) }
            return "\(jwt.errorType)"
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if error is CryptoKitError {
            return "the key material is not valid for its algorithm"
        }
        return String(describing: error)
    }
}
