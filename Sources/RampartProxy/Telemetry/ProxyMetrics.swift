import CoreMetrics
import RampartPolicy
import Synchronization

/// Istio's standard metrics, with Istio's names and labels, recorded through swift-metrics.
///
/// The executable chooses the backend (Prometheus); `histogramBuckets` gives Istio's default
/// bucket boundaries for it to apply.
public struct ProxyMetrics: Sendable {
    /// Istio's default buckets: milliseconds for durations, bytes for sizes.
    public static let histogramBuckets: [String: [Double]] = [
        "istio_request_duration_milliseconds": [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000],
        "istio_request_bytes": [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000],
        "istio_response_bytes": [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000],
    ]

    /// The metric objects of one label set, made once: the backend's lookup of a label set is
    /// far costlier than an increment.
    struct RequestSeries: Sendable {
        let requests: Counter
        let duration: Recorder
        let requestBytes: Recorder
        let responseBytes: Recorder
        /// For gRPC calls: the message counters, whose labels are Istio's without the outcome's.
        let messages: (request: Counter, response: Counter)?
    }

    private let series = SeriesCache<SeriesKey, RequestSeries>()

    /// The fields of a record that Istio's labels are made of, compared and hashed as they are:
    /// a request whose label set was seen before finds its series without building the labels.
    struct SeriesKey: Hashable, Sendable {
        let reporter: RequestRecord.Reporter
        let sourceWorkload, sourceNamespace, sourcePrincipal: String?
        let sourceTelemetry: WorkloadTelemetry?
        let destinationWorkload, destinationNamespace, destinationPrincipal: String?
        let destinationTelemetry: WorkloadTelemetry?
        let isGRPC: Bool
        let grpcStatus: String?
        let destinationService, destinationServiceName, destinationServiceNamespace: String?
        let responseFlags, connectionSecurityPolicy: String
        let responseCode: Int

        init(_ record: RequestRecord) {
            reporter = record.reporter
            sourceWorkload = record.sourceWorkload
            sourceNamespace = record.sourceNamespace
            sourcePrincipal = record.sourcePrincipal
            sourceTelemetry = record.sourceTelemetry
            destinationWorkload = record.destinationWorkload
            destinationNamespace = record.destinationNamespace
            destinationPrincipal = record.destinationPrincipal
            destinationTelemetry = record.destinationTelemetry
            isGRPC = record.isGRPC
            grpcStatus = record.grpcStatus
            destinationService = record.destinationService
            destinationServiceName = record.destinationServiceName
            destinationServiceNamespace = record.destinationServiceNamespace
            responseFlags = record.responseFlags
            connectionSecurityPolicy = record.connectionSecurityPolicy
            responseCode = record.responseCode
        }

        /// Hashes the fields that tell a proxy's series apart (the peer, the service, the
        /// outcome), not all of them: the key is hashed on every request, and the rest (the
        /// workload names, apps and versions that go with a principal) rarely differ where these
        /// agree. Equal keys still hash alike; `==` compares every field.
        func hash(into hasher: inout Hasher) {
            hasher.combine(reporter)
            hasher.combine(responseCode)
            hasher.combine(responseFlags)
            hasher.combine(sourcePrincipal)
            hasher.combine(destinationPrincipal)
            hasher.combine(destinationService)
        }
    }

    /// Creates the recorder.
    public init() {}

    /// Records a finished HTTP request.
    public func recordRequest(_ record: RequestRecord) {
        let metrics = series.get(SeriesKey(record)) {
            let labels = Self.labels(record)
            return RequestSeries(
                requests: Counter(label: "istio_requests_total", dimensions: labels),
                duration: Recorder(label: "istio_request_duration_milliseconds", dimensions: labels, aggregate: true),
                requestBytes: Recorder(label: "istio_request_bytes", dimensions: labels, aggregate: true),
                responseBytes: Recorder(label: "istio_response_bytes", dimensions: labels, aggregate: true),
                messages: record.isGRPC ? Self.messageCounters(record) : nil
            )
        }
        metrics.requests.increment()
        metrics.duration.record(record.duration * 1000)
        metrics.requestBytes.record(record.bytesReceived)
        metrics.responseBytes.record(record.bytesSent)
        if let messages = metrics.messages {
            messages.request.increment(by: max(0, (record.requestMessages ?? 0) - record.reportedMessages.request))
            messages.response.increment(by: max(0, (record.responseMessages ?? 0) - record.reportedMessages.response))
        }
    }

    /// Adds messages of a gRPC call still open (see `StreamRelay`).
    func recordMessages(_ record: RequestRecord, request: Int, response: Int) {
        let (requests, responses) = Self.messageCounters(record)
        requests.increment(by: request)
        responses.increment(by: response)
    }

    /// The labels of a gRPC call's message counters: Istio's stats filter adds to them before it
    /// has labelled the call's outcome, so they carry the peers and the service, without
    /// `request_protocol`, `response_code`, `grpc_response_status`, `response_flags` and
    /// `connection_security_policy`.
    static func messageLabels(_ record: RequestRecord) -> [(String, String)] {
        let outcome: Set = ["request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy"]
        return labels(record).filter { !outcome.contains($0.0) }
    }

    private static func messageCounters(_ record: RequestRecord) -> (request: Counter, response: Counter) {
        let labels = messageLabels(record)
        return (
            Counter(label: "istio_request_messages_total", dimensions: labels),
            Counter(label: "istio_response_messages_total", dimensions: labels)
        )
    }

    /// Records what the dry-run policies would have decided, as Envoy's shadow RBAC engines count
    /// it for Istio's `istio.io/dry-run` (the counters Istio's dry-run task reads): the DENY
    /// engine denies when some dry-run DENY policy matches, the ALLOW engine allows when some
    /// dry-run ALLOW policy matches; an engine with no dry-run policy counts nothing.
    public func recordDryRun(_ results: [Decision.DryRunResult]) {
        for action in [AuthorizationPolicy.Action.deny, .allow] {
            let engine = results.filter { $0.action == action }
            guard !engine.isEmpty else { continue }
            let denied = action == .deny ? engine.contains { $0.wouldBe == .deny } : !engine.contains { $0.wouldBe == .allow }
            let name = "envoy_http_rbac_istio_dry_run_\(action == .deny ? "deny" : "allow")_shadow_\(denied ? "denied" : "allowed")"
            Counter(label: name).increment()
        }
    }

    /// Records a TCP connection opening.
    public func recordTCPOpened(_ record: RequestRecord) {
        Counter(label: "istio_tcp_connections_opened_total", dimensions: Self.labels(record, tcp: true)).increment()
    }

    /// Records bytes moved on a TCP connection so far.
    public func recordTCPBytes(_ record: RequestRecord, sent: Int, received: Int) {
        let labels = Self.labels(record, tcp: true)
        if sent > 0 { Counter(label: "istio_tcp_sent_bytes_total", dimensions: labels).increment(by: sent) }
        if received > 0 { Counter(label: "istio_tcp_received_bytes_total", dimensions: labels).increment(by: received) }
    }

    /// Records a TCP connection closing.
    public func recordTCPClosed(_ record: RequestRecord) {
        Counter(label: "istio_tcp_connections_closed_total", dimensions: Self.labels(record, tcp: true)).increment()
    }

    /// Istio's label set for a record; unknown values are `unknown`, as Istio reports them.
    static func labels(_ record: RequestRecord, tcp: Bool = false) -> [(String, String)] {
        func value(_ text: String?) -> String { text.flatMap { $0.isEmpty ? nil : $0 } ?? "unknown" }
        func principal(_ text: String?) -> String { text.map { $0.hasPrefix("spiffe://") ? $0 : "spiffe://\($0)" } ?? "unknown" }
        var labels: [(String, String)] = [
            ("reporter", record.reporter.rawValue),
            ("source_workload", value(record.sourceWorkload)),
            ("source_workload_namespace", value(record.sourceNamespace)),
            ("source_principal", principal(record.sourcePrincipal)),
            ("source_app", value(record.sourceApp)),
            ("source_version", value(record.sourceVersion)),
            ("source_canonical_service", value(record.sourceCanonicalService)),
            ("source_canonical_revision", value(record.sourceCanonicalRevision)),
            ("source_cluster", "Kubernetes"),
            ("destination_workload", value(record.destinationWorkload)),
            ("destination_workload_namespace", value(record.destinationNamespace)),
            ("destination_principal", principal(record.destinationPrincipal)),
            ("destination_app", value(record.destinationApp)),
            ("destination_version", value(record.destinationVersion)),
            ("destination_canonical_service", value(record.destinationCanonicalService)),
            ("destination_canonical_revision", value(record.destinationCanonicalRevision)),
            ("destination_service", value(record.destinationService)),
            ("destination_service_name", value(record.destinationServiceName)),
            ("destination_service_namespace", value(record.destinationServiceNamespace)),
            ("destination_cluster", "Kubernetes"),
            ("request_protocol", tcp ? "tcp" : record.isGRPC ? "grpc" : "http"),
            ("response_flags", record.responseFlags),
            ("connection_security_policy", record.connectionSecurityPolicy),
        ]
        if !tcp {
            labels.append(("response_code", String(record.responseCode)))
            labels.append(("grpc_response_status", record.grpcStatus ?? ""))
        }
        return labels
    }
}

/// Metric objects by label set, so each label set is registered with the backend once.
final class SeriesCache<Key: Hashable & Sendable, Series: Sendable>: Sendable {
    private let entries = Mutex<[Key: Series]>([:])

    /// The series for `key`, made by `make` the first time.
    func get(_ key: Key, make: () -> Series) -> Series {
        if let found = entries.withLock({ $0[key] }) { return found }
        let made = make()
        return entries.withLock { entries in
            if let found = entries[key] { return found }
            entries[key] = made
            return made
        }
    }
}
