import Crypto
import Foundation
import JWTKit
import AsyncHTTPClient
import NIOCore
import NIOSSL

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
        // TLS failures: the library's description carries source paths; say what happened.
        if let tls = error as? NIOSSLError {
            let text = "\(tls)"
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                return "the server's TLS certificate does not verify against the system's trusted roots"
            }
            return "the TLS handshake failed"
        }
        if let client = error as? HTTPClientError {
            if client == .redirectLimitReached { return "it redirects 10 times or more, where istiod's HTTP client stops" }
            if client == .redirectCycleDetected { return "its redirects go round in a cycle" }
            if client == .emptyScheme { return "the URL has no http or https scheme" }
            if client == .emptyHost { return "the URL has no host" }
            if client == .invalidURL { return "the URL does not parse" }
        }
        if error is CryptoKitError {
            return "the key material is not valid for its algorithm"
        }
        return String(describing: error)
    }
}
