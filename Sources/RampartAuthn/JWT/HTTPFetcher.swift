import AsyncHTTPClient
import Foundation
import NIOCore

/// Fetches documents over HTTP(S): JWKS documents and OIDC discovery documents.
public protocol HTTPFetcher: Sendable {
    /// GETs `url` and returns the body of a 200 answer; any other answer, or none within `timeout`, throws.
    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String
}

/// The default fetcher, on an AsyncHTTPClient client of its own.
public struct AsyncHTTPClientFetcher: HTTPFetcher {
    /// The largest body accepted.
    public let maxBodyBytes: Int

    /// Creates a fetcher that accepts bodies up to `maxBodyBytes` (8 MiB by default).
    public init(maxBodyBytes: Int = 8 << 20) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// The client every fetcher shares, for the life of the process. It does not retry a failed
    /// connection until the deadline, as AsyncHTTPClient's shared client does: a refused
    /// connection or a certificate that does not verify fails the fetch at once, so a request
    /// waiting for keys is not held for the whole timeout.
    private static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        // As Go's client follows them for istiod: up to 10 redirects, to http and https only.
        configuration.redirectConfiguration = .follow(max: 10, allowCycles: false)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// GETs `url` within `timeout` and returns the body of a 2xx answer (redirects are followed).
    public func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        // Keys come over HTTP or HTTPS only, as istiod fetches them: a discovery document cannot
        // point rampart at a local socket (`http+unix://`) or a file.
        let scheme = url.prefix { $0 != ":" }.lowercased()
        guard url.contains("://"), scheme == "http" || scheme == "https" else {
            throw AuthnError(
                .keySourceUnavailable,
                "\(url) is not an http:// or https:// URL; JWKS and discovery documents are fetched over HTTP(S) only")
        }
        let deadline = NIODeadline.now() + TimeAmount.nanoseconds(Self.nanoseconds(timeout))
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "accept", value: "application/json")
            let response = try await Self.client.execute(request, deadline: deadline)
            guard (200..<300).contains(response.status.code) else {
                throw AuthnError(.keySourceUnavailable, "\(url) answered HTTP \(response.status.code), expected a 2xx answer with the document")
            }
            do {
                let body = try await response.body.collect(upTo: maxBodyBytes)
                return String(buffer: body)
            } catch is NIOTooManyBytesError {
                throw AuthnError(.keySourceUnavailable, "\(url) answered a body larger than \(maxBodyBytes / (1 << 20)) MiB; a JWKS is far smaller, so check the URL")
            }
        } catch let error as AuthnError {
            throw error
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            throw AuthnError(.keySourceUnavailable, "\(url) did not answer within \(timeout) (the rule's timeout)")
        } catch {
            throw AuthnError(.keySourceUnavailable, "\(url) cannot be fetched: \(ErrorText.describe(error))")
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
