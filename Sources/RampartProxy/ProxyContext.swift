import Logging
import NIOCore
import RampartAuthn

/// What the listeners share: the workload, its identity and config, the upstream client and
/// the telemetry sinks.
public struct ProxyContext: Sendable {
    /// The workload beside the proxy.
    public let workload: WorkloadInfo
    /// Where the application listens.
    public let appHost: String
    public let appPort: Int
    /// The workload identity.
    public let identity: IdentityWatcher
    /// The config in force.
    public let config: ConfigHolder
    /// Connections to the application and to other proxies.
    public let upstream: UpstreamClient
    /// JWT verification for RequestAuthentication.
    public let authenticator: RequestAuthenticator
    /// Istio's metrics.
    public let metrics: ProxyMetrics
    /// One line per request.
    public let accessLog: AccessLog
    /// The largest request or response body the proxy holds.
    public let maxBodyBytes: Int
    /// How long an upstream may take to answer.
    public let upstreamTimeout: TimeAmount
    /// What the outbound side does with hosts the registry does not know.
    public let outboundPolicy: OutboundTrafficPolicy
    public let logger: Logger

    /// Creates a context.
    public init(
        workload: WorkloadInfo, appHost: String, appPort: Int, identity: IdentityWatcher, config: ConfigHolder, upstream: UpstreamClient,
        authenticator: RequestAuthenticator, metrics: ProxyMetrics, accessLog: AccessLog, maxBodyBytes: Int, upstreamTimeout: TimeAmount,
        outboundPolicy: OutboundTrafficPolicy, logger: Logger
    ) {
        self.workload = workload
        self.appHost = appHost
        self.appPort = appPort
        self.identity = identity
        self.config = config
        self.upstream = upstream
        self.authenticator = authenticator
        self.metrics = metrics
        self.accessLog = accessLog
        self.maxBodyBytes = maxBodyBytes
        self.upstreamTimeout = upstreamTimeout
        self.outboundPolicy = outboundPolicy
        self.logger = logger
    }
}

/// Istio's `outboundTrafficPolicy.mode`: what happens to requests for hosts outside the registry.
public enum OutboundTrafficPolicy: String, Sendable, CaseIterable {
    /// Forward them, in plaintext, to the address they name (Istio's default).
    case allowAny = "ALLOW_ANY"
    /// Refuse them with 502.
    case registryOnly = "REGISTRY_ONLY"
}
