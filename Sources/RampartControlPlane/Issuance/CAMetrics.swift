import Foundation
import Metrics

/// The CA's metrics, through swift-metrics: the executable chooses the backend (Prometheus).
///
/// Labels are bounded: results are a fixed set, never identities or serials.
struct CAMetrics: Sendable {
    private let latency = Metrics.Timer(label: "rampart_ca_issuance_duration_seconds", preferredDisplayUnit: .seconds)
    private let expiry = Gauge(label: "rampart_ca_cert_expiry_seconds")
    private let rootExpiry = Gauge(label: "rampart_ca_root_cert_expiry_seconds")

    /// One counter per result, made once: the set of results is fixed.
    private let issuances: [String: Counter] = Dictionary(
        uniqueKeysWithValues: (["issued"] + Refusal.Kind.allCases.map(\.rawValue)).map {
            ($0, Counter(label: "rampart_ca_issuances_total", dimensions: [("result", $0)]))
        }
    )

    func issued(result: Refusal.Kind?, duration: Duration) {
        issuances[result?.rawValue ?? "issued"]?.increment()
        latency.recordNanoseconds(duration.nanoseconds)
    }

    /// Refreshes the seconds-until-expiry gauges; called before each scrape.
    func refreshExpiry(signingNotAfter: Date, rootNotAfter: Date, now: Date) {
        expiry.record(signingNotAfter.timeIntervalSince(now))
        rootExpiry.record(rootNotAfter.timeIntervalSince(now))
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
