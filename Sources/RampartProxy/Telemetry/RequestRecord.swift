import Foundation

/// Everything the proxy knows about one finished request or TCP connection: the source of its
/// metrics and its access-log line.
public struct RequestRecord: Sendable {
    /// `destination` on the inbound side, `source` on the outbound side, as Istio reports.
    public enum Reporter: String, Sendable { case source, destination }

    /// Which side reports.
    public var reporter: Reporter
    /// When the request arrived, and how long it took, in seconds.
    public var startTime: Date
    public var duration: TimeInterval
    /// `HTTP/1.1`, `HTTP/2`, or `TCP`.
    public var protocolName: String
    /// The request line and the headers the log shows.
    public var method: String?
    public var path: String?
    public var authority: String?
    public var requestID: String?
    public var userAgent: String?
    /// The status sent back (0 for TCP).
    public var responseCode: Int
    /// Envoy's response flags (`-` when none, as for a policy denial, which Envoy's RBAC filter
    /// flags in `responseDetails` only, and for a peer certificate revoked after its handshake,
    /// `peer_certificate_revoked`): `UAEX` for a CUSTOM policy's refusal, `NR` for no route, `UH` for no endpoint, `UF` for a failed upstream connection,
    /// `UT` for an upstream timeout, `NC` for no config yet.
    /// The details of a request whose client stalled past the stream idle timeout, logged `SI`.
    static let streamIdleTimeout = "stream_idle_timeout"
    public var responseFlags: String
    /// Envoy's response code details, e.g. `rbac_access_denied_matched_policy[ns[shop]-policy[deny-x]-rule[0]]`.
    public var responseDetails: String?
    /// Body bytes in each direction.
    public var bytesReceived: Int
    public var bytesSent: Int
    /// The source workload, as its certificate and the registry describe it.
    public var sourcePrincipal: String?
    public var sourceWorkload: String?
    public var sourceNamespace: String?
    /// The source workload's app, version, canonical service and revision, when known.
    public var sourceTelemetry: WorkloadTelemetry?
    public var sourceApp: String? { sourceTelemetry?.app }
    public var sourceVersion: String? { sourceTelemetry?.version }
    public var sourceCanonicalService: String? { sourceTelemetry?.canonicalService }
    public var sourceCanonicalRevision: String? { sourceTelemetry?.canonicalRevision }
    public var sourceAddress: String?
    /// The destination workload and service.
    public var destinationPrincipal: String?
    public var destinationWorkload: String?
    public var destinationNamespace: String?
    /// The destination workload's app, version, canonical service and revision, when known.
    public var destinationTelemetry: WorkloadTelemetry?
    public var destinationApp: String? { destinationTelemetry?.app }
    public var destinationVersion: String? { destinationTelemetry?.version }
    public var destinationCanonicalService: String? { destinationTelemetry?.canonicalService }
    public var destinationCanonicalRevision: String? { destinationTelemetry?.canonicalRevision }
    public var destinationService: String?
    public var destinationServiceName: String?
    public var destinationServiceNamespace: String?
    /// The address the request was forwarded to.
    public var upstreamHost: String?
    /// Milliseconds from forwarding the request to having the upstream's response, sent to the
    /// client as Envoy's `x-envoy-upstream-service-time`.
    public var upstreamServiceTime: Int?
    /// Istio's name for where it went: `inbound|PORT||`, `outbound|PORT||FQDN`,
    /// `PassthroughCluster` or `BlackHoleCluster`.
    public var upstreamCluster: String?
    /// The request's `x-forwarded-for` header.
    public var forwardedFor: String?
    /// The server name the client's TLS ClientHello asked for.
    public var requestedServerName: String?
    /// The listener address the request arrived on.
    public var downstreamLocalAddress: String?
    /// `mutual_tls` or `none` as the destination reports it; `unknown` in the source's reports, as Istio labels them.
    public var connectionSecurityPolicy: String
    /// The policy that decided (`namespace/name`), and its rule.
    public var policy: String?
    public var rule: Int?
    /// Dry-run policies that would have changed the result.
    public var dryRun: [String]
    /// Whether the client went away before its answer (reported as Envoy reports it: response
    /// code 0, flag `DC`).
    public var downstreamDisconnected = false
    /// For a request whose body was passed on as it arrived: the upload, whose bytes are counted
    /// into `bytesReceived` when the exchange is reported.
    var upload: StreamedUpload?
    /// Whether the request is a gRPC call, and the gRPC status its response carried.
    public var isGRPC = false
    public var grpcStatus: String?
    /// For a gRPC call, the messages the client and the server sent through the proxy, when
    /// counted (`nil`: none seen, counted as 0).
    public var requestMessages: Int?
    public var responseMessages: Int?
    /// Of those, the messages already added to the counters while the call was open.
    var reportedMessages = (request: 0, response: 0)
    /// The request's span, when the proxy traces (see `ProxyTracing`).
    var span: RequestSpan?

    /// Counts a gRPC call's request messages when its body is all in hand: a call relayed as it
    /// comes (`isStreamed`) is counted by its relay, an upload as it is taken.
    mutating func countMessages(of request: BufferedRequest) {
        guard isGRPC, !request.isStreamed, request.upload == nil else { return }
        requestMessages = GRPCMessageCounter.count(request.body)
    }

    /// Creates a record with nothing known yet but the reporter and the start.
    public init(reporter: Reporter, startTime: Date, protocolName: String) {
        self.reporter = reporter
        self.startTime = startTime
        self.duration = 0
        self.protocolName = protocolName
        self.responseCode = 0
        self.responseFlags = "-"
        self.bytesReceived = 0
        self.bytesSent = 0
        // As Istio labels it: the source's report cannot know the server's authentication policy.
        self.connectionSecurityPolicy = reporter == .source ? "unknown" : "none"
        self.dryRun = []
    }
}

/// What Istio's metrics labels say of a workload (app, version, canonical service and revision),
/// worked out once from its labels rather than on every request. A class, so that a request's
/// record, copied along its path, carries one reference rather than four strings.
public final class WorkloadTelemetry: Sendable, Hashable {
    public let app: String?
    public let version: String?
    public let canonicalService: String?
    public let canonicalRevision: String

    /// The labels' values for a workload with these labels and name.
    public init(labels: [String: String], workload: String?) {
        app = labels["app"]
        version = labels["version"]
        canonicalService = CanonicalService.name(labels: labels, workload: workload)
        canonicalRevision = CanonicalService.revision(labels: labels)
    }

    public static func == (lhs: WorkloadTelemetry, rhs: WorkloadTelemetry) -> Bool {
        lhs === rhs
            || (lhs.app == rhs.app && lhs.version == rhs.version && lhs.canonicalService == rhs.canonicalService
                && lhs.canonicalRevision == rhs.canonicalRevision)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(app)
        hasher.combine(version)
        hasher.combine(canonicalService)
        hasher.combine(canonicalRevision)
    }
}

extension RequestRecord {
    /// Sets the source workload's app, version and canonical service.
    public mutating func source(_ telemetry: WorkloadTelemetry) {
        sourceTelemetry = telemetry
    }

    /// Sets the destination workload's app, version and canonical service.
    public mutating func destination(_ telemetry: WorkloadTelemetry) {
        destinationTelemetry = telemetry
    }

    /// Sets the destination workload's values from its labels.
    public mutating func destination(labels: [String: String], workload: String?) {
        destination(WorkloadTelemetry(labels: labels, workload: workload))
    }

    /// Records how a response that went on to its client after its head ended early: cut by the
    /// upstream (its flag and details), or left by its client (`DC`; the status it was sent stays,
    /// as Envoy keeps it).
    mutating func endAfterHead(cut: (flags: String, details: String)?, clientGone: Bool) {
        if let cut {
            responseFlags = cut.flags
            responseDetails = cut.details
        } else if clientGone {
            responseFlags = "DC"
            responseDetails = "downstream_remote_disconnect"
        }
    }

    /// The Istio name of a policy's rule, as Envoy's RBAC filter reports the one that denied.
    static func rbacDetails(_ policy: String?, rule: Int?) -> String {
        guard let policy, let slash = policy.firstIndex(of: "/") else { return "rbac_access_denied_matched_policy[none]" }
        let namespace = policy[..<slash], name = policy[policy.index(after: slash)...]
        return "rbac_access_denied_matched_policy[ns[\(namespace)]-policy[\(name)]-rule[\(rule ?? 0)]]"
    }
}

/// Istio's canonical service of a workload, which its dashboards (Kiali's among them) group by:
/// the `service.istio.io/canonical-name` label, else `app.kubernetes.io/name`, else `app`, else
/// the workload's name; its revision is `service.istio.io/canonical-revision`, else
/// `app.kubernetes.io/version`, else `version`, else `latest`.
public enum CanonicalService {
    /// The canonical service name.
    public static func name(labels: [String: String], workload: String?) -> String? {
        labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"] ?? labels["app"] ?? workload
    }

    /// The canonical revision.
    public static func revision(labels: [String: String]) -> String {
        labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"] ?? labels["version"] ?? "latest"
    }
}
