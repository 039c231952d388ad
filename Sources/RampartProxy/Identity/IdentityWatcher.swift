import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import RampartAPI
import ServiceLifecycle
import Synchronization

/// The proxy's current identity and its TLS contexts.
///
/// A class: requests read it for the proxy's own SPIFFE ID, and a reference is copied with one retain.
public final class CurrentIdentity: Sendable {
    /// The identity.
    public let identity: ProxyIdentity
    /// Its TLS contexts.
    public let contexts: TLSContexts
    /// Increases with every rotation, so pools can tell old connections from new ones.
    public let generation: Int

    init(identity: ProxyIdentity, contexts: TLSContexts, generation: Int) {
        self.identity = identity
        self.contexts = contexts
        self.generation = generation
    }
}

/// Follows the node agent and swaps in each rotated identity.
///
/// The identity comes from the agent's output directory (re-read every interval) or from its
/// SPIFFE Workload API (a stream the agent pushes every rotation to). New connections use the
/// newest identity; connections already open keep the one they were made with until they close,
/// so a rotation drops nothing. A set of files that does not parse (for example one read between
/// the agent's renames) is ignored until the next look.
public final class IdentityWatcher: Service, Sendable {
    /// Where the identity comes from.
    public enum Source: Sendable {
        /// The agent's output directory: cert-chain.pem, key.pem, root-cert.pem.
        case directory(String)
        /// The agent's Workload API Unix socket.
        case workloadAPI(String)
    }

    private let source: Source
    private let interval: Duration
    private let logger: Logger
    private let state = Mutex<CurrentIdentity?>(nil)

    /// Creates a watcher of `source`, looking (or reconnecting) every `interval`.
    public init(source: Source, interval: Duration = .seconds(1), logger: Logger) {
        self.source = source
        self.interval = interval
        self.logger = logger
    }

    /// Creates a watcher of the agent's output directory.
    public convenience init(directory: String, interval: Duration = .seconds(1), logger: Logger) {
        self.init(source: .directory(directory), interval: interval, logger: logger)
    }

    /// The current identity, once one has loaded.
    public var current: CurrentIdentity? { state.withLock { $0 } }

    /// Loads the directory's files now (a Workload API source has nothing to load on demand).
    @discardableResult
    public func reload() throws(ProxyError) -> CurrentIdentity {
        switch source {
        case .directory(let directory):
            return try install(try ProxyIdentity(directory: directory))
        case .workloadAPI(let socket):
            guard let current else {
                throw ProxyError(.identity, "no X509SVID received yet from the Workload API at \(socket)")
            }
            return current
        }
    }

    /// Puts an identity in force, unless it is the one already in force.
    @discardableResult
    func install(_ identity: ProxyIdentity) throws(ProxyError) -> CurrentIdentity {
        if let current = self.current, current.identity.fingerprint == identity.fingerprint { return current }
        let contexts = try TLSContexts(identity: identity)
        let next = state.withLock { state -> CurrentIdentity in
            let next = CurrentIdentity(identity: identity, contexts: contexts, generation: (state?.generation ?? 0) + 1)
            state = next
            return next
        }
        logger.info(
            next.generation == 1 ? "workload identity loaded" : "workload identity rotated",
            metadata: [
                "identity.spiffe_id": "\(identity.spiffeID)", "identity.serial": "\(identity.serial)",
                "identity.not_after": "\(identity.notAfter)", "identity.generation": "\(next.generation)",
            ]
        )
        return next
    }

    /// Follows the source until shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            switch source {
            case .directory: await pollDirectory()
            case .workloadAPI(let socket): await followWorkloadAPI(socket: socket)
            }
        }
    }

    private func pollDirectory() async {
        var lastError: String?
        while !Task.isCancelled {
            do {
                try reload()
                lastError = nil
            } catch {
                let reason = error.reason
                if reason != lastError {
                    logger.warning("cannot load the workload identity; keeping the current one", metadata: ["error": "\(reason)"])
                    lastError = reason
                }
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func followWorkloadAPI(socket: String) async {
        while !Task.isCancelled {
            do {
                let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
                try await withGRPCClient(transport: transport) { client in
                    let api = Workload_SpiffeWorkloadAPI.Client(wrapping: client)
                    try await api.fetchX509SVID(Workload_X509SVIDRequest(), metadata: ["workload.spiffe.io": "true"]) { [self] response in
                        for try await message in response.messages {
                            guard let svid = message.svids.first else { continue }
                            do {
                                try install(
                                    ProxyIdentity(
                                        chainDER: Array(svid.x509Svid), keyPKCS8: Array(svid.x509SvidKey), bundleDER: Array(svid.bundle),
                                        source: "Workload API \(socket)"
                                    )
                                )
                            } catch {
                                logger.warning("refusing an X509SVID from the Workload API; keeping the current identity", metadata: ["error": "\((error as? ProxyError)?.reason ?? "\(error)")"])
                            }
                        }
                    }
                }
            } catch {
                if !Task.isCancelled {
                    logger.warning(
                        "Workload API stream ended; keeping the current identity and reconnecting",
                        metadata: ["identity.socket": "\(socket)", "error": "\(ConfigStream.describe(error))"]
                    )
                }
            }
            try? await Task.sleep(for: interval)
        }
    }
}
