import RampartPolicy
import RampartStore

/// The control plane's config at one version: the compiled policy snapshot and what was left out.
///
/// Built from the store's rows alone, so every process that reads the same version builds the
/// same state. Resources with validation errors are excluded, as Istio's webhook would refuse them.
public struct ConfigState: Sendable {
    /// The global config version this state was built from.
    public let version: Int64
    /// The compiled policies of every valid stored resource.
    public let snapshot: PolicySnapshot
    /// The stored rows compiled into the snapshot, in the store's order (kind, namespace, name),
    /// with the YAML each was applied with: what proxies are sent.
    public let accepted: [ConfigResourceRecord]
    /// How many resources are stored, per kind (`AuthorizationPolicy` …), valid or not.
    public let storedCounts: [String: Int]
    /// Stored resources left out of the snapshot, with the reason for each.
    public let excluded: [ConfigResourceKey: String]
    /// Every diagnostic found while compiling (errors and warnings).
    public let diagnostics: [Diagnostic]

    /// The number of resources compiled into the snapshot.
    public var compiledCount: Int { storedCounts.values.reduce(0, +) - excluded.count }

    /// Compiles the store's rows: each document is loaded on its own, and must name the row it is stored as.
    public static func compile(_ records: ConfigSnapshotRecords, options: SnapshotOptions = SnapshotOptions()) -> ConfigState {
        var resources: [SecurityResource] = []
        var keys: [ResourceID: ConfigResourceKey] = [:]
        var loadedRecords: [ConfigResourceRecord] = []
        var excluded: [ConfigResourceKey: String] = [:]
        var diagnostics: [Diagnostic] = []
        var counts: [String: Int] = [:]
        for record in records.resources {
            counts[record.kind, default: 0] += 1
            let loaded = PolicyLoader.load(yaml: record.yaml, file: "config:\(record.kind)/\(record.namespace)/\(record.name)")
            diagnostics += loaded.diagnostics
            if let error = loaded.diagnostics.first(where: { $0.severity == .error }) {
                excluded[record.key] = error.description
                continue
            }
            guard loaded.resources.count == 1, let resource = loaded.resources.first else {
                excluded[record.key] = "the stored YAML holds \(loaded.resources.count) resources; exactly one is expected"
                continue
            }
            let id = resource.id
            guard id.kind.rawValue == record.kind, id.namespace == record.namespace, id.name == record.name else {
                excluded[record.key] = "the stored YAML describes \(id), not \(record.key)"
                continue
            }
            keys[id] = record.key
            resources.append(resource.created(at: record.createdAt))
            loadedRecords.append(record)
        }
        let validation = PolicyAnalyzer.validate(resources)
        diagnostics += validation
        for diagnostic in validation where diagnostic.severity == .error {
            guard let id = diagnostic.resource, let key = keys[id], excluded[key] == nil else { continue }
            excluded[key] = diagnostic.description
        }
        let accepted = resources.filter { resource in keys[resource.id].map { excluded[$0] == nil } ?? false }
        return ConfigState(
            version: records.version, snapshot: PolicySnapshot(resources: accepted, options: options),
            accepted: loadedRecords.filter { excluded[$0.key] == nil }, storedCounts: counts,
            excluded: excluded, diagnostics: diagnostics
        )
    }
}
