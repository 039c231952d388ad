import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import RampartAPI
import SwiftASN1
import X509

/// How the agent proves who it is to the CA.
public enum CallerCredential: Sendable {
    /// A bootstrap token or JWT, sent as `authorization: Bearer`.
    case bearer(String)
    /// The current X.509-SVID, presented over mTLS.
    case certificate(X509SVID)
}

/// The trust bundle as the CA publishes it.
public struct PublishedBundle: Sendable, Equatable {
    /// The trust domain name.
    public var trustDomain: String
    /// Every root, PEM.
    public var rootsPEM: [String]
    /// The JWT-SVID keys, a SPIFFE bundle JWKS document.
    public var jwtAuthorities: Data

    public init(trustDomain: String, rootsPEM: [String], jwtAuthorities: Data) {
        self.trustDomain = trustDomain
        self.rootsPEM = rootsPEM
        self.jwtAuthorities = jwtAuthorities
    }
}

/// What one issuance returned.
public struct IssuanceResult: Sendable {
    /// The chain, leaf first, root last, as the CA sent it.
    public var chainPEM: [String]
    /// The bundle fetched in the same session, when the CA offered it.
    public var bundle: PublishedBundle?

    public init(chainPEM: [String], bundle: PublishedBundle?) {
        self.chainPEM = chainPEM
        self.bundle = bundle
    }
}

/// The CA as the agent uses it. The production implementation speaks gRPC over TLS; tests can
/// put an in-process CA behind it.
public protocol IdentityProvider: Sendable {
    /// Sends a CSR and returns the signed chain, plus the current bundle.
    func issue(csrPEM: String, ttlSeconds: Int64, credential: CallerCredential, trust: [Certificate]) async throws -> IssuanceResult
    /// Fetches the current trust bundle.
    func trustBundle(trust: [Certificate], svid: X509SVID?) async throws -> PublishedBundle
    /// Asks for a JWT-SVID for the identity of `svid`.
    func mintJWTSVID(audience: [String], ttlSeconds: Int64, svid: X509SVID, trust: [Certificate]) async throws -> (token: String, expiresAt: Date)
}

/// The CA's gRPC API over TLS: Istio's `CreateCertificate` and Rampart's trust bundle and
/// JWT-SVID service. Each operation opens its own connection, because the client certificate
/// changes with every renewal.
public struct GRPCIdentityProvider: IdentityProvider {
    /// The CA's host and port.
    public let host: String
    public let port: Int
    /// How long one call may take.
    public let timeout: Duration

    public init(host: String, port: Int, timeout: Duration = .seconds(10)) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    public func issue(csrPEM: String, ttlSeconds: Int64, credential: CallerCredential, trust: [Certificate]) async throws -> IssuanceResult {
        try await withClient(trust: trust, svid: credential.svid) { client in
            var request = Istio_V1_Auth_IstioCertificateRequest()
            request.csr = csrPEM
            request.validityDuration = ttlSeconds
            var metadata: Metadata = [:]
            if case .bearer(let token) = credential { metadata.addString("Bearer \(token)", forKey: "authorization") }
            let chain = try await Istio_V1_Auth_IstioCertificateService.Client(wrapping: client)
                .createCertificate(request, metadata: metadata, options: options)
                .certChain
            // The bundle is fetched on the same connection; an older CA without the service still issues.
            let bundle = try? await Rampart_Ca_V1_WorkloadIdentityService.Client(wrapping: client)
                .getTrustBundle(Rampart_Ca_V1_GetTrustBundleRequest(), options: options)
            return IssuanceResult(
                chainPEM: chain,
                bundle: bundle.map { PublishedBundle(trustDomain: $0.trustDomain, rootsPEM: $0.x509Authorities, jwtAuthorities: $0.jwtAuthorities) }
            )
        }
    }

    public func trustBundle(trust: [Certificate], svid: X509SVID?) async throws -> PublishedBundle {
        try await withClient(trust: trust, svid: svid) { client in
            let bundle = try await Rampart_Ca_V1_WorkloadIdentityService.Client(wrapping: client)
                .getTrustBundle(Rampart_Ca_V1_GetTrustBundleRequest(), options: options)
            return PublishedBundle(trustDomain: bundle.trustDomain, rootsPEM: bundle.x509Authorities, jwtAuthorities: bundle.jwtAuthorities)
        }
    }

    public func mintJWTSVID(audience: [String], ttlSeconds: Int64, svid: X509SVID, trust: [Certificate]) async throws -> (token: String, expiresAt: Date) {
        try await withClient(trust: trust, svid: svid) { client in
            var request = Rampart_Ca_V1_MintJWTSVIDRequest()
            request.audience = audience
            request.ttlSeconds = ttlSeconds
            let response = try await Rampart_Ca_V1_WorkloadIdentityService.Client(wrapping: client).mintJWTSVID(request, options: options)
            return (response.token, Date(timeIntervalSince1970: TimeInterval(response.expiresAt)))
        }
    }

    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        return options
    }

    private func withClient<Result: Sendable>(
        trust: [Certificate], svid: X509SVID?, _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
    ) async throws -> Result {
        let roots: [TLSConfig.CertificateSource] = trust.map { certificate in
            var serializer = DER.Serializer()
            try? serializer.serialize(certificate)
            return .bytes(serializer.serializedBytes, format: .der)
        }
        let chain = svid.map { $0.chainPEM }
        let key = svid.map { $0.key.pkcs8PEM }
        let security = HTTP2ClientTransport.Posix.TransportSecurity.tls { config in
            config.trustRoots = .certificates(roots)
            config.serverCertificateVerification = .fullVerification
            if let chain, let key {
                config.certificateChain = [.bytes(Array(chain.utf8), format: .pem)]
                config.privateKey = .bytes(Array(key.utf8), format: .pem)
            }
        }
        let target: any ResolvableTarget
        if host.contains(":") {
            target = .ipv6(address: host, port: port)
        } else if host.split(separator: ".").count == 4, host.split(separator: ".").allSatisfy({ UInt8($0) != nil }) {
            target = .ipv4(address: host, port: port)
        } else {
            target = .dns(host: host, port: port)
        }
        do {
            let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security)
            return try await withGRPCClient(transport: transport) { client in try await body(client) }
        } catch let error as RPCError {
            let refusesCredential = error.code == .permissionDenied || error.code == .unauthenticated
            throw AgentError(refusesCredential ? .credentialRefused : .caFailure, describe(error))
        } catch let error as AgentError {
            throw error
        } catch {
            throw AgentError(.caFailure, "the CA at \(host):\(port) could not be reached: \(error)")
        }
    }

    private func describe(_ error: RPCError) -> String {
        let server = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        switch error.code {
        case .unavailable, .deadlineExceeded:
            return "the CA at \(server) cannot be used: " + RPCFailureText.describe(error, server: server, rootHint: "--ca-root")
        default:
            return "the CA at \(server) refused (\(error.code)): \(error.message)"
        }
    }
}

extension CallerCredential {
    var svid: X509SVID? {
        if case .certificate(let svid) = self { return svid }
        return nil
    }
}
