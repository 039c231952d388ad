import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import RampartAPI
import SwiftProtobuf

/// A client of the CA's gRPC certificate service, for the CLI, the benchmark and tests.
///
/// It verifies the CA's serving certificate against the trust bundle, and can present a client
/// certificate (for renewal) and a bearer credential (for bootstrap).
public struct CAClient: Sendable {
    /// The CA's address.
    public var host: String
    public var port: Int
    /// The trust bundle (root-cert.pem) as PEM.
    public var rootPEM: String
    /// The client certificate chain and key, as PEM, for renewal over mTLS.
    public var clientChainPEM: String?
    public var clientKeyPEM: String?
    /// How long one call may take, connecting included: a CA that accepts the connection and
    /// never answers fails the call with DEADLINE_EXCEEDED rather than hanging it.
    public var timeout: Duration

    /// Creates a client description; nothing connects until ``withConnection(_:)``.
    public init(
        host: String, port: Int, rootPEM: String, clientChainPEM: String? = nil, clientKeyPEM: String? = nil, timeout: Duration = .seconds(30)
    ) {
        self.host = host
        self.port = port
        self.rootPEM = rootPEM
        self.clientChainPEM = clientChainPEM
        self.clientKeyPEM = clientKeyPEM
        self.timeout = timeout
    }

    /// An open connection to the CA.
    public struct Connection: Sendable {
        let client: Istio_V1_Auth_IstioCertificateService.Client<HTTP2ClientTransport.Posix>
        let identity: Rampart_Ca_V1_WorkloadIdentityService.Client<HTTP2ClientTransport.Posix>
        let options: CallOptions

        /// The CA's trust bundle.
        public func trustBundle() async throws -> Rampart_Ca_V1_TrustBundle {
            try await identity.getTrustBundle(Rampart_Ca_V1_GetTrustBundleRequest(), options: options)
        }

        /// Asks for a JWT-SVID for the identity of the client certificate.
        public func mintJWTSVID(audience: [String], ttlSeconds: Int64 = 0, bearer: String? = nil) async throws -> Rampart_Ca_V1_MintJWTSVIDResponse {
            var request = Rampart_Ca_V1_MintJWTSVIDRequest()
            request.audience = audience
            request.ttlSeconds = ttlSeconds
            var metadata: Metadata = [:]
            if let bearer { metadata.addString("Bearer \(bearer)", forKey: "authorization") }
            return try await identity.mintJWTSVID(request, metadata: metadata, options: options)
        }

        /// Sends a CSR, with `fields` as the request's metadata, and returns the chain, leaf first.
        public func createCertificate(
            csrPEM: String, validitySeconds: Int64 = 0, bearer: String? = nil, fields: [String: String] = [:]
        ) async throws -> [String] {
            var request = Istio_V1_Auth_IstioCertificateRequest()
            request.csr = csrPEM
            request.validityDuration = validitySeconds
            for (key, value) in fields {
                var entry = Google_Protobuf_Value()
                entry.stringValue = value
                request.metadata.fields[key] = entry
            }
            var metadata: Metadata = [:]
            if let bearer { metadata.addString("Bearer \(bearer)", forKey: "authorization") }
            return try await client.createCertificate(request, metadata: metadata, options: options).certChain
        }
    }

    /// Opens a connection, runs `body`, and closes it.
    public func withConnection<Result: Sendable>(_ body: (Connection) async throws -> Result) async throws -> Result {
        let rootBytes = Array(rootPEM.utf8)
        let chain = clientChainPEM
        let key = clientKeyPEM
        let security = HTTP2ClientTransport.Posix.TransportSecurity.tls { config in
            config.trustRoots = .certificates([.bytes(rootBytes, format: .pem)])
            config.serverCertificateVerification = .fullVerification
            if let chain, let key {
                config.certificateChain = [.bytes(Array(chain.utf8), format: .pem)]
                config.privateKey = .bytes(Array(key.utf8), format: .pem)
            }
        }
        // An IP address is dialled as one, with no server name sent (TLS allows no IP there); the
        // CA's certificate names its IP addresses.
        let isIPv4 = host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy({ UInt8($0) != nil })
        let target: any ResolvableTarget =
            host.contains(":")
            ? .ipv6(address: host, port: port) : isIPv4 ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security)
        var options = CallOptions.defaults
        options.timeout = timeout
        return try await withGRPCClient(transport: transport) { client in
            try await body(
                Connection(
                    client: Istio_V1_Auth_IstioCertificateService.Client(wrapping: client),
                    identity: Rampart_Ca_V1_WorkloadIdentityService.Client(wrapping: client), options: options))
        }
    }
}
