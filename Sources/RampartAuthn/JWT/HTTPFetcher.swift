import AsyncHTTPClient
import Foundation
import NIOCore

/// Fetches documents over HTTP(S): JWKS documents and OIDC discovery documents.
public protocol HTTPFetcher: Sendable {
    /// GETs `url` and returns the body of a 200 answer; any other answer, or none within `timeout`, throws.
    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String
}

/// The default fetcher, on AsyncHTTPClient's shared client.
public struct AsyncHTTPClientFetcher: HTTPFetcher {
    /// The largest body accepted.
    public let maxBodyBytes: Int

    /// Creates a fetcher that accepts bodies up to `maxBodyBytes`.
    public init(maxBodyBytes: Int = 1 << 20) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// GETs `url` within `timeout` and returns the body of a 200 answer.
    public func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        let deadline = NIODeadline.now() + TimeAmount.nanoseconds(Self.nanoseconds(timeout))
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "accept", value: "application/json")
            let response = try await HTTPClient.shared.execute(request, deadline: deadline)
            guard response.status == .ok else {
                throw AuthnError(.keySourceUnavailable, "\(url) answered HTTP \(response.status.code), expected 200")
            }
            let body = try await response.body.collect(upTo: maxBodyBytes)
            return String(buffer: body)
        } catch let error as AuthnError {
            throw error
        } catch {
            throw AuthnError(.keySourceUnavailable, "\(url) cannot be fetched within \(timeout): \(ErrorText.describe(error))")
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
