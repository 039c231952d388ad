import Foundation
import GRPCCore
import Logging
import RampartAPI
import RampartIdentity
import RampartPKI
import RampartStore
import Synchronization
import X509

/// `rampart.config.v1.MeshConfigService/StreamConfig`: the config stream to `rampart proxy`.
///
/// The caller is authenticated by its mTLS client certificate exactly as renewal is (issued by
/// this CA, unexpired, unrevoked); bearer credentials are not accepted. The first message must be
/// a `Registration`; then a full snapshot is sent at once, and again whenever the config, the
/// services or the revoked set changes. ACKs and NACKs are recorded in the ``MeshRegistry``.
public struct MeshConfigService: Rampart_Config_V1_MeshConfigService.SimpleServiceProtocol {
    let authenticator: CallerAuthenticator
    let peers: PeerRegistry
    let registry: MeshRegistry
    let config: WatchedValue<ConfigState>
    let revocations: WatchedValue<[RevokedCertificate]>
    let rootNamespace: String
    let clock: @Sendable () -> Date
    let logger: Logger

    /// Creates the service over the sources it streams from.
    public init(
        authenticator: CallerAuthenticator, peers: PeerRegistry, registry: MeshRegistry, config: WatchedValue<ConfigState>,
        revocations: WatchedValue<[RevokedCertificate]>, rootNamespace: String, clock: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) {
        self.authenticator = authenticator
        self.peers = peers
        self.registry = registry
        self.config = config
        self.revocations = revocations
        self.rootNamespace = rootNamespace
        self.clock = clock
        self.logger = logger
    }

    /// The proxy at the other end of one stream, as its certificate proved it.
    struct Caller: Sendable {
        let identity: SPIFFEID
        let serial: String
        let notAfter: Date
        let peerHost: String?
    }

    public func streamConfig(
        request: RPCAsyncSequence<Rampart_Config_V1_ProxyMessage, any Error>,
        response: RPCWriter<Rampart_Config_V1_Snapshot>,
        context: ServerContext
    ) async throws {
        let caller: Caller
        do {
            caller = try await authenticate(peerCertificate: peers.peer(forRemote: context.remotePeer)?.certificate, remotePeer: context.remotePeer, now: clock())
        } catch {
            logger.info("config stream refused", metadata: ["mesh.result": "\(error.kind.rawValue)", "mesh.reason": "\(error.message)", "peer": "\(context.remotePeer)"])
            throw RPCError(code: error.kind.rpcCode, message: error.message)
        }
        let session = StreamSession()
        defer {
            if let registered = session.registered {
                registry.disconnect(registered.id, now: clock())
                logger.info("proxy disconnected", metadata: ["mesh.proxy": "\(registered.registration.displayName)", "mesh.stream": "\(registered.id)"])
            }
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await receive(request, from: caller, session: session) }
                group.addTask { try await send(to: response, caller: caller, session: session) }
                // Either side ending ends the stream: the proxy closed its side, or the sources
                // finished because the control plane is shutting down.
                _ = try await group.next()
                group.cancelAll()
                // A refusal by `receive` also finishes the session, which ends `send` normally; if
                // the group sees `send` first, the refusal is still the stream's outcome and must
                // reach the proxy. Anything else the other side ends with is its cancellation.
                while true {
                    do {
                        if try await group.next() == nil { break }
                    } catch let refusal as RPCError {
                        throw refusal
                    } catch {
                        continue
                    }
                }
            }
        } catch let error as RPCError {
            logger.info("config stream ended", metadata: ["mesh.result": "\(error.code)", "mesh.reason": "\(error.message)", "peer": "\(context.remotePeer)"])
            throw error
        }
    }

    /// Checks the caller's certificate as renewal does; any refusal of a presented certificate
    /// is `PERMISSION_DENIED`, no certificate is `UNAUTHENTICATED`.
    func authenticate(peerCertificate: Certificate?, remotePeer: String, now: Date) async throws(Refusal) -> Caller {
        guard let peerCertificate else {
            throw Refusal(
                .unauthenticated,
                "no client certificate: the config stream accepts only the proxy's workload certificate over mTLS (bearer tokens are not accepted here); connect with the cert-chain.pem and key.pem the agent wrote"
            )
        }
        let caller: AuthenticatedCaller
        do {
            caller = try await authenticator.authenticate(authorization: nil, peerCertificate: peerCertificate, now: now)
        } catch {
            if error.kind == .unavailable { throw error }
            throw Refusal(.permissionDenied, "the config stream refused the client certificate: \(error.message)")
        }
        return Caller(
            identity: caller.identity, serial: peerCertificate.serialNumber.hexString, notAfter: peerCertificate.notValidAfter,
            peerHost: InboundAddress.host(ofRemotePeer: remotePeer)
        )
    }

    /// Reads the registration, then ACKs and NACKs, until the proxy closes its side.
    private func receive(_ request: RPCAsyncSequence<Rampart_Config_V1_ProxyMessage, any Error>, from caller: Caller, session: StreamSession) async throws {
        defer { session.finish() }
        for try await message in request {
            guard let registered = session.registered else {
                guard case .registration(let wire)? = message.kind else {
                    throw RPCError(
                        code: .invalidArgument,
                        message: "the first message on the config stream must be a Registration, got \(message.kind.map(Self.describe) ?? "an empty ProxyMessage"): send Registration{workload, namespace, …} first"
                    )
                }
                let registration: ProxyRegistration
                do {
                    registration = try ProxyRegistration(validating: wire, caller: caller.identity)
                } catch {
                    throw RPCError(code: error.kind.rpcCode, message: error.message)
                }
                let id = registry.register(
                    registration, spiffeID: caller.identity.string, certificateNotAfter: caller.notAfter, peerHost: caller.peerHost, now: clock()
                )
                session.start(StreamSession.Registered(id: id, registration: registration))
                logger.info(
                    "proxy registered",
                    metadata: [
                        "mesh.proxy": "\(registration.displayName)", "mesh.stream": "\(id)", "mesh.spiffe_id": "\(caller.identity)",
                        "mesh.services": "\(registration.services.map { "\($0.name):\($0.port)" }.joined(separator: ","))",
                    ]
                )
                continue
            }
            switch message.kind {
            case .registration?:
                throw RPCError(
                    code: .invalidArgument,
                    message: "\(registered.registration.displayName) sent a second Registration on one stream: register once, first; open a new stream to change it"
                )
            case .ack(let ack)?:
                record(ack, on: registered)
            case nil:
                // A message kind this control plane does not know, from a newer proxy.
                logger.debug("ignored an empty ProxyMessage", metadata: ["mesh.stream": "\(registered.id)"])
            }
        }
    }

    private func record(_ ack: Rampart_Config_V1_Ack, on registered: StreamSession.Registered) {
        let version = registry.recordAck(registered.id, nonce: ack.nonce, accepted: ack.accepted, detail: ack.errorDetail)
        var metadata: Logger.Metadata = ["mesh.proxy": "\(registered.registration.displayName)", "mesh.nonce": "\(ack.nonce)"]
        guard let version else {
            logger.info("ignored an answer to an unknown snapshot nonce", metadata: metadata)
            return
        }
        metadata["config.version"] = "\(version)"
        if ack.accepted {
            logger.debug("proxy accepted config", metadata: metadata)
        } else {
            metadata["mesh.nack"] = "\(ack.errorDetail)"
            logger.warning("proxy refused config (NACK); it keeps enforcing its previous snapshot", metadata: metadata)
        }
    }

    /// Sends a snapshot as soon as the proxy has registered, and again whenever the config, the
    /// services or the revoked set changes, skipping one identical to the last sent.
    private func send(to response: RPCWriter<Rampart_Config_V1_Snapshot>, caller: Caller, session: StreamSession) async throws {
        guard let registered = await session.registration() else { return }
        let (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let config = self.config
        let revocations = self.revocations
        let services = registry.services
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Any source finishing (the control plane is shutting down) ends the stream.
            group.addTask { for await _ in config.updates() { tick.yield() } }
            group.addTask { for await _ in services.updates() { tick.yield() } }
            group.addTask { for await _ in revocations.updates() { tick.yield() } }
            group.addTask {
                var last: MeshSnapshot?
                for await _ in ticks {
                    guard let state = config.current, let revoked = revocations.current else { continue }
                    let snapshot = MeshSnapshot(config: state, services: services.current ?? [], revoked: revoked)
                    if revoked.contains(where: { Self.sameSerial($0.serial, caller.serial) }) {
                        throw RPCError(
                            code: .permissionDenied,
                            message: "the proxy's certificate \(caller.serial) for \(caller.identity) was revoked: the stream is closed; reconnect with a new certificate"
                        )
                    }
                    if let last, snapshot.hasSameContent(as: last) { continue }
                    let nonce = UUID().uuidString.lowercased()
                    registry.recordSent(registered.id, nonce: nonce, configVersion: state.version)
                    try await response.write(
                        snapshot.wire(namespace: registered.registration.namespace, rootNamespace: rootNamespace, proxySpiffeID: caller.identity.string, nonce: nonce)
                    )
                    last = snapshot
                    logger.debug(
                        "snapshot sent",
                        metadata: [
                            "mesh.proxy": "\(registered.registration.displayName)", "config.version": "\(state.version)", "mesh.nonce": "\(nonce)",
                            "mesh.services": "\(snapshot.services.count)", "mesh.revoked": "\(revoked.count)",
                        ]
                    )
                }
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    static func describe(_ kind: Rampart_Config_V1_ProxyMessage.OneOf_Kind) -> String {
        switch kind {
        case .registration: return "a Registration"
        case .ack: return "an Ack"
        }
    }

    /// Serials compared as the store compares them: case and leading zeros do not matter.
    static func sameSerial(_ lhs: String, _ rhs: String) -> Bool {
        func normal(_ serial: String) -> Substring {
            let lower = serial.lowercased()
            let trimmed = lower.drop { $0 == "0" }
            return trimmed.isEmpty ? "0" : trimmed
        }
        return normal(lhs) == normal(rhs)
    }
}

/// One stream's registration, shared by the task reading the proxy's messages and the task
/// sending snapshots: the sender waits until the reader has registered the proxy.
final class StreamSession: Sendable {
    /// A registered stream.
    struct Registered: Sendable {
        let id: MeshRegistry.StreamID
        let registration: ProxyRegistration
    }

    private let state = Mutex<Registered?>(nil)
    private let signal: AsyncStream<Registered>
    private let continuation: AsyncStream<Registered>.Continuation

    init() {
        (signal, continuation) = AsyncStream.makeStream(of: Registered.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The registration, once there is one.
    var registered: Registered? { state.withLock { $0 } }

    /// Records the registration and wakes the sender.
    func start(_ registered: Registered) {
        state.withLock { $0 = registered }
        continuation.yield(registered)
        continuation.finish()
    }

    /// Wakes the sender with nothing, when the proxy closed before registering.
    func finish() {
        continuation.finish()
    }

    /// Waits for the registration; nil when the stream ended first or the task was cancelled.
    func registration() async -> Registered? {
        for await registered in signal { return registered }
        return nil
    }
}
