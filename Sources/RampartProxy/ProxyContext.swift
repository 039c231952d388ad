import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RampartAuthn

/// What the listeners share: the workload, its identity and config, the upstream client and
/// the telemetry sinks.
///
/// A class: each request's callbacks hold the context, and a reference costs them one retain
/// where a copy of the structure cost one per field.
public final class ProxyContext: Sendable {
    /// The workload beside the proxy.
    public let workload: WorkloadInfo
    /// Where the application listens.
    public let appHost: String
    public let appPort: Int
    /// `appHost:appPort` (`[v6]:port`), as access logs show the inbound side's upstream.
    public let appAddress: String
    /// The workload's metrics labels, and its inbound cluster as Istio names it (`inbound|PORT||`).
    let telemetry: WorkloadTelemetry
    let inboundCluster: String
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
    /// How much of a request body the proxy holds before passing the rest on as it arrives, and
    /// the largest response it holds whole (a gRPC response not relayed as a stream).
    public let maxBodyBytes: Int
    /// How long an upstream may take to answer.
    public let upstreamTimeout: TimeAmount
    /// How long a client may leave a request unfinished, or a connection unused.
    public let idleTimeouts: IdleTimeouts
    /// What the outbound side does with hosts the registry does not know.
    public let outboundPolicy: OutboundTrafficPolicy
    /// Which HTTP version the application speaks.
    public let appProtocol: AppProtocol
    /// Whether HTTP/1.0 requests are served; without it they get 426, as from Istio's sidecars
    /// unless `ISTIO_META_HTTP10` is set.
    public let acceptHTTP10: Bool
    /// How often the metrics of an open TCP connection or gRPC stream are brought up to date
    /// (Istio's `tcp_reporting_duration`, 15 s by default); what is left is added when it ends.
    public let reportingInterval: TimeAmount
    /// Spans for the HTTP requests handled, when a collector is configured.
    public let tracing: ProxyTracing?
    public let logger: Logger
    /// The service this proxy's inbound side reports as the destination: the one on the
    /// application's port, else the first registered. Fixed for the proxy's life, so made once.
    let destinationService: (fqdn: String, name: String)?

    /// Creates a context.
    public init(
        workload: WorkloadInfo, appHost: String, appPort: Int, identity: IdentityWatcher, config: ConfigHolder, upstream: UpstreamClient,
        authenticator: RequestAuthenticator, metrics: ProxyMetrics, accessLog: AccessLog, maxBodyBytes: Int, upstreamTimeout: TimeAmount,
        outboundPolicy: OutboundTrafficPolicy, appProtocol: AppProtocol = .auto, acceptHTTP10: Bool = false,
        idleTimeouts: IdleTimeouts = .envoy, reportingInterval: TimeAmount = .seconds(15), tracing: ProxyTracing? = nil, logger: Logger
    ) {
        self.tracing = tracing
        self.idleTimeouts = idleTimeouts
        self.reportingInterval = reportingInterval
        self.appProtocol = appProtocol
        self.acceptHTTP10 = acceptHTTP10
        self.workload = workload
        self.appHost = appHost
        self.appPort = appPort
        self.appAddress = EndpointAddress.join(appHost, appPort)
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
        telemetry = WorkloadTelemetry(labels: workload.labels, workload: workload.name)
        inboundCluster = "inbound|\(appPort)||"
        self.destinationService = (workload.services.first { $0.port == appPort } ?? workload.services.first).map {
            (fqdn: "\($0.name).\(workload.namespace).svc.cluster.local", name: $0.name)
        }
    }

    /// What Envoy's HTTP/1 codec answers itself, with no body, closing the connection: 501 for a
    /// `transfer-encoding` other than `chunked`, and 426 for HTTP/1.0 when the proxy does not
    /// accept that version (`accept_http_10` off). Nil when the request may go on.
    func codecRefusal(_ request: BufferedRequest, _ record: inout RequestRecord) -> BufferedResponse? {
        if request.head.version.major == 1, Self.hasUnsupportedTransferEncoding(request.head.headers) {
            // Envoy's HTTP/1 codec implements `chunked` alone: any other coding, even before
            // `chunked`, is refused with 501 rather than passed on with the coding dropped.
            record.responseDetails = "http1.invalid_transfer_encoding"
            record.responseFlags = "DPE"
            var response = BufferedResponse.local(.notImplemented, "")
            response.head.headers.replaceOrAdd(name: "connection", value: "close")
            return response
        }
        guard !acceptHTTP10, request.head.version.major == 1, request.head.version.minor == 0 else { return nil }
        record.responseDetails = "low_version"
        var response = BufferedResponse.local(.upgradeRequired, "")
        response.head.headers.replaceOrAdd(name: "connection", value: "close")
        return response
    }

    /// Whether an HTTP/1 request's `transfer-encoding` is anything but `chunked` (in any case),
    /// once: `gzip, chunked`, `chunked, chunked` and a second `transfer-encoding` field all are.
    static func hasUnsupportedTransferEncoding(_ headers: HTTPHeaders) -> Bool {
        var values = 0
        for (name, value) in headers where name.utf8.count == 17 && name.lowercased() == "transfer-encoding" {
            values += 1
            if values > 1 || value.lowercased() != "chunked" { return true }
        }
        return false
    }

    /// Completes a request's record with its response and duration, and reports it to the
    /// metrics and the access log.
    func finish(_ record: inout RequestRecord, response: BufferedResponse, start: Date) {
        // An upload's body bytes as far as they have come.
        if let upload = record.upload {
            record.bytesReceived = upload.bytesReceived
            if let messages = upload.messagesCounted { record.requestMessages = messages }
        }
        // A gRPC call answered whole: the messages its body holds (a local answer holds none).
        if record.isGRPC && record.responseMessages == nil && !response.isLocal && response.streamed == nil {
            record.responseMessages = GRPCMessageCounter.count(response.body)
        }
        record.responseCode = Int(response.head.status.code)
        if record.isGRPC {
            // As the caller sees it (see `GRPCFraming`): a local reply is HTTP 200 with a gRPC status;
            // one that already carries its status (a gRPC-Web answer, see `GRPCWeb.respond`) keeps both.
            if response.isLocal && response.head.status != .ok && !response.head.headers.contains(name: "grpc-status") {
                record.grpcStatus = String(GRPCFraming.localStatus(response))
                record.responseCode = 200
            } else {
                record.grpcStatus = response.trailers?.first(name: "grpc-status") ?? response.head.headers.first(name: "grpc-status")
            }
        }
        // A gRPC caller gets a local reply's text as `grpc-message`, with no body (see `GRPCFraming`).
        record.bytesSent =
            record.isGRPC && response.isLocal && response.head.status != .ok ? 0 : response.relayedBytes ?? response.body.readableBytes
        if !response.isLocal && record.responseDetails == nil { record.responseDetails = "via_upstream" }
        if record.downstreamDisconnected || response.clientGone {
            // Nothing reached the client: Envoy's record of a downstream that disconnected.
            record.responseCode = 0
            record.grpcStatus = nil
            record.bytesSent = 0
            record.responseFlags = "DC"
            record.responseDetails = "downstream_remote_disconnect"
        }
        if let streamed = response.streamed {
            // A response passed on as it arrives is reported once its body has ended, with the
            // bytes written and how it ended, as Envoy reports a streamed response.
            let (metrics, accessLog, record) = (metrics, accessLog, record)
            streamed.whenFinished { outcome in
                var record = record
                // A client gone before the answer (see above) got nothing.
                if record.responseFlags != "DC" {
                    record.bytesSent = outcome.bytesSent
                    // A gRPC call's status came in the trailers at the end of its body.
                    if record.isGRPC, let status = outcome.grpcStatus { record.grpcStatus = status }
                    if record.isGRPC, let messages = outcome.responseMessages { record.responseMessages = messages }
                }
                record.endAfterHead(cut: outcome.cut, clientGone: outcome.clientGone)
                if let upload = record.upload { record.bytesReceived = upload.bytesReceived }
                record.duration = Date().timeIntervalSince(start)
                Self.report(record, metrics: metrics, accessLog: accessLog)
            }
            return
        }
        if let upgraded = response.upgraded {
            // An upgraded exchange is reported when its connection ends, with the bytes carried
            // after the 101 and the whole time it was open, as Envoy reports a WebSocket.
            let (metrics, accessLog, record) = (metrics, accessLog, record)
            upgraded.tally.whenClosed { fromClient, fromUpstream in
                var record = record
                record.bytesReceived += fromClient
                record.bytesSent += fromUpstream
                record.duration = Date().timeIntervalSince(start)
                Self.report(record, metrics: metrics, accessLog: accessLog)
            }
            return
        }
        record.duration = Date().timeIntervalSince(start)
        Self.report(record, metrics: metrics, accessLog: accessLog)
    }

    /// Reports a finished request to the metrics and the access log, and ends its span.
    private static func report(_ record: RequestRecord, metrics: ProxyMetrics, accessLog: AccessLog) {
        metrics.recordRequest(record)
        accessLog.write(record)
        ProxyTracing.finish(record)
    }
}

/// Istio's `outboundTrafficPolicy.mode`: what happens to requests for hosts outside the registry.
public enum OutboundTrafficPolicy: String, Sendable, CaseIterable {
    /// Forward them, in plaintext, to the address they name (Istio's default).
    case allowAny = "ALLOW_ANY"
    /// Refuse them with 502.
    case registryOnly = "REGISTRY_ONLY"
}

/// The protocol the application speaks: which HTTP version the proxy uses to it, or opaque TCP.
public enum AppProtocol: String, Sendable, CaseIterable {
    /// HTTP/2 (prior knowledge) for gRPC requests, HTTP/1.1 for the rest.
    case auto
    /// Always HTTP/1.1.
    case http1 = "http"
    /// Always HTTP/2 with prior knowledge (h2c).
    case http2
    /// A gRPC application on a port Istio would declare `grpc-web`: HTTP/2 (h2c) always, and
    /// gRPC-Web calls bridged to gRPC (see `GRPCWeb`).
    case grpcWeb = "grpc-web"
    /// Opaque TCP, as on a port Istio declares `tcp` (or `mysql`, `mongo`, `redis`...): every
    /// connection is authorized on its L4 attributes and spliced, with no wait for the client's
    /// first bytes, so server-first protocols (MySQL, SMTP) start at once.
    case tcp

    /// Whether `request` goes to the application over HTTP/2.
    public func usesHTTP2(for request: BufferedRequest) -> Bool {
        switch self {
        case .auto: return request.isGRPC
        case .http1, .tcp: return false
        case .http2, .grpcWeb: return true
        }
    }

    /// Whether the port is declared HTTP: it is never passed through as TCP.
    public var isHTTP: Bool { self == .http1 || self == .http2 || self == .grpcWeb }
}
