import Foundation
import GRPCCore
import Logging
import RampartAPI
import RampartAuthn
import RampartIdentity
import RampartPKI
import X509

/// `rampart.ca.v1.WorkloadIdentityService`: the trust bundle (X.509 roots and JWT keys) and
/// JWT-SVIDs for callers that hold an X.509-SVID from this CA.
public struct WorkloadIdentityService: Rampart_Ca_V1_WorkloadIdentityService.SimpleServiceProtocol {
    let trustDomain: TrustDomain
    let rootsPEM: [String]
    let jwtSigner: JWTSVIDSigner
    let authenticator: CallerAuthenticator
    let peers: PeerRegistry
    let sequence: UInt64
    let clock: @Sendable () -> Date
    let logger: Logger

    /// How often holders should fetch the bundle again, in seconds.
    public static let refreshHintSeconds: Int64 = 300

    /// Creates the service. `sequence` should increase whenever the bundle may have changed; the
    /// CA uses the time it loaded its material.
    public init(
        trustDomain: TrustDomain, authority: CertificateAuthority, jwtSigner: JWTSVIDSigner, authenticator: CallerAuthenticator,
        peers: PeerRegistry, sequence: UInt64, clock: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) throws {
        self.trustDomain = trustDomain
        self.rootsPEM = try authority.roots.map { try $0.serializeAsPEM().pemString }
        self.jwtSigner = jwtSigner
        self.authenticator = authenticator
        self.peers = peers
        self.sequence = sequence
        self.clock = clock
        self.logger = logger
    }

    /// The JWT bundle this CA publishes.
    public var jwtBundle: JWTBundle {
        JWTBundle(keys: [jwtSigner.bundleKey], sequence: sequence, refreshHint: Self.refreshHintSeconds)
    }

    public func getTrustBundle(request: Rampart_Ca_V1_GetTrustBundleRequest, context: ServerContext) async throws -> Rampart_Ca_V1_TrustBundle {
        var bundle = Rampart_Ca_V1_TrustBundle()
        bundle.trustDomain = trustDomain.name
        bundle.x509Authorities = rootsPEM
        bundle.jwtAuthorities = jwtBundle.json()
        bundle.sequence = sequence
        bundle.refreshHintSeconds = Self.refreshHintSeconds
        return bundle
    }

    public func mintJWTSVID(request: Rampart_Ca_V1_MintJWTSVIDRequest, context: ServerContext) async throws -> Rampart_Ca_V1_MintJWTSVIDResponse {
        let now = clock()
        do {
            let (token, spiffeID, expiresAt) = try await mint(audience: request.audience, ttlSeconds: request.ttlSeconds, peerCertificate: peers.peer(forRemote: context.remotePeer)?.certificate, now: now)
            var response = Rampart_Ca_V1_MintJWTSVIDResponse()
            response.token = token
            response.spiffeID = spiffeID
            response.expiresAt = Int64(expiresAt.timeIntervalSince1970)
            return response
        } catch {
            logger.info("JWT-SVID request refused", metadata: ["ca.result": "\(error.kind.rawValue)", "ca.reason": "\(error.message)", "peer": "\(context.remotePeer)"])
            throw RPCError(code: error.kind.rpcCode, message: error.message)
        }
    }

    /// The decision for one JWT-SVID request, independent of gRPC.
    func mint(audience: [String], ttlSeconds: Int64, peerCertificate: Certificate?, now: Date) async throws(Refusal) -> (String, String, Date) {
        guard let peerCertificate else {
            throw Refusal(.unauthenticated, "JWT-SVIDs are issued only to holders of an X.509-SVID: present your certificate over mTLS")
        }
        let caller = try await authenticator.authenticate(authorization: nil, peerCertificate: peerCertificate, now: now)
        guard ttlSeconds >= 0 else {
            throw Refusal(.invalidArgument, "ttl_seconds \(ttlSeconds) is negative: ask for 0 (the 5-minute default) or more")
        }
        let ttl = ttlSeconds == 0 ? JWTSVIDSigner.defaultTTL : TimeInterval(ttlSeconds)
        do {
            let (token, expiresAt) = try await jwtSigner.sign(subject: caller.identity, audience: audience, ttl: ttl, now: now)
            return (token, caller.identity.string, expiresAt)
        } catch {
            throw Refusal(error.code == .notPermitted ? .invalidArgument : .internalError, error.reason)
        }
    }
}
