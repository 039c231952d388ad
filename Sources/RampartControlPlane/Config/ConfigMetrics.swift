import Metrics
import RampartPolicy

/// Gauges for the config the control plane serves: its version and how many resources it holds.
///
/// The `kind` label takes only the three security kinds, so its cardinality is fixed.
struct ConfigMetrics: Sendable {
    private let version = Gauge(label: "rampart_config_version")
    private let excluded = Gauge(label: "rampart_config_invalid_resources")
    private let resources: [String: Gauge] = Dictionary(
        uniqueKeysWithValues: ResourceKind.allCases.map {
            ($0.rawValue, Gauge(label: "rampart_config_resources", dimensions: [("kind", $0.rawValue)]))
        }
    )

    /// Records a newly published state.
    func record(_ state: ConfigState) {
        version.record(Double(state.version))
        excluded.record(Double(state.excluded.count))
        for (kind, gauge) in resources {
            gauge.record(Double(state.storedCounts[kind] ?? 0))
        }
    }
}
