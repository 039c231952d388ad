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

/// The upstream's response body went past `--max-body-bytes` while the proxy held it. The proxy
/// answers 500 with Envoy's `response_payload_too_large`, as Envoy answers a response its buffer
/// limit cannot hold.
public struct ResponseTooLarge: Error, CustomStringConvertible {
    /// The limit on held bodies, in bytes.
    public let limit: Int

    public var description: String {
        "the upstream's response body is larger than the \(limit) bytes the proxy holds (--max-body-bytes)"
    }
}

/// How a failed upstream exchange is answered and logged, as Envoy answers it: 504 `UT` for a
/// timeout, 504 `SI` for an upstream silent past the stream idle timeout, 500 for a response
/// past the limit on held bodies, 503 `UF` for a connection that failed or was reset before the
/// response.
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
        } else if error is ResponseTooLarge {
            status = .internalServerError
            flags = "-"
            details = "response_payload_too_large"
            body = "response payload too large" + (showError ? ": \(error)\n" : "\n")
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
