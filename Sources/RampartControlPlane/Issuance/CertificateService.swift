import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import RampartAPI
import RampartIdentity
import RampartPKI
import RampartStore
import SwiftProtobuf
import X509

/// `istio.v1.auth.IstioCertificateService/CreateCertificate`: authenticate, check the CSR, sign,
/// record durably, then answer. Parsing and status mapping live here; decisions live in
/// ``CallerAuthenticator``, ``CSRInspection`` and ``SVIDIssuer``.
public struct CertificateService: Istio_V1_Auth_IstioCertificateService.ServiceProtocol {
    let issuer: SVIDIssuer
    let authenticator: CallerAuthenticator
    let store: SQLiteStore
    let peers: PeerRegistry
    let clock: @Sendable () -> Date
    let logger: Logger
    let metrics = CAMetrics()

    /// Creates the service.
    public init(issuer: SVIDIssuer, authenticator: CallerAuthenticator, store: SQLiteStore, peers: PeerRegistry, clock: @escaping @Sendable () -> Date = Date.init, logger: Logger) {
        self.issuer = issuer
        self.authenticator = authenticator
        self.store = store
        self.peers = peers
        self.clock = clock
        self.logger = logger
    }

    /// Registers `CreateCertificate` with a deserializer that keeps a request that does not decode
    /// as protobuf, so that it is refused like any other bad request: with a reason in words
    /// (gRPC's own deserializer names a Swift type), counted in the metrics and audited.
    public func registerMethods<Transport>(with router: inout RPCRouter<Transport>) where Transport: ServerTransport {
        router.registerHandler(
            forMethod: Istio_V1_Auth_IstioCertificateService.Method.CreateCertificate.descriptor,
            deserializer: CertificateRequestDeserializer(),
            serializer: ProtobufSerializer<Istio_V1_Auth_IstioCertificateResponse>(),
            handler: { request, context in
                let single = try await ServerRequest(stream: request)
                switch single.message {
                case .decoded(let message):
                    let response = try await self.createCertificate(
                        request: ServerRequest(metadata: single.metadata, message: message), context: context)
                    return StreamingServerResponse(single: response)
                case .undecodable(let reason):
                    let refusal = Refusal(.invalidArgument, reason)
                    await refused(refusal, started: ContinuousClock.now, now: clock(), context: context)
                    throw RPCError(code: refusal.kind.rpcCode, message: refusal.message)
                }
            }
        )
    }

    public func createCertificate(
        request: ServerRequest<Istio_V1_Auth_IstioCertificateRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Istio_V1_Auth_IstioCertificateResponse> {
        let started = ContinuousClock.now
        let now = clock()
        let authorization = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        let peer = peers.peer(forRemote: context.remotePeer)
        do {
            let chain = try await sign(request: request.message, authorization: authorization, peerCertificate: peer?.certificate, now: now)
            metrics.issued(result: nil, duration: ContinuousClock.now - started)
            var response = Istio_V1_Auth_IstioCertificateResponse()
            response.certChain = chain
            return ServerResponse(message: response)
        } catch {
            await refused(error, started: started, now: now, context: context)
            throw RPCError(code: error.kind.rpcCode, message: error.message)
        }
    }

    /// Counts, logs and audits a refused request.
    private func refused(_ refusal: Refusal, started: ContinuousClock.Instant, now: Date, context: ServerContext) async {
        metrics.issued(result: refusal.kind, duration: ContinuousClock.now - started)
        logger.info("certificate request refused", metadata: ["ca.result": "\(refusal.kind.rawValue)", "ca.reason": "\(refusal.message)", "peer": "\(context.remotePeer)"])
        try? await store.appendBatched([
            AuditEntry(time: now, type: .issuanceRefused, actor: context.remotePeer, subject: "-", details: ["status": refusal.kind.rawValue, "reason": refusal.message])
        ])
    }

    /// The whole decision for one request, independent of gRPC.
    func sign(request: Istio_V1_Auth_IstioCertificateRequest, authorization: String?, peerCertificate: Certificate?, now: Date) async throws(Refusal) -> [String] {
        // A renewing certificate's record (on file, not revoked) is checked in the transaction
        // that records the new certificate, so no revocation committed before it can be missed.
        let caller = try await authenticator.authenticate(
            authorization: authorization, peerCertificate: peerCertificate, now: now, deferringRecordCheck: true)
        // Istio lets a trusted node agent (ztunnel) ask for another workload's certificate with this
        // metadata; Rampart has no node authorizer, so such a request is refused, as istiod refuses
        // it without one, rather than answered with the caller's own identity.
        if let impersonated = request.metadata.fields["ImpersonatedIdentity"]?.stringValue, !impersonated.isEmpty {
            throw Refusal(
                .unauthenticated,
                "the request's metadata asks for ImpersonatedIdentity \(impersonated), and this CA has no node authorizer to allow impersonation, so it takes no ImpersonatedIdentity, not even the caller's own: remove ImpersonatedIdentity to get a certificate for the caller's identity (\(caller.identity.string))")
        }
        let ttl: TimeInterval
        let facts: CSRFacts
        do {
            ttl = try issuer.policy.ttl(forRequestedSeconds: request.validityDuration)
            facts = try CSRInspection.inspect(pem: request.csr)
            try CSRInspection.check(facts, for: caller.identity.string)
        } catch {
            throw Refusal(error.code == .identityMismatch ? .permissionDenied : .invalidArgument, error.reason)
        }
        try await authenticator.redeem(caller, now: now)

        let issued: IssuedSVID
        do {
            issued = try await issuer.issue(publicKey: facts.publicKey, spiffeID: caller.identity, ttl: ttl, now: now)
        } catch {
            throw Refusal(.internalError, "signing failed: \(error.reason)")
        }
        let record = CertificateRecord(issued, issuedAt: now, callerIdentity: caller.credential, authMethod: caller.method)
        do {
            try await store.recordIssued(
                [record],
                audit: [
                    AuditEntry(
                        time: now, type: .certificateIssued, actor: caller.credential, subject: issued.serialHex,
                        details: record.issuanceDetails.merging(["auth": caller.method.rawValue]) { $1 }
                    )
                ],
                renewing: caller.pendingRecordCheck
            )
        } catch let refusal as RenewalRefusal {
            try CallerAuthenticator.check(refusal.statusRecord, serial: refusal.serial, identity: caller.identity)
            throw Refusal(.internalError, "the store refused certificate \(refusal.serial) for renewal without saying why")
        } catch {
            // A certificate the store does not hold never leaves the CA.
            throw Refusal(.unavailable, "the certificate could not be recorded, so it was not issued: \(error); retry")
        }
        // Each certificate's PEM ends with a newline, as istiod sends them, so that the entries
        // can be concatenated into a file that openssl reads.
        return issued.chainPEM.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }
    }
}

extension Refusal.Kind {
    var rpcCode: RPCError.Code {
        switch self {
        case .unauthenticated: return .unauthenticated
        case .permissionDenied: return .permissionDenied
        case .invalidArgument: return .invalidArgument
        case .internalError: return .internalError
        case .unavailable: return .unavailable
        }
    }
}


/// A `CreateCertificate` request as read off the wire: the message, or why its bytes are not one.
enum DecodedCertificateRequest: Sendable {
    case decoded(Istio_V1_Auth_IstioCertificateRequest)
    case undecodable(String)
}

/// Decodes `IstioCertificateRequest`, keeping a decoding failure as a value the handler refuses.
struct CertificateRequestDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> DecodedCertificateRequest {
        let data = serializedMessageBytes.withUnsafeBytes { Data($0) }
        do {
            return .decoded(try Istio_V1_Auth_IstioCertificateRequest(serializedBytes: data))
        } catch {
            return .undecodable(Self.reason(error))
        }
    }

    /// What was wrong with the bytes, in words.
    static func reason(_ error: any Error) -> String {
        let problem: String
        switch error as? BinaryDecodingError {
        case .truncated?: problem = "it ends inside a field (truncated)"
        case .invalidUTF8?: problem = "a string field (csr, or a metadata key or string) is not valid UTF-8"
        case .messageDepthLimit?: problem = "its metadata nests deeper than the CA reads"
        case .malformedProtobuf?: problem = "it is not well-formed protobuf (a field's tag, wire type or length is wrong)"
        default: problem = "it is not well-formed protobuf"
        }
        return "the request is not an istio.v1.auth.IstioCertificateRequest: \(problem): send csr (field 1) as a UTF-8 PEM string, validity_duration (field 3) as an int64 and metadata (field 4) as a google.protobuf.Struct"
    }
}
