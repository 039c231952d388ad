import Foundation
import NIOSSL

/// A TLS failure in a few words, as Envoy words its transport failures (`TLS error: ...
/// WRONG_VERSION_NUMBER`): BoringSSL's reason codes, without the error's Swift form or the source
/// file of the library that raised it.
enum TLSFailureText {
    static func describe(_ error: any Error) -> String {
        switch error {
        case NIOSSLError.handshakeFailed(let failure), NIOSSLError.shutdownFailed(let failure):
            return "TLS error: " + reasons(failure)
        case let failure as BoringSSLError:
            return "TLS error: " + reasons(failure)
        default:
            return "\(error)"
        }
    }

    private static func reasons(_ failure: BoringSSLError) -> String {
        switch failure {
        case .sslError(let errors), .unknownError(let errors):
            let found = errors.map { reason(of: "\($0)") }.filter { !$0.isEmpty }
            return found.isEmpty ? "the handshake failed" : found.joined(separator: ", ")
        default:
            return "\(failure)"
        }
    }

    /// `WRONG_VERSION_NUMBER` from `Error: 268435703 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at /path/tls_record.cc:127`.
    static func reason(of text: String) -> String {
        let withoutPlace = text.range(of: " at /").map { String(text[..<$0.lowerBound]) } ?? text
        return withoutPlace.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? withoutPlace
    }
}
