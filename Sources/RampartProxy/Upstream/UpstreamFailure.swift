import NIOHTTP1

/// The upstream did not finish its response within the request's timeout. The proxy answers
/// 504 with Envoy's `UT` response flag.
public struct UpstreamTimeout: Error, CustomStringConvertible {
    /// The timeout that passed.
    public let milliseconds: Int64

    public var description: String { "the upstream did not answer within \(milliseconds) ms" }
}

/// The upstream sent nothing for the stream idle timeout while its response was awaited (Envoy's
/// `stream_idle_timeout`, 5 minutes). The proxy answers 504 with Envoy's `SI` response flag.
public struct UpstreamIdleTimeout: Error, CustomStringConvertible {
    /// The idle time that passed.
    public let milliseconds: Int64

    public var description: String { "the upstream sent nothing for \(milliseconds) ms" }
}

/// How a failed upstream exchange is answered and logged, as Envoy answers it: 504 `UT` for a
/// timeout, 504 `SI` for an upstream silent past the stream idle timeout, 503 `UF` for a
/// connection that failed or was reset before the response.
struct UpstreamFailure {
    let status: HTTPResponseStatus
    let flags: String
    let details: String
    let body: String

    /// `showError` adds the error to the body: the outbound side tells its own application what
    /// failed; the inbound side does not tell a remote client about the application behind it.
    init(_ error: any Error, resetDetails: String, showError: Bool) {
        if error is UpstreamTimeout {
            status = .gatewayTimeout
            flags = "UT"
            details = "upstream_response_timeout"
            body = "upstream request timeout\n"
        } else if let tooLarge = error as? RelayBodyTooLarge {
            status = .payloadTooLarge
            flags = "-"
            details = "request_payload_too_large"
            body = "\(tooLarge.description)\n"
        } else if error is UpstreamIdleTimeout {
            status = .gatewayTimeout
            flags = "SI"
            details = "stream_idle_timeout"
            body = "stream timeout\n"
        } else {
            status = .serviceUnavailable
            flags = "UF"
            details = resetDetails
            body = "upstream connect error or disconnect/reset before headers" + (showError ? ": \(error)\n" : "\n")
        }
    }

    /// Records the failure and makes the local response.
    func answer(_ record: inout RequestRecord) -> BufferedResponse {
        record.responseFlags = flags
        record.responseDetails = details
        return .local(status, body)
    }
}

/// The upstream closed the connection before sending any of its response.
struct UpstreamClosed: Error, CustomStringConvertible {
    var description: String { "the upstream closed the connection before answering" }
}
