import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2

/// The upstream did not finish its response within the request's timeout. The proxy answers
/// 504 with Envoy's `UT` response flag (a gRPC call: `DEADLINE_EXCEEDED`, as Envoy answers it).
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
/// past the limit on held bodies, 408 `SI` for a client that stopped sending its upload, `DC` for one
/// that went away during it, and for a reset before the response (see `Reset`) 503 `UF`
/// when no connection could be made, 503 `UC` when the upstream closed or reset it, and 502 `UPE`
/// when its response broke the protocol; the body and the details name the reset reason.
struct UpstreamFailure {
    let status: HTTPResponseStatus
    let flags: String
    let details: String
    let body: String
    /// The exchange ended because its client went away in the middle of an upload.
    var clientGone = false

    /// `showError` adds the error to the body: the outbound side tells its own application what
    /// failed; the inbound side does not tell a remote client about the application behind it.
    init(_ error: any Error, showError: Bool) {
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
        } else if error is StreamedUpload.Stalled {
            // As the stream idle timer answers a request whose client stopped sending it.
            status = .requestTimeout
            flags = "SI"
            details = RequestRecord.streamIdleTimeout
            body = "stream timeout"
        } else if error is StreamedUpload.ClientGone {
            status = .serviceUnavailable
            flags = "DC"
            details = "downstream_remote_disconnect"
            body = ""
            clientGone = true
        } else if error is UpstreamIdleTimeout {
            status = .gatewayTimeout
            flags = "SI"
            details = "stream_idle_timeout"
            body = "stream timeout\n"
        } else {
            let reset = Reset(error)
            status = reset == .protocolError ? .badGateway : .serviceUnavailable
            flags = reset.flag
            details = "upstream_reset_before_response_started{\(reset.rawValue)}"
            body =
                "upstream connect error or disconnect/reset before headers. reset reason: \(reset.text)"
                + (showError ? " (\(error))\n" : "\n")
        }
    }

    /// Why an exchange ended before its response, in Envoy's words.
    enum Reset: String {
        /// No connection could be made (refused, unreachable, TLS handshake failed): `UF`.
        case connectionFailure = "connection_failure"
        /// The upstream closed or reset the connection before its response ended: `UC`.
        case connectionTermination = "connection_termination"
        /// The upstream's response was not valid HTTP (a malformed head, conflicting lengths, a
        /// broken HTTP/2 frame): `UPE`.
        case protocolError = "protocol_error"

        init(_ error: any Error) {
            switch error {
            case is UpstreamClosed, is UpstreamClosedMidResponse:
                self = .connectionTermination
            case let error as HTTPParserError where error == .invalidEOFState:
                // The connection ended inside a response: a close, not bytes that broke HTTP.
                self = .connectionTermination
            case is HTTPParserError, is any NIOHTTP2Error:
                self = .protocolError
            case let error as ProxyError where error.code == .upstreamConnect:
                self = .connectionFailure
            case let error as ChannelError where error == .eof || error == .ioOnClosedChannel || error == .alreadyClosed:
                self = .connectionTermination
            case let error as IOError where [ECONNRESET, EPIPE].contains(error.errnoCode):
                self = .connectionTermination
            default:
                self = .connectionFailure
            }
        }

        var flag: String {
            switch self {
            case .connectionFailure: "UF"
            case .connectionTermination: "UC"
            case .protocolError: "UPE"
            }
        }

        var text: String { rawValue.replacingOccurrences(of: "_", with: " ") }
    }

    /// Records the failure and makes the local response.
    func answer(_ record: inout RequestRecord) -> BufferedResponse {
        record.responseFlags = flags
        record.responseDetails = details
        if clientGone { record.downstreamDisconnected = true }
        var response = BufferedResponse.local(status, body)
        if flags == "UT" { response.grpcStatus = 4 }  // DEADLINE_EXCEEDED
        return response
    }
}

/// The upstream closed the connection before sending any of its response.
struct UpstreamClosed: Error, CustomStringConvertible {
    var description: String { "the upstream closed the connection before answering" }
}

/// The upstream closed the connection after it began its response and before it ended it.
struct UpstreamClosedMidResponse: Error, CustomStringConvertible {
    var description: String { "the upstream closed the connection in the middle of its response" }
}
