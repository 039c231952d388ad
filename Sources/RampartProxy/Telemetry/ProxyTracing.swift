import Foundation
import Logging
import NIOHTTP1
import OTel
import ServiceLifecycle
import Tracing

/// Where and how the proxy exports its spans, as Istio's `opentelemetry` tracing provider and
/// random sampling percentage configure a sidecar.
public struct TracingSettings: Sendable, Equatable {
    /// How spans travel to the collector.
    public enum ExportProtocol: String, Sendable, CaseIterable {
        /// OTLP over gRPC (the collector's port 4317), as Istio's provider sends them by default.
        case grpc
        /// OTLP over HTTP with protobuf bodies (port 4318, path `/v1/traces`).
        case httpProtobuf = "http/protobuf"
        /// OTLP over HTTP with JSON bodies. Not offered on the command line: the exporter writes
        /// span and trace ids in base64 where OTLP's JSON encoding asks for hex, so collectors
        /// misread them; the tests, which decode either, read spans this way.
        case httpJSON = "http/json"
    }

    /// The collector's URL: `http://HOST:4317` for gRPC; for HTTP, the full URL spans are posted
    /// to, or a base URL to which `/v1/traces` is added.
    public var endpoint: String
    public var exportProtocol: ExportProtocol
    /// The share of new traces recorded, in percent (Istio's default is 1). A request that comes
    /// with a trace context keeps its caller's sampling decision.
    public var samplingPercent: Double
    /// How long finished spans wait before they are sent together.
    public var exportDelay: Duration

    public init(endpoint: String, exportProtocol: ExportProtocol = .grpc, samplingPercent: Double = 1, exportDelay: Duration = .seconds(5)) {
        self.endpoint = endpoint
        self.exportProtocol = exportProtocol
        self.samplingPercent = samplingPercent
        self.exportDelay = exportDelay
    }

    /// The URL given, made complete: a bare `host:port` gets `http://`; an HTTP endpoint without a
    /// path gets `/v1/traces`, as OTLP's exporters derive it from a base URL.
    var exporterURL: String {
        var url = endpoint.contains("://") ? endpoint : "http://\(endpoint)"
        if exportProtocol != .grpc, let parsed = URL(string: url), parsed.path.isEmpty || parsed.path == "/" {
            url = url.hasSuffix("/") ? url + "v1/traces" : url + "/v1/traces"
        }
        return url
    }

    /// Checks what a command line gave.
    public func validate() throws(ProxyError) {
        guard let url = URL(string: exporterURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host?.isEmpty == false else {
            throw ProxyError(.badConfiguration, "--tracing-endpoint \(endpoint) is not a collector URL; give http://HOST:PORT (4317 for gRPC, 4318 for HTTP)")
        }
        guard samplingPercent >= 0, samplingPercent <= 100 else {
            throw ProxyError(.badConfiguration, "--tracing-sampling \(samplingPercent) is not a percentage; give a number from 0 to 100")
        }
    }
}

/// The spans a sidecar reports for the HTTP requests it handles, as Envoy's OpenTelemetry tracer
/// reports them in Istio: one span per request and side, SERVER on the destination's proxy and
/// CLIENT on the source's, named `HOST:PORT/*` after the service (Istio's route decorator), the
/// caller's W3C trace context continued and passed on to the application or the next proxy.
public final class ProxyTracing: Sendable {
    private let tracer: any Tracer
    /// The exporter's batching, run as a service of the proxy so that it flushes at shutdown.
    let service: any Service
    /// The mesh's attributes every span carries.
    private let meshAttributes: [(String, String)]

    /// Builds the tracer and its exporter for the workload the proxy stands beside.
    public init(settings: TracingSettings, workload: WorkloadInfo, logger: Logger) throws {
        try settings.validate()
        var configuration = OTel.Configuration.default
        let telemetry = WorkloadTelemetry(labels: workload.labels, workload: workload.name)
        // Istio's default service name for its OpenTelemetry provider: app label and namespace.
        let service = telemetry.canonicalService ?? workload.name
        configuration.serviceName = "\(service).\(workload.namespace)"
        configuration.resourceAttributes = ["k8s.namespace.name": workload.namespace]
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.propagators = [.traceContext]
        guard let sampler = OTel.Configuration.TracesConfiguration.SamplerConfiguration.parentBasedTraceIDRatio(ratio: settings.samplingPercent / 100) else {
            throw ProxyError(.badConfiguration, "--tracing-sampling \(settings.samplingPercent) is not a percentage; give a number from 0 to 100")
        }
        configuration.traces.sampler = sampler
        configuration.traces.batchSpanProcessor.scheduleDelay = settings.exportDelay
        configuration.traces.otlpExporter.endpoint = settings.exporterURL
        switch settings.exportProtocol {
        case .grpc: configuration.traces.otlpExporter.protocol = .grpc
        case .httpProtobuf: configuration.traces.otlpExporter.protocol = .httpProtobuf
        case .httpJSON: configuration.traces.otlpExporter.protocol = .httpJSON
        }
        // The exporter's own failures are the proxy's warnings, not its standard output.
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        tracer = backend.factory
        self.service = backend.service
        meshAttributes = [
            ("component", "proxy"),
            ("istio.canonical_service", service),
            ("istio.canonical_revision", telemetry.canonicalRevision),
            ("istio.namespace", workload.namespace),
            ("istio.mesh_id", "cluster.local"),
        ]
    }

    /// Starts the span of a request as the proxy receives it: the caller's `traceparent` and
    /// `tracestate` are read, and replaced with this span's, so the application (or the next
    /// proxy) continues the trace under it.
    func start(_ record: inout RequestRecord, headers: inout HTTPHeaders) {
        var context = ServiceContext.topLevel
        tracer.extract(headers, into: &context, using: HeaderCarrier())
        let kind: SpanKind = record.reporter == .destination ? .server : .client
        let span = tracer.startSpan(
            record.reporter == .destination ? "ingress" : "egress", context: context, ofKind: kind, at: SpanInstant(record.startTime))
        headers.remove(name: "traceparent")
        headers.remove(name: "tracestate")
        tracer.inject(span.context, into: &headers, using: HeaderCarrier())
        record.span = RequestSpan(span: span, meshAttributes: meshAttributes)
    }

    /// Ends a request's span with what its record says of it, once the request is over.
    static func finish(_ record: RequestRecord) {
        guard let held = record.span else { return }
        let span = held.span
        defer { span.end(at: SpanInstant(record.startTime.addingTimeInterval(record.duration))) }
        guard span.isRecording else { return }
        span.operationName = operationName(record)
        var attributes = SpanAttributes()
        for (key, value) in held.meshAttributes { attributes[key] = value }
        attributes["http.method"] = record.method ?? "-"
        attributes["http.url"] = "http://\(record.authority ?? "-")\(record.path ?? "")"
        attributes["http.protocol"] = record.protocolName
        attributes["http.status_code"] = String(record.responseCode)
        attributes["response_flags"] = record.responseFlags
        attributes["upstream_cluster"] = record.upstreamCluster ?? "-"
        attributes["upstream_cluster.name"] = record.upstreamCluster ?? "-"
        attributes["guid:x-request-id"] = record.requestID ?? "-"
        attributes["user_agent"] = record.userAgent ?? "-"
        attributes["downstream_cluster"] = "-"
        attributes["peer.address"] = record.sourceAddress ?? "-"
        attributes["request_size"] = String(record.bytesReceived)
        attributes["response_size"] = String(record.bytesSent)
        if let status = record.grpcStatus { attributes["grpc.status_code"] = status }
        // Envoy marks a span in error when no response reached the client or it was a 5xx.
        if record.responseCode == 0 || record.responseCode >= 500 {
            attributes["error"] = "true"
            span.setStatus(SpanStatus(code: .error))
        }
        span.attributes = attributes
    }

    /// Istio's route decorator: the destination service and port, then `/*`; a request no
    /// service took is named by its authority.
    static func operationName(_ record: RequestRecord) -> String {
        let port = record.upstreamCluster.flatMap { cluster -> Substring? in
            let parts = cluster.split(separator: "|", omittingEmptySubsequences: false)
            return parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil
        }
        if let service = record.destinationService, let port {
            return "\(service):\(port)/*"
        }
        return "\(record.authority ?? "-")/*"
    }
}

/// A request's span, carried in its record from the request's start to its report, with the
/// mesh's attributes it is given when it ends. A class, so that a record without one stays one
/// word larger and a record with one is copied with one retain.
final class RequestSpan: Sendable {
    let span: any Span
    let meshAttributes: [(String, String)]

    init(span: any Span, meshAttributes: [(String, String)]) {
        self.span = span
        self.meshAttributes = meshAttributes
    }
}

/// An instant from a `Date`, for spans that start and end at the times the record holds.
struct SpanInstant: TracerInstant {
    let nanosecondsSinceEpoch: UInt64

    init(_ date: Date) { nanosecondsSinceEpoch = UInt64(max(0, date.timeIntervalSince1970 * 1_000_000_000)) }

    static func < (lhs: SpanInstant, rhs: SpanInstant) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
}

/// Reads and writes trace context in NIO's HTTP headers.
struct HeaderCarrier: Extractor, Injector {
    func extract(key: String, from headers: HTTPHeaders) -> String? { headers.first(name: key) }
    func inject(_ value: String, forKey key: String, into headers: inout HTTPHeaders) { headers.replaceOrAdd(name: key, value: value) }
}
