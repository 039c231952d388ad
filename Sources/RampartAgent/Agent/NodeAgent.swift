import Foundation
import Logging
import RampartAuthn
import RampartIdentity
import ServiceLifecycle
import Synchronization
import X509

/// Where the agent's one bootstrap credential comes from. The file is read when needed, so an
/// operator can drop a fresh credential in place.
public enum BootstrapCredentialSource: Sendable, Equatable {
    /// A one-time token from `rampart token create`.
    case tokenFile(String)
    /// A JWT from an issuer the CA trusts.
    case jwtFile(String)

    var path: String {
        switch self {
        case .tokenFile(let path), .jwtFile(let path): return path
        }
    }
}

/// Settings of one agent.
public struct AgentConfiguration: Sendable {
    /// The CA.
    public var provider: any IdentityProvider
    /// The roots that authenticate the CA before the agent holds a bundle of its own (`--ca-root`).
    public var caRoots: [Certificate]
    /// The bootstrap credential.
    public var credential: BootstrapCredentialSource
    /// The output directory.
    public var output: IdentityFiles
    /// The key type made for each certificate.
    public var keyType: WorkloadKeyType
    /// The certificate lifetime asked for.
    public var ttl: TimeInterval
    /// When to renew.
    public var schedule: RenewalSchedule
    /// How to retry.
    public var backoff: Backoff

    public init(
        provider: any IdentityProvider, caRoots: [Certificate], credential: BootstrapCredentialSource, output: IdentityFiles,
        keyType: WorkloadKeyType = .ecP256, ttl: TimeInterval = 24 * 3600, schedule: RenewalSchedule, backoff: Backoff = Backoff()
    ) {
        self.provider = provider
        self.caRoots = caRoots
        self.credential = credential
        self.output = output
        self.keyType = keyType
        self.ttl = ttl
        self.schedule = schedule
        self.backoff = backoff
    }
}

/// The node agent: bootstraps once with its credential, then keeps the workload's X.509-SVID
/// renewed over mTLS, writes it to the output directory and publishes it to the Workload API.
///
/// While the CA is unreachable it keeps the valid certificate, retries with exponential
/// back-off, and logs how long the certificate has left.
public final class NodeAgent: Service, Sendable {
    /// The identity and status shared with the Workload API.
    public let state: IdentityState
    let configuration: AgentConfiguration
    let clock: any AgentClock
    let random: @Sendable () -> Double
    let logger: Logger
    private let spentToken = Mutex<String?>(nil)
    private let jwtCache = Mutex<[String: CachedJWT]>([:])
    private let validatorCache = Mutex<(version: UInt64, validator: JWTSVIDValidator)?>(nil)

    struct CachedJWT: Sendable {
        let token: String
        let refreshAfter: Date
        let expiresAt: Date
    }

    /// Creates an agent. `random` returns numbers in [0, 1) for jitter.
    public init(
        configuration: AgentConfiguration, state: IdentityState = IdentityState(), clock: any AgentClock = SystemAgentClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, logger: Logger
    ) {
        self.configuration = configuration
        self.state = state
        self.clock = clock
        self.random = random
        self.logger = logger
    }

    /// Runs until graceful shutdown (SIGTERM) or cancellation.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await self.rotate()
            }
        } catch is CancellationError {
            // Shutdown.
        }
        state.finishWatchers()
        logger.info("agent stopped")
    }

    /// The rotation loop: resume or bootstrap, then renew at each renewal time, backing off on failure.
    public func rotate() async throws {
        await resume()
        var backoff = configuration.backoff
        var retryAt: Date?
        var lastSuccess: Date?
        while true {
            try Task.checkCancellation()
            let now = clock.now()
            let wakeAt: Date
            if let retryAt {
                wakeAt = retryAt
            } else if let svid = state.current?.svid {
                let due = configuration.schedule.renewalTime(notBefore: svid.lifetimeStart, notAfter: svid.notAfter, random: random())
                // However short the certificate, never renew more than once a second.
                wakeAt = max(due, lastSuccess.map { $0.addingTimeInterval(1) } ?? due)
                logger.info("next renewal scheduled", metadata: [
                    "agent.spiffe_id": "\(svid.spiffeID)", "agent.serial": "\(svid.serialHex)",
                    "agent.renew_at": "\(wakeAt.formatted(.iso8601))", "agent.renew_in_s": "\(Int(wakeAt.timeIntervalSince(now).rounded()))",
                ])
            } else {
                wakeAt = now
            }
            state.update { $0.nextRenewal = wakeAt }
            if wakeAt > now { try await clock.sleep(until: wakeAt) }
            do {
                try await renewOnce()
                backoff.reset()
                retryAt = nil
                lastSuccess = clock.now()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                let delay = backoff.nextDelay(random: random())
                let failedAt = clock.now()
                let next = failedAt.addingTimeInterval(delay)
                retryAt = next
                let reason = (error as? AgentError)?.reason ?? "\(error)"
                let remaining = state.current.map { $0.svid.remaining(at: failedAt) }
                state.update { status in
                    status.failures += 1
                    status.lastError = reason
                    status.lastErrorAt = failedAt
                    status.nextRenewal = next
                    if let remaining, remaining > 0 { status.phase = .backingOff } else { status.phase = remaining == nil ? .bootstrapping : .expired }
                }
                var metadata: Logger.Metadata = ["agent.error": "\(reason)", "agent.retry_in_s": "\(String(format: "%.1f", delay))", "agent.attempt": "\(backoff.failures)"]
                if let remaining {
                    metadata["agent.expires_in_s"] = "\(Int(remaining.rounded()))"
                    logger.warning(remaining > 0 ? "renewal failed; the current certificate stays in use" : "renewal failed and the certificate has expired", metadata: metadata)
                } else {
                    logger.warning("bootstrap failed", metadata: metadata)
                }
            }
        }
    }

    /// Picks up a still-valid identity left in the output directory by an earlier run, so a
    /// restart neither needs the (spent) bootstrap token nor waits. Returns whether it did.
    @discardableResult
    public func resume() async -> Bool {
        guard state.current == nil else { return true }
        switch await configuration.output.load(now: clock.now()) {
        case .success(let (svid, roots)):
            var jwt: JWTBundle?
            var bundleRoots = roots
            if let published = try? await configuration.provider.trustBundle(trust: trustRoots(extra: roots), svid: svid) {
                if let parsed = try? Self.parse(published), !parsed.roots.isEmpty { bundleRoots = parsed.roots }
                jwt = try? Self.parse(published).jwt
            }
            state.install(svid: svid, bundle: TrustBundle(trustDomain: svid.spiffeID.trustDomain, roots: bundleRoots, jwt: jwt), renewed: false)
            logger.info("resumed the identity in the output directory", metadata: [
                "agent.spiffe_id": "\(svid.spiffeID)", "agent.serial": "\(svid.serialHex)", "agent.not_after": "\(svid.notAfter.formatted(.iso8601))",
            ])
            return true
        case .failure(let error):
            if FileManager.default.fileExists(atPath: configuration.output.path(IdentityFiles.certChain)) {
                logger.notice("the identity in the output directory is not usable; bootstrapping", metadata: ["agent.reason": "\(error.reason)"])
            }
            return false
        }
    }

    /// One issuance now: bootstrap with the credential when there is no valid certificate, renew
    /// over mTLS otherwise. The rotation loop calls this at each renewal time.
    public func renewOnce() async throws {
        let now = clock.now()
        let key = try WorkloadKey.generate(configuration.keyType)
        let current = state.current
        var credential: CallerCredential
        var bearer: String?
        if let current, current.svid.notAfter > now.addingTimeInterval(1) {
            state.update { $0.phase = .renewing }
            credential = .certificate(current.svid)
        } else {
            state.update { $0.phase = current == nil ? .bootstrapping : .expired }
            let secret = try readCredential()
            credential = .bearer(secret)
            bearer = secret
        }
        let trust = trustRoots(extra: current?.bundle.roots ?? [])
        let ttl = Int64(configuration.ttl.rounded())
        let result: IssuanceResult
        do {
            let csr = try key.certificateSigningRequest(identity: credential.svid?.spiffeID)
            result = try await configuration.provider.issue(csrPEM: csr, ttlSeconds: ttl, credential: credential, trust: trust)
        } catch let refusal as AgentError where refusal.code == .credentialRefused && credential.svid != nil {
            // The CA will not renew this certificate (revoked, or not one it issued): the agent
            // bootstraps again with its credential file, at once, rather than serve a certificate
            // the CA has disowned until it expires.
            let path = configuration.credential.path
            let secret: String
            do {
                secret = try readCredential()
            } catch {
                throw AgentError(
                    .credentialRefused,
                    "\(refusal.reason); the credential file \(path) holds no token this agent has not spent: put a new token from 'rampart token create' in \(path) to bootstrap again")
            }
            logger.warning("the CA refused this certificate; bootstrapping again with the credential file", metadata: [
                "agent.serial": "\(current?.svid.serialHex ?? "")", "agent.error": "\(refusal.reason)", "agent.credential": "\(path)",
            ])
            state.update { $0.phase = .bootstrapping }
            credential = .bearer(secret)
            bearer = secret
            let csr = try key.certificateSigningRequest(identity: nil)
            result = try await configuration.provider.issue(csrPEM: csr, ttlSeconds: ttl, credential: credential, trust: trust)
        }
        var roots = current?.bundle.roots ?? configuration.caRoots
        var jwt = current?.bundle.jwt
        if let published = result.bundle {
            let parsed = try Self.parse(published)
            if !parsed.roots.isEmpty { roots = parsed.roots }
            if let bundleJWT = parsed.jwt { jwt = bundleJWT }
        }
        let svid = try await X509SVID(chainPEM: result.chainPEM, key: key, roots: roots, now: clock.now())
        let bundle = TrustBundle(trustDomain: svid.spiffeID.trustDomain, roots: roots, jwt: jwt)
        // The token is spent once the CA has issued, whatever happens to the files.
        if let bearer, case .tokenFile = configuration.credential {
            spentToken.withLock { $0 = bearer }
        }
        do {
            try configuration.output.write(svid: svid, bundle: bundle)
        } catch let failure as AgentError {
            // The identity is kept and served on the Workload API; the next attempt renews it over
            // mTLS and writes again, so the credential is never needed twice.
            jwtCache.withLock { $0.removeAll() }
            state.install(svid: svid, bundle: bundle, renewed: current != nil)
            throw AgentError(
                failure.code,
                "the CA issued \(svid.spiffeID) (serial \(svid.serialHex)), served on the Workload API, but \(failure.reason); fix the output directory, and the agent writes the files at its next attempt")
        }
        if let previous = current?.bundle, !previous.sameContent(as: bundle) {
            logger.notice("trust bundle changed; root-cert.pem rewritten", metadata: ["agent.roots": "\(bundle.roots.count)", "agent.jwt_keys": "\(bundle.jwt?.keys.count ?? 0)"])
        }
        if let current, current.svid.spiffeID != svid.spiffeID {
            logger.warning("the CA issued a different identity than before", metadata: ["agent.previous": "\(current.svid.spiffeID)", "agent.spiffe_id": "\(svid.spiffeID)"])
        }
        jwtCache.withLock { $0.removeAll() }
        state.install(svid: svid, bundle: bundle, renewed: current != nil)
        logger.info(current == nil ? "bootstrapped" : "renewed", metadata: [
            "agent.spiffe_id": "\(svid.spiffeID)", "agent.serial": "\(svid.serialHex)", "agent.not_after": "\(svid.notAfter.formatted(.iso8601))",
            "agent.auth": "\(bearer == nil ? "mtls" : "bearer")",
        ])
    }

    private func readCredential() throws -> String {
        let path = configuration.credential.path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AgentError(.credential, "the bootstrap credential file \(path) cannot be read: check the path and its permissions")
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else {
            throw AgentError(.credential, "the bootstrap credential file \(path) is empty: put a token from 'rampart token create' (or a JWT) in it")
        }
        // The credential goes in an HTTP header, which holds one line of visible characters.
        guard secret.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw AgentError(
                .credential,
                "the bootstrap credential file \(path) holds more than one token (a line break, space or control character inside it): put exactly one token from 'rampart token create' (or one JWT) in it")
        }
        if case .tokenFile = configuration.credential, spentToken.withLock({ $0 == secret }) {
            throw AgentError(
                .credential,
                "the certificate expired and the token in \(path) was already spent by this agent (tokens work once): put a new token from 'rampart token create' in \(path)"
            )
        }
        return secret
    }

    /// The roots that authenticate the CA: `--ca-root` plus the current bundle.
    func trustRoots(extra: [Certificate]) -> [Certificate] {
        var roots = configuration.caRoots
        for root in extra where !roots.contains(root) { roots.append(root) }
        return roots
    }

    static func parse(_ published: PublishedBundle) throws -> (roots: [Certificate], jwt: JWTBundle?) {
        var roots: [Certificate] = []
        for pem in published.rootsPEM {
            do {
                roots.append(contentsOf: try Certificate.allFromPEM(pem))
            } catch {
                throw AgentError(.badResponse, "the CA's trust bundle holds a root that is not PEM: \(PEMFault.describe(error, expected: "a CERTIFICATE"))")
            }
        }
        let jwt = published.jwtAuthorities.isEmpty ? nil : try JWTBundle(json: published.jwtAuthorities)
        return (roots, jwt)
    }

    // MARK: - JWT-SVIDs

    /// A JWT-SVID for the current identity and `audience`, from a cache refreshed at half its lifetime.
    public func jwtSVID(audience: [String]) async throws -> (token: String, spiffeID: SPIFFEID) {
        let audiences = Array(Set(audience.filter { !$0.isEmpty })).sorted()
        guard !audiences.isEmpty else {
            throw AgentError(.badConfiguration, "a JWT-SVID needs at least one audience")
        }
        guard let svid = state.current?.svid else {
            throw AgentError(.caFailure, "the agent holds no identity yet: it is still bootstrapping")
        }
        let key = audiences.joined(separator: "\u{0}")
        let now = clock.now()
        if let cached = jwtCache.withLock({ $0[key] }), now < cached.refreshAfter {
            return (cached.token, svid.spiffeID)
        }
        let (token, expiresAt) = try await configuration.provider.mintJWTSVID(
            audience: audiences, ttlSeconds: 0, svid: svid, trust: trustRoots(extra: state.current?.bundle.roots ?? [])
        )
        let refreshAfter = now.addingTimeInterval(max(0, expiresAt.timeIntervalSince(now)) / 2)
        jwtCache.withLock { cache in
            cache = cache.filter { $0.value.expiresAt > now }
            cache[key] = CachedJWT(token: token, refreshAfter: refreshAfter, expiresAt: expiresAt)
        }
        return (token, svid.spiffeID)
    }

    /// Validates a JWT-SVID against the JWT bundle the agent holds.
    public func validateJWTSVID(_ token: String, audience: String) async throws -> JWTSVIDValidator.Validated {
        guard let snapshot = state.current, let jwt = snapshot.bundle.jwt else {
            throw AgentError(.caFailure, "the agent holds no JWT bundle yet")
        }
        let validator: JWTSVIDValidator
        if let cached = validatorCache.withLock({ $0 }), cached.version == snapshot.version {
            validator = cached.validator
        } else {
            validator = try await JWTSVIDValidator(bundles: [snapshot.bundle.trustDomain: jwt])
            validatorCache.withLock { $0 = (snapshot.version, validator) }
        }
        return try await validator.validate(token, audience: audience, now: clock.now())
    }
}
