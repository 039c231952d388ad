import GRPCCore

/// A failed call to a Rampart server, in words: what went wrong at which address and what to
/// check, without the transport's type names, error codes and source paths.
public enum RPCFailureText {
    /// Describes `error` from a call to `server` (`host:port`), whose certificate `rootHint` (the
    /// option and file that gave the trusted root) should have verified.
    public static func describe(_ error: RPCError, server: String, rootHint: String) -> String {
        let details = error.message + " " + (error.cause.map { String(describing: $0) } ?? "")
        if details.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server at \(server) presented a certificate that does not chain to \(rootHint): check that it is the CA's gRPC port and that the root is the CA's root-cert.pem"
        }
        if details.contains("failedToLoadPrivateKey") {
            return "the client key cannot be loaded, or is not the key of the client certificate: give the key that belongs to the certificate chain"
        }
        if details.contains("failedToLoadCertificate") || details.contains("Couldn't create SSL context") {
            return "the TLS settings cannot be loaded (a certificate or key file that is not PEM, or empty): check the files given"
        }
        if details.contains("Connection refused") {
            return "nothing accepts connections at \(server) (connection refused): is 'rampart ca serve' running there?"
        }
        if details.contains("accepted the TCP connection but closed") || details.contains("HTTP/2 connection preface") {
            return "the server at \(server) accepted the connection but did not answer as a gRPC server over TLS: is it the CA's gRPC port (15012 by default) rather than its admin port?"
        }
        if details.contains("timed out") || error.code == .deadlineExceeded {
            return "the server at \(server) did not answer in time: check the address and that nothing drops the traffic"
        }
        if details.contains("unreachable") || details.contains("No route to host") {
            return "\(server) cannot be reached from here (no route to it): check the address"
        }
        if details.contains("UnknownHost") || details.contains("Name or service not known") {
            return "the host of \(server) cannot be resolved: check the name, or give an IP address"
        }
        if error.code == .unavailable {
            return "the server at \(server) is unavailable: \(error.message)"
        }
        return "the server at \(server) refused the call (\(error.code)): \(error.message)"
    }
}
