import AsyncHTTPClient
import Foundation
import RampartIdentity
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// Fetches documents over HTTP(S): JWKS documents and OIDC discovery documents.
public protocol HTTPFetcher: Sendable {
    /// GETs `url` and returns the body of a 200 answer; any other answer, or none within `timeout`, throws.
    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String
}

/// CA certificates trusted for fetching keys beyond the system's roots, as istiod's
/// `jwksResolverExtraRootCA` adds a private CA for key servers whose certificates it signs.
public struct ExtraRootCertificates: Sendable, Hashable {
    /// The PEM file they were read from, as messages name it.
    public let path: String
    /// The certificates, in file order.
    public let certificates: [NIOSSLCertificate]

    /// Reads every certificate of the PEM file at `path`; throws when the file cannot be read or
    /// holds no certificate.
    public init(path: String) throws(AuthnError) {
        let data: Data
        switch FileProblem.contents(path) {
        case .success(let bytes): data = bytes
        case .failure(let reason):
            throw AuthnError(.keySourceUnavailable, "extra root CA file \(path) \(reason): give the PEM file of the CA that signs the key servers' certificates")
        }
        guard String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            throw AuthnError(.keySourceUnavailable, "extra root CA file \(path) holds no certificate (no -----BEGIN CERTIFICATE----- block): give the PEM certificates of the CA, not its key")
        }
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(Array(data))
        } catch {
            throw AuthnError(.keySourceUnavailable, "extra root CA file \(path) has a certificate block that does not parse: give PEM certificates as openssl writes them")
        }
        self.path = path
        self.certificates = certificates
    }
}

/// The default fetcher, on an AsyncHTTPClient client shared by every fetcher of the same trust.
public struct AsyncHTTPClientFetcher: HTTPFetcher {
    /// The largest body accepted.
    public let maxBodyBytes: Int
    /// CA certificates trusted beside the system's roots for https key servers, if any.
    public let extraRoots: ExtraRootCertificates?

    /// Creates a fetcher that accepts bodies up to `maxBodyBytes` (8 MiB by default) and trusts
    /// `extraRoots` beside the system's roots.
    public init(maxBodyBytes: Int = 8 << 20, extraRoots: ExtraRootCertificates? = nil) {
        self.maxBodyBytes = maxBodyBytes
        self.extraRoots = extraRoots
    }

    /// The clients, one per trust, for the life of the process. They do not retry a failed
    /// connection until the deadline, as AsyncHTTPClient's shared client does: a refused
    /// connection or a certificate that does not verify fails the fetch at once, so a request
    /// waiting for keys is not held for the whole timeout.
    private static let clients = NIOLockedValueBox<[ExtraRootCertificates?: HTTPClient]>([:])

    private var client: HTTPClient {
        Self.clients.withLockedValue { clients in
            if let client = clients[extraRoots] { return client }
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool.retryConnectionEstablishment = false
            // As Go's client follows them for istiod: it stops at the tenth redirect, so at most
            // nine are followed; to http and https only.
            configuration.redirectConfiguration = .follow(max: 9, allowCycles: false)
            if let extraRoots {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.additionalTrustRoots = [.certificates(extraRoots.certificates)]
                configuration.tlsConfiguration = tls
            }
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[extraRoots] = client
            return client
        }
    }

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
            let response = try await client.execute(request, deadline: deadline)
            guard (200..<300).contains(response.status.code) else {
                throw AuthnError(.keySourceUnavailable, "\(url) answered HTTP \(response.status.code), expected a 2xx answer with the document")
            }
            do {
                // The deadline covers the body too, as istiod's does: a server that sends its
                // headers and then stalls must not hold the requests waiting for its keys.
                let limit = maxBodyBytes
                let body = try await Self.before(deadline) { try await response.body.collect(upTo: limit) }
                return String(buffer: body)
            } catch is NIOTooManyBytesError {
                throw AuthnError(.keySourceUnavailable, "\(url) answered a body larger than \(maxBodyBytes / (1 << 20)) MiB; a JWKS is far smaller, so check the URL")
            }
        } catch let error as AuthnError {
            throw error
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            throw AuthnError(.keySourceUnavailable, "\(url) did not answer within \(timeout) (the rule's timeout)")
        } catch let error as NIOSSLError where "\(error)".contains("CERTIFICATE_VERIFY_FAILED") {
            let trusted = extraRoots.map { "the system's trusted roots and those of \($0.path)" } ?? "the system's trusted roots"
            let hint = extraRoots == nil ? "; if a private CA signs it, pass that CA with --jwks-extra-root-ca" : ""
            throw AuthnError(.keySourceUnavailable, "\(url) cannot be fetched: the server's TLS certificate does not verify against \(trusted)\(hint)")
        } catch {
            throw AuthnError(.keySourceUnavailable, "\(url) cannot be fetched: \(ErrorText.describe(error))")
        }
    }

    /// The result of `work`, or `HTTPClientError.deadlineExceeded` once `deadline` passes first;
    /// `work` is then cancelled (a response body's reader ends the request when cancelled).
    private static func before<T: Sendable>(
        _ deadline: NIODeadline, _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                let left = deadline - .now()
                if left.nanoseconds > 0 { try await Task.sleep(nanoseconds: UInt64(left.nanoseconds)) }
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw HTTPClientError.deadlineExceeded
            }
            return value
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
